"""CPU benchmark: seconds per image, per-scale breakdown, tokens/s, peak RSS and achieved FLOP/s against a matmul
peak measured in the same run.

    python bench/bench_cpu.py                       # bundled model at every budget it declares
    python bench/bench_cpu.py --arch layer12 2b     # random-weight official architectures at 0.06M (slow)

Prints a table and writes JSON (--out). Not a test: numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infinity import schedules  # noqa: E402
from infinity.config import TextCondition  # noqa: E402


def matmul_peak(n: int = 2048, reps: int = 10) -> float:
    """Achievable fp32 GFLOP/s of a large matmul with the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def transformer_flops(cfg, schedule, batch: int, text_len: int) -> float:
    """Forward FLOPs of one generation (2 per multiply-add): linear layers per token, attention against the
    cache, the text projections once."""
    C, F, d = cfg.embed_dim, cfg.ffn_hidden, cfg.d_vae
    per_token_block = 2 * (4 * C * C + 2 * C * C + 2 * C * F)  # qkv+proj, ca q+proj, ffn
    flops, seen = 0.0, 0
    for h, w in schedule:
        n = h * w
        seen += n
        flops += n * cfg.depth * (per_token_block + 4 * C * (seen + text_len))  # qk^T and av
        flops += n * (2 * d * C + 2 * C * 2 * d)  # word embed + head
    flops += text_len * cfg.depth * 2 * C * 2 * C  # cross-attention keys/values, once
    return flops * batch


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_bundled(runs: int) -> list[dict]:
    from infinity.pipeline import InfinityPipeline

    pipe = InfinityPipeline.from_pretrained(device="cpu")
    rows = []
    for budget in pipe.budgets():
        sched = pipe.schedule(1.0, budget)
        prompt = "a red circle on a blue background"
        pipe(prompt, seed=0, budget=budget)  # warm-up
        times, parts = [], None
        for i in range(runs):
            out = pipe(prompt, seed=i, budget=budget)
            times.append(out.timings["total"])
            parts = out.timings
        best = min(times)
        text_len = int(pipe.encode_prompt([prompt])[0].lengths.max())
        fl = transformer_flops(pipe.transformer.cfg, sched, 2, text_len)
        H, W = pipe.pixel_size(1.0, budget)
        rows.append({"what": f"bundled {H}x{W} ({budget})", "seconds": best, "median": sorted(times)[len(times) // 2],
                     "per_scale_ms": [round(s * 1000, 2) for s in parts["scales"]], "decode_s": parts["decode"],
                     "tokens_per_s": schedules.token_count(sched) / parts["sampling"],
                     "gflops_per_s": fl / parts["sampling"] / 1e9, "rss_mb": rss_mb()})
    return rows


def bench_arch(name: str, guidance: float = 3.0, previews: bool = False, int8: bool = False) -> dict:
    """An official architecture with random weights at 0.06M, VAE decode timed apart. With `previews`, also the
    cost of decoding a preview after every scale (the app's live view): at full size vs at `preview_grid`."""
    import infinity
    from infinity.pipeline import preview_grid
    from infinity.sampling import generate

    tf = infinity.build_transformer({"layer12": "infinity-layer12", "2b": "infinity-2b"}[name])
    if int8:
        from infinity.transformer.int8 import quantize_int8

        quantize_int8(tf)
    tok = infinity.build_tokenizer("vae-d32")
    sched = schedules.scale_schedule(1.0, "0.06M")
    g = torch.Generator().manual_seed(0)
    cond = TextCondition(torch.randn(1, 16, tf.cfg.text_channels, generator=g), torch.ones(1, 16, dtype=torch.bool))
    generate(tf, cond, sched[:3], guidance=guidance)  # warm-up
    t = time.perf_counter()
    states = generate(tf, cond, sched, guidance=guidance, generator=g)
    sample_s = time.perf_counter() - t
    with torch.no_grad():
        t = time.perf_counter()
        tok.codes_to_image(states[-1].codes_sum)
        decode_s = time.perf_counter() - t
    fl = transformer_flops(tf.cfg, sched, 2 if guidance != 1 else 1, 16)
    row = {"what": f"{name}{' int8' if int8 else ''} random weights 256x256 (0.06M), cfg {guidance}",
           "seconds": sample_s + decode_s,
           "sampling_s": sample_s, "decode_s": decode_s, "tokens_per_s": schedules.token_count(sched) / sample_s,
           "gflops_per_s": fl / sample_s / 1e9, "rss_mb": rss_mb()}
    if previews:
        with torch.no_grad():
            for key, grid_of in (("previews_full_s", lambda hw: None),
                                 ("previews_reduced_s", lambda hw: preview_grid(hw, sched[-1]))):
                t = time.perf_counter()
                for st, hw in zip(states, sched):
                    tok.codes_to_image(st.codes_sum, grid_of(hw))
                row[key] = time.perf_counter() - t
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", nargs="*", default=[], choices=["layer12", "2b"])
    p.add_argument("--no-bundled", action="store_true")
    p.add_argument("--previews", action="store_true", help="also time per-scale preview decoding (full vs reduced)")
    p.add_argument("--int8", action="store_true", help="also run each --arch with int8 linear layers")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench/results_cpu.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    peak = matmul_peak()
    rows = [] if a.no_bundled else bench_bundled(a.runs)
    for n in a.arch:
        rows.append(bench_arch(n, previews=a.previews))
        if a.int8:
            rows.append(bench_arch(n, int8=True))
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {a.threads} threads, "
          f"matmul peak {peak:.1f} GFLOP/s")
    print(f"{'what':48s} {'s/img':>7s} {'tok/s':>9s} {'GFLOP/s':>8s} {'% peak':>7s} {'RSS MB':>7s}")
    for r in rows:
        print(f"{r['what']:48s} {r['seconds']:7.3f} {r['tokens_per_s']:9.0f} {r['gflops_per_s']:8.1f} "
              f"{100 * r['gflops_per_s'] / peak:6.1f}% {r['rss_mb']:7.0f}")
        if "sampling_s" in r:
            print(f"  sampling {r['sampling_s']:.2f} s + decode {r['decode_s']:.2f} s")
        if "previews_full_s" in r:
            print(f"  previews after every scale: full-size decodes {r['previews_full_s']:.2f} s, "
                  f"reduced {r['previews_reduced_s']:.2f} s")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "threads": a.threads, "matmul_peak_gflops": peak,
                                 "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
