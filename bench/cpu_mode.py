"""CPU mode end to end: Infinity-2B at 1024² (13 scales) with int8 blocks and a T5-XL-sized text encoder, random
weights, one prompt; time and peak resident memory per phase.

    python bench/cpu_mode.py                 # 2B, 1M budget (1024x1024), int8, flan-t5-xl-sized encoder (slow)
    python bench/cpu_mode.py --tiny          # the same steps at smoke-test widths (seconds)

The CPU mode runs the parts one after another and keeps only what the next part needs:
1. text: T5 (flan-t5-xl architecture from a transformers config, random weights) encodes the prompt, then is freed;
2. build: the transformer is laid out on the meta device, then each block gets its random float32 weights and is
   turned int8 at once, so the float32 model never exists whole (peak: int8 blocks + one float32 block);
3. sampling: `infinity.sampling.generate`, guidance 3, temperature 0.5, top-p 0.97 (the KV caches keep every
   scale but the last);
4. decode: the transformer is freed and the d32 VAE decodes the code sum.
Peak RSS per phase comes from the kernel's high-water mark (VmHWM, reset between phases through
/proc/self/clear_refs where allowed; otherwise each figure is the peak so far). Random weights: the images are
noise; time and memory are those of real weights. Not a test: numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infinity import schedules  # noqa: E402
from infinity.config import MODEL_PRESETS, TextCondition  # noqa: E402

T5_XL = dict(d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_heads=32, feed_forward_proj="gated-gelu",
             vocab_size=32128)  # flan-t5-xl's encoder (1.22 B parameters)
T5_TINY = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
               vocab_size=512)
GIB = 2**30


# -- memory --------------------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(m[1]) if m else 0


def reset_peak() -> bool:
    """Start a new high-water mark (Linux: writing 5 to clear_refs resets VmHWM). False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_gib() -> float:
    """Peak resident set since the last reset (VmHWM); ru_maxrss where /proc is absent."""
    kib = _status_kib("VmHWM")
    if not kib:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20


def rss_gib() -> float:
    return _status_kib("VmRSS") / 2**20


class Phases:
    """Seconds and peak RSS of each named phase, printed as it ends."""

    def __init__(self):
        self.rows: list[dict] = []
        self.resets = True

    def run(self, name: str, fn, *args):
        gc.collect()
        self.resets = reset_peak() and self.resets
        t = time.perf_counter()
        out = fn(*args)
        row = {"phase": name, "seconds": round(time.perf_counter() - t, 2), "peak_rss_gib": round(peak_gib(), 3)}
        gc.collect()
        row["rss_after_gib"] = round(rss_gib(), 3)
        self.rows.append(row)
        print(f"{name:10s} {row['seconds']:9.2f} s   peak RSS {row['peak_rss_gib']:6.2f} GiB   "
              f"after {row['rss_after_gib']:6.2f} GiB", flush=True)
        return out


