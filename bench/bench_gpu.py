"""GPU benchmark for a lent accelerator (one run, well under 10 minutes): Infinity-2B architecture at 1024² with
guidance in bf16, random weights, a T5-XL encoder built from its config (random weights, offloaded to the CPU
after encoding).

    python bench/bench_gpu.py --out bench/results_gpu.json

Reports first-call latency, warm latency (median of --runs), the per-phase split, and peak GPU memory with and
without the text encoder resident. Not a test; skips with a message when CUDA is absent.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infinity import build_tokenizer, build_transformer, schedules  # noqa: E402
from infinity.config import TextCondition  # noqa: E402
from infinity.sampling import generate  # noqa: E402


def t5_xl_encoder(device):
    """flan-t5-xl's encoder shape (d_model 2048, 24 layers, 32 heads, d_ff 5120, gated-gelu), random weights."""
    import transformers

    cfg = transformers.T5Config(d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_heads=32,
                                feed_forward_proj="gated-gelu", vocab_size=32128)
    return transformers.T5EncoderModel(cfg).to(device, torch.bfloat16).eval()


def sync():
    torch.cuda.synchronize()


def run_once(t5, tf, tok, ids, sched, device):
    t0 = time.perf_counter()
    with torch.no_grad():
        t5.to(device)
        feats = t5(input_ids=ids).last_hidden_state.float()
        t5.to("cpu")  # offload: the text encoder is not needed while sampling
        cond = TextCondition(feats, torch.ones(feats.shape[:2], dtype=torch.bool, device=device))
        sync()
        t1 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            states = generate(tf, cond, sched, guidance=3.0, temperature=1.0, top_p=0.97,
                              generator=torch.Generator(device).manual_seed(0))
        sync()
        t2 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            tok.codes_to_image(states[-1].codes_sum)
        sync()
    return {"text_s": t1 - t0, "sampling_s": t2 - t1, "decode_s": time.perf_counter() - t2,
            "total_s": time.perf_counter() - t0}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench/results_gpu.json"))
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    tf = build_transformer("infinity-2b", device=dev, dtype=torch.bfloat16)
    tok = build_tokenizer("vae-d32", device=dev, dtype=torch.bfloat16)
    t5 = t5_xl_encoder("cpu")
    ids = torch.randint(0, 32000, (1, 32), device=dev)
    sched = schedules.scale_schedule(1.0, "1M")
    torch.cuda.reset_peak_memory_stats()
    first = run_once(t5, tf, tok, ids, sched, dev)
    warm = [run_once(t5, tf, tok, ids, sched, dev) for _ in range(a.runs)]
    peak = torch.cuda.max_memory_allocated() / 2**30
    res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "first_call": first,
           "warm_median": {k: statistics.median(r[k] for r in warm) for k in warm[0]},
           "peak_gib_t5_offloaded": peak}
    print(json.dumps(res, indent=1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
