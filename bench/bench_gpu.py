"""GPU benchmark of the official architectures with random weights: Infinity-2B and Infinity-8B through the
pipeline (T5-XL encoder built from its config, guidance 3, bf16 blocks as the official code), in each memory mode.

    python bench/bench_gpu.py                                  # 2B and 8B at 1M, every mode, → bench/results_gpu.json
    python bench/bench_gpu.py --variants infinity-2b --modes resident text-offload --runs 5
    python bench/bench_gpu.py --tiny --device cpu --runs 1      # smoke test of this script on a CPU (tiny widths)

Per variant and mode it reports the first call (cold: CUDA kernels and allocator warm-up included), the warm
latency (median of --runs), the per-phase split (prompt encoding, sampling, decode), the GPU memory the weights
hold after loading and the peak during generation. Modes (`from_pretrained` flags, outputs identical in all):

    resident         everything on the GPU
    text-offload     offload_text_encoder: T5 in host memory, on the GPU only while a prompt is encoded
    text-cpu         text_encoder_device="cpu": T5 runs on the CPU
    blocks-offload   offload_blocks + offload_text_encoder: one transformer block on the GPU at a time

A mode that does not fit the GPU is recorded as out of memory and the run goes on. Targets (issue 14): 2B at 1024²
in bf16 ≤ 0.35 s warm sampling on an H100-class GPU, ≤ 12 GB peak with the text encoder offloaded.
Not a test; without CUDA (and without --device cpu) it says so and exits.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from infinity import build_tokenizer, build_transformer  # noqa: E402
from infinity.config import MODEL_PRESETS, ModelConfig  # noqa: E402
from infinity.loading import MemoryPlan  # noqa: E402
from infinity.pipeline import InfinityPipeline  # noqa: E402
from timing import Stopwatch, write_results  # noqa: E402

MODES = {
    "resident": MemoryPlan(),
    "text-offload": MemoryPlan(offload_text_encoder=True),
    "text-cpu": MemoryPlan(text_encoder_device="cpu"),
    "blocks-offload": MemoryPlan(offload_text_encoder=True, offload_blocks=True),
}
PROMPT = ("a photo of a red fox sitting in a snowy forest at dawn, soft light, shallow depth of field, "
          "highly detailed fur, 35mm film")
T5_XL = dict(d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_heads=32, feed_forward_proj="gated-gelu",
             vocab_size=32128)  # flan-t5-xl's encoder (1.22 B parameters)
T5_TINY = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
               vocab_size=512)


def tiny(cfg: ModelConfig) -> ModelConfig:
    """The same layout at smoke-test widths (same patchify, same chunking), for --tiny."""
    t = dataclasses.replace(cfg.transformer, depth=cfg.transformer.block_chunks, embed_dim=64, num_heads=2,
                            text_channels=64, text_maxlen=64)
    k = dataclasses.replace(cfg.tokenizer, base_ch=32, ch_mult=cfg.tokenizer.ch_mult[:3], num_res_blocks=1, norm_groups=8)
    return dataclasses.replace(cfg, transformer=t, tokenizer=k)


def word_tokenizer(vocab_size: int):
    """A T5-shaped tokenizer built in code (no download): words → ids, `</s>` appended, `<pad>` 0. Random weights
    make the words meaningless anyway; only the token count matters for timing."""
    import tokenizers
    import transformers
    from tokenizers import models, pre_tokenizers, processors

    words = PROMPT.replace(",", " ").split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(words))}}
    assert len(vocab) <= vocab_size
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>",
                                                unk_token="<unk>")


@torch.no_grad()
def random_state(module: torch.nn.Module, place) -> dict:
    """Random tensors created where they will live (device, dtype): nothing is built twice, so an 8B model in
    bf16 needs its 15.3 GB and no float32 copy."""
    g = {}
    for k, v in module.state_dict().items():
        dev, dt = place(k)
        if v.is_floating_point():
            g[k] = torch.randn(v.shape, device=dev, dtype=dt).mul_(0.02)
        else:
            g[k] = torch.zeros(v.shape, device=dev, dtype=v.dtype)
    return g


def build(cfg: ModelConfig, device: torch.device, dtype, plan: MemoryPlan, t5_cfg: dict) -> InfinityPipeline:
    """The pipeline `from_pretrained` would give for these flags, with random weights instead of files."""
    import transformers

    from infinity.offload import offload_blocks
    from infinity.text import TextEncoder

    low = dtype != torch.float32

    def place(k):
        block = k.startswith("block_chunks.")
        dev = torch.device("cpu") if block and plan.offload_blocks else device
        return dev, (dtype if block and low else torch.float32)

    tf = build_transformer(cfg.transformer, device="meta")
    tf.load_official(random_state(tf, place), place=lambda k, t: t)
    if plan.offload_blocks:
        offload_blocks(tf, device)
    tok = build_tokenizer(cfg.tokenizer, device="meta")
    tok.load_official(random_state(tok, lambda k: (device, torch.float32)))
    tok.to(device)
    with torch.device("meta"):
        t5 = transformers.T5EncoderModel(transformers.T5Config(**t5_cfg))
    t5_dev = torch.device("cpu") if plan.offload_text_encoder or plan.text_encoder_device else device
    t5.load_state_dict(random_state(t5, lambda k: (t5_dev, torch.float32)), assign=True)
    t5.tie_weights()
    te = TextEncoder.from_modules(word_tokenizer(t5_cfg["vocab_size"]), t5, max_length=512)
    if plan.offload_text_encoder and device.type != "cpu":
        te.offload(device)
    return InfinityPipeline(tok.eval(), tf.eval(), te, cfg, compute_dtype=dtype)


def one_call(pipe, budget, device) -> dict:
    with Stopwatch(device) as sw:
        out = pipe(PROMPT, seed=0, budget=budget)
    t = out.timings
    return {"total_s": sw.seconds, "prepare_s": t["prepare"], "sampling_s": t["sampling"], "decode_s": t["decode"],
            "size": list(out.images[0].size)}


def measure(variant: str, mode: str, a, device) -> dict:
    cfg = MODEL_PRESETS[variant]
    cfg = tiny(cfg) if a.tiny else cfg
    budget = a.budget if a.budget in cfg.budgets else cfg.default_budget
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[a.dtype]
    row = {"variant": variant, "mode": mode, "budget": budget, "dtype": a.dtype}
    gib = 2 ** 30
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        with Stopwatch(device) as sw:
            pipe = build(cfg, device, dtype, MODES[mode], T5_TINY if a.tiny else T5_XL)
        row["build_s"] = sw.seconds
        if device.type == "cuda":
            row["weights_on_gpu_gib"] = torch.cuda.memory_allocated() / gib
            torch.cuda.reset_peak_memory_stats()
        row["first_call"] = one_call(pipe, budget, device)
        warm = [one_call(pipe, budget, device) for _ in range(a.runs)]
        row["warm_median"] = {k: statistics.median(r[k] for r in warm) for k in warm[0] if k != "size"}
        row["size"] = warm[0]["size"]
        if device.type == "cuda":
            row["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / gib
            row["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / gib
    except torch.cuda.OutOfMemoryError as e:  # this mode does not fit this GPU: say so and go on
        row["error"] = f"out of memory: {str(e).splitlines()[0]}"
    finally:
        pipe = None  # noqa: F841
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=["infinity-2b", "infinity-8b"],
                   choices=["infinity-2b", "infinity-8b", "infinity-8b-512"])
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--budget", default="1M", help="pixel budget (the variant's default when it lacks this one)")
    p.add_argument("--runs", type=int, default=3, help="warm calls per mode (median reported)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--device", default=None, help="default: cuda")
    p.add_argument("--tiny", action="store_true", help="tiny widths, same layouts: checks this script, measures nothing")
    p.add_argument("--out", type=Path, default=Path("bench/results_gpu.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    device = torch.device(a.device or "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure (use --tiny --device cpu to check the script)")
        return 0
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for variant in a.variants:
        for mode in a.modes:
            row = measure(variant, mode, a, device)
            rows.append(row)
            w = row.get("warm_median", {})
            print(f"{variant:16s} {mode:15s} first {row.get('first_call', {}).get('total_s', float('nan')):7.2f} s  "
                  f"warm {w.get('total_s', float('nan')):7.2f} s (sampling {w.get('sampling_s', float('nan')):6.2f})  "
                  f"peak {row.get('peak_gpu_gib', float('nan')):6.2f} GiB  {row.get('error', '')}", flush=True)
    res = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
           "tiny": a.tiny, "prompt_words": len(PROMPT.split()), "guidance": 3.0, "rows": rows}
    write_results(a.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