# -- random weights where they live ---------------------------------------------------------------------------------
@torch.no_grad()
def fill_random_(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Parameters ~ N(0, 0.02²) in place; buffers zero (the zero k biases). The module must own real memory."""
    for p in module.parameters(recurse=True):
        p.normal_(0.0, 0.02, generator=gen)
    for b in module.buffers(recurse=True):
        b.zero_()


def materialize(module: torch.nn.Module, gen: torch.Generator) -> torch.nn.Module:
    """A meta-device module → CPU memory with random values (the pages are touched only here)."""
    module.to_empty(device="cpu")
    fill_random_(module, gen)
    return module


# -- phases --------------------------------------------------------------------------------------------------------
def encode_text(t5_cfg: dict, n_tokens: int, gen: torch.Generator) -> TextCondition:
    """Build T5's encoder (random weights), encode one prompt of `n_tokens` pieces (EOS included), free it."""
    import transformers

    with torch.device("meta"):
        t5 = transformers.T5EncoderModel(transformers.T5Config(**t5_cfg))
    materialize(t5, gen).eval()
    ids = torch.randint(3, t5_cfg["vocab_size"], (1, n_tokens), generator=gen)
    ids[0, -1] = 1  # </s>
    with torch.inference_mode():
        hidden = t5(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.float()
    del t5  # the CPU mode keeps no text encoder past encoding
    return TextCondition(hidden.clone(), torch.ones(1, n_tokens, dtype=torch.bool))


def build_transformer(cfg, int8: bool, gen: torch.Generator):
    """Random weights block by block; with `int8` each block is quantized right after its weights exist."""
    from infinity.transformer import build_transformer as build
    from infinity.transformer.int8 import quantize_int8

    tf = build(cfg, device="meta")
    for name, child in tf.named_children():
        if name != "block_chunks":
            materialize(child, gen)
    for name in ("cfg_uncond", "pos_start"):
        p = getattr(tf, name)
        setattr(tf, name, torch.nn.Parameter(torch.empty(p.shape).normal_(0.0, 0.02, generator=gen)))
    for blk in tf.blocks:
        materialize(blk, gen)
        if int8:
            quantize_int8(blk)  # the float32 linears of this block are dropped here
    tf.int8 = int8
    left = [k for k, t in tf.state_dict().items() if isinstance(t, torch.Tensor) and t.is_meta]
    if left:  # a new top-level tensor this builder does not know yet
        raise RuntimeError(f"still on the meta device: {left[:5]}")
    return tf.eval()


def sample(tf, cond: TextCondition, schedule, seed: int):
    from infinity.sampling import generate

    states = generate(tf, cond, schedule, guidance=3.0, temperature=0.5, top_p=0.97,
                      generator=torch.Generator().manual_seed(seed))
    return states[-1].codes_sum


def decode(tok_cfg, codes_sum: torch.Tensor, gen: torch.Generator):
    from infinity.tokenizer import build_tokenizer

    tok = materialize(build_tokenizer(tok_cfg, device="meta"), gen).eval()
    with torch.no_grad():
        return tok.codes_to_image(codes_sum)


# -- the run ---------------------------------------------------------------------------------------------------------
def tiny_config(cfg):
    """The same layout at smoke-test widths (text width = tiny T5's)."""
    t = dataclasses.replace(cfg.transformer, depth=cfg.transformer.block_chunks, embed_dim=64, num_heads=2,
                            text_channels=T5_TINY["d_model"], text_maxlen=64)
    k = dataclasses.replace(cfg.tokenizer, base_ch=32, ch_mult=cfg.tokenizer.ch_mult[:3], num_res_blocks=1,
                            norm_groups=8)
    return dataclasses.replace(cfg, transformer=t, tokenizer=k)


def run(a) -> dict:
    torch.set_num_threads(a.threads)
    cfg = MODEL_PRESETS[a.variant]
    cfg = tiny_config(cfg) if a.tiny else cfg
    t5_cfg = T5_TINY if a.tiny else T5_XL
    schedule = schedules.scale_schedule(1.0, a.budget)
    gen = torch.Generator().manual_seed(0)
    ph = Phases()
    t0 = time.perf_counter()
    print(f"{a.variant}{' (tiny widths)' if a.tiny else ''}, {a.budget}: {len(schedule)} scales, "
          f"{schedules.token_count(schedule)} tokens, {'int8' if a.int8 else 'float32'} blocks, {a.threads} threads; "
          f"start RSS {rss_gib():.2f} GiB", flush=True)
    cond = ph.run("text", encode_text, t5_cfg, a.text_tokens, gen)
    tf = ph.run("build", build_transformer, cfg.transformer, a.int8, gen)
    codes_sum = ph.run("sampling", sample, tf, cond, schedule, a.seed)
    del tf  # the decoder does not need the transformer
    img = ph.run("decode", decode, cfg.tokenizer, codes_sum, gen)
    return {"variant": a.variant, "tiny": a.tiny, "budget": a.budget, "scales": len(schedule),
            "tokens": schedules.token_count(schedule), "image": list(img.shape[-2:]), "int8": a.int8,
            "text_encoder": "t5-tiny" if a.tiny else "flan-t5-xl architecture", "text_tokens": a.text_tokens,
            "threads": a.threads, "phases": ph.rows, "total_s": round(time.perf_counter() - t0, 2),
            "peak_rss_gib": max(r["peak_rss_gib"] for r in ph.rows), "per_phase_peaks": ph.resets,
            "command": " ".join([os.path.basename(sys.executable), "bench/cpu_mode.py", *sys.argv[1:]]),
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="infinity-2b", choices=sorted(MODEL_PRESETS))
    p.add_argument("--budget", default="1M", help="pixel budget (1M = 1024x1024, 13 scales)")
    p.add_argument("--float32", dest="int8", action="store_false", help="float32 blocks instead of int8")
    p.add_argument("--tiny", action="store_true", help="smoke-test widths (checks the script in seconds)")
    p.add_argument("--text-tokens", type=int, default=40, help="prompt length in T5 pieces, EOS included")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/results_cpu_mode.json, "
                   "not written with --tiny unless given)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    res = run(a)
    print(f"total {res['total_s']:.1f} s, peak RSS {res['peak_rss_gib']:.2f} GiB"
          + ("" if res["per_phase_peaks"] else " (peaks are cumulative: clear_refs not allowed here)"))
    out = a.out or (None if a.tiny else Path(__file__).resolve().parent / "results_cpu_mode.json")
    if out:
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
