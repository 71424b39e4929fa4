"""When does a share link reproduce a result exactly? Generates the same (prompt, seed) pairs under several thread
counts and reports how many images are pixel-identical to the single-thread run, and the largest difference.

    python bench/exactness.py                      # bundled model, threads 1 2 4, 16 prompts × seeds
    python bench/exactness.py --threads 1 2 --n 32 --out bench/results_exactness.json

Not a test: the answer depends on the machine's math library (oneDNN/MKL pick different kernels, and so different
summation orders, for different thread counts and CPUs).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infinity.data.scenes import heldout_scenes  # noqa: E402

EXTRA = ["red apple", "sunflower", "cactus", "a smiling face"]


def main() -> None:
    from infinity.pipeline import InfinityPipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    pipe = InfinityPipeline.from_pretrained(a.model, device="cpu")
    prompts = (EXTRA + [c for c, _ in heldout_scenes(a.n, 0)])[: a.n]
    images = {}
    for t in a.threads:
        torch.set_num_threads(t)
        t0 = time.perf_counter()
        images[t] = [np.asarray(pipe(pr, seed=i).images[0], np.int16) for i, pr in enumerate(prompts)]
        print(f"threads {t}: {(time.perf_counter() - t0) / len(prompts):.3f} s/image", file=sys.stderr)
    ref = a.threads[0]
    rows = []
    for t in a.threads[1:]:
        diffs = [int(np.abs(x - y).max()) for x, y in zip(images[ref], images[t])]
        rows.append({"threads": [ref, t], "identical": sum(d == 0 for d in diffs), "n": len(diffs),
                     "max_abs_pixel_diff": max(diffs)})
    # the same thread count twice: must be identical (no batching across requests, fixed seeds)
    torch.set_num_threads(a.threads[-1])
    again = [np.asarray(pipe(pr, seed=i).images[0], np.int16) for i, pr in enumerate(prompts)]
    same = sum(np.array_equal(x, y) for x, y in zip(images[a.threads[-1]], again))
    rows.append({"threads": [a.threads[-1], a.threads[-1]], "identical": int(same), "n": len(prompts),
                 "max_abs_pixel_diff": max(int(np.abs(x - y).max()) for x, y in zip(images[a.threads[-1]], again))})
    print("| threads | identical images | largest pixel difference |\n|---|---|---|")
    for r in rows:
        print(f"| {r['threads'][0]} vs {r['threads'][1]} | {r['identical']}/{r['n']} | {r['max_abs_pixel_diff']} |")
    if a.out:
        a.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine(),
                                     "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
