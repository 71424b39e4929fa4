"""Training throughput of the bundled model's transformer on this machine: images/s, tokens/s, and the FLOP/s the
training step achieves against a matmul peak measured in the same run.

    python bench/train_throughput.py                                   # the bundled preset (small-v2)
    python bench/train_throughput.py --preset small-v2 --variants all  # every option below, side by side

One training step = the real one (`infinity.train.transformer.bitwise_loss` with flips, backward, clipping, AdamW)
on random features and text of the real shapes, at one (ratio, budget) bucket, so shapes are fixed per run.
FLOPs are counted by torch's FlopCounterMode on one step (forward + backward), not estimated. Variants:

- `plain`: AdamW with its default implementation (foreach on CPU);
- `loop`: AdamW(foreach=False), the per-tensor loop;
- `fused`: AdamW(fused=True) where torch supports it on CPU;
- `compile`: the model wrapped in torch.compile (one bucket = one shape, compiled once, warm-up excluded);
- `compile_blocks`: only the transformer blocks compiled (`infinity.train.common.compile_blocks`: one block's code
  serves all of them, so each new shape compiles in a fraction of the time);
- `threads1`: one thread (what each process gets in a 2-process run).

Not a test: numbers depend on the machine. Writes JSON with --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cpu import matmul_peak  # noqa: E402  (the same peak measurement as the inference bench)
from infinity import schedules  # noqa: E402
from infinity.config import TextCondition, model_preset  # noqa: E402
from infinity.train.common import compile_blocks  # noqa: E402
from infinity.train.transformer import bitwise_loss  # noqa: E402
from infinity.transformer import InfinityTransformer  # noqa: E402

VARIANTS = ("plain", "loop", "fused", "compile", "compile_blocks", "threads1")


def make_step(cfg, variant: str, batch: int, ratio: float, budget: str):
    """A closure running one training step, and the model it trains."""
    tcfg = cfg.transformer
    model = InfinityTransformer(tcfg, seed=0).train()
    opt_kw = {"loop": {"foreach": False}, "fused": {"fused": True}}.get(variant, {})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, **opt_kw)
    net = torch.compile(model) if variant == "compile" else model
    if variant == "compile_blocks":
        compile_blocks(model)
    sched = schedules.scale_schedule(ratio, budget, cfg.budgets)
    h, w = sched[-1]
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(batch, tcfg.d_vae, h, w, generator=g) * 0.3
    text = TextCondition(torch.randn(batch, 12, tcfg.text_channels, generator=g), torch.ones(batch, 12, dtype=torch.bool))

    def step():
        loss, _ = bitwise_loss(net, feats, text, ratio, budget, cfg, 0.3, g, torch.rand(batch, generator=g) < 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step, model, sum(h * w for h, w in sched)


def count_flops(step) -> float:
    with FlopCounterMode(display=False) as fc:
        step()
    return float(fc.get_total_flops())


def measure(cfg, variant: str, batch: int, ratio: float, budget: str, seconds: float, threads: int) -> dict:
    torch.set_num_threads(1 if variant == "threads1" else threads)
    try:
        step, model, tokens = make_step(cfg, variant, batch, ratio, budget)
        flops = count_flops(make_step(cfg, "plain", batch, ratio, budget)[0])
        t0 = time.perf_counter()
        for _ in range(2 if variant.startswith("compile") else 1):  # warm-up (compilation)
            step()
        warm = time.perf_counter() - t0
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 3:
            step()
            n += 1
        dt = (time.perf_counter() - t0) / n
    except Exception as e:  # an option this torch build lacks (e.g. fused AdamW on CPU): reported, not fatal
        return {"variant": variant, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
    finally:
        torch.set_num_threads(threads)
    params = sum(p.numel() for p in model.parameters())
    return {"variant": variant, "params_M": params / 1e6, "batch": batch, "tokens_per_image": tokens,
            "s_per_step": dt, "images_per_s": batch / dt, "tokens_per_s": batch * tokens / dt,
            "gflop_per_step": flops / 1e9, "gflop_per_s": flops / dt / 1e9, "warmup_s": warm}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", nargs="+", default=["small-v2"], help="model presets from infinity/config.py")
    p.add_argument("--variants", nargs="+", default=["plain"], help=f"any of {VARIANTS}, or 'all'")
    p.add_argument("--budget", default=None, help="default: the preset's default budget")
    p.add_argument("--ratio", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=16, help="images per step")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=INT",
                   help="transformer overrides, e.g. depth=8 embed_dim=256 num_heads=4")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per row")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    variants = VARIANTS if a.variants == ["all"] else a.variants
    torch.set_num_threads(a.threads)
    peak = matmul_peak(1024, 20)  # 1024²: the size class of this model's largest matmuls
    rows = []
    print(f"fp32 matmul peak (1024², {a.threads} threads): {peak:.0f} GFLOP/s")
    print("| preset | variant | params | batch | tokens/img | s/step | img/s | tokens/s | GFLOP/s | % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in a.preset:
        cfg = model_preset(name, **{k: int(v) for k, v in (kv.split("=") for kv in a.set)})
        budget = a.budget or cfg.default_budget
        batch = a.batch
        for v in variants:
            r = measure(cfg, v, batch, a.ratio, budget, a.seconds, a.threads)
            r.update(preset=name, budget=budget)
            rows.append(r)
            if "error" in r:
                print(f"| {name} | {v} | – | – | – | – | – | – | – | {r['error']} |")
                continue
            print(f"| {name} | {v} | {r['params_M']:.1f} M | {batch} | {r['tokens_per_image']} | {r['s_per_step']:.3f} | "
                  f"{r['images_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['gflop_per_s']:.0f} | "
                  f"{100 * r['gflop_per_s'] / peak:.0f} % |", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                                     "threads": a.threads, "matmul_peak_gflops": peak, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
