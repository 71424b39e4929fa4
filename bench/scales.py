"""Where does a model lose the picture? Teacher-forcing diagnostics on held-out scene prompts.

    python bench/scales.py                                   # bundled model, 100 prompts
    python bench/scales.py --model runs/transformer3/model --n 100 --out bench/results_scales.json

1. per-scale bit accuracy: every earlier scale forced to the ground truth's bits, this scale greedy;
2. the checker's scores when the first k scales are the ground truth's and the model samples the rest (k = 0 is
   plain generation, k = all scales is the tokenizer's ceiling): how much each scale the model gets wrong costs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infinity.data import scenes  # noqa: E402
from infinity.eval.checker import score  # noqa: E402


def main() -> None:
    from infinity.pipeline import InfinityPipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--n", type=int, default=100, help="held-out prompts")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    pipe = InfinityPipeline.from_pretrained(a.model, device="cpu")
    H, W = pipe.pixel_size(1.0)
    pairs = scenes.heldout_scenes(a.n, 0)
    prompts = [cap for cap, _ in pairs]
    pyrs = [pipe.encode_image(scenes.render_scene(sc, W, H), h_div_w=1.0)[1] for _, sc in pairs]
    n_scales = len(pyrs[0].bits)

    acc = []
    for s in range(n_scales):
        hits = [(pipe(c, seed=i, forced_bits=pyr.bits[:s], greedy=True).states[s].bits.cpu() == pyr.bits[s].cpu())
                .float().mean().item() for i, (c, pyr) in enumerate(zip(prompts, pyrs))]
        acc.append(float(np.mean(hits)))
    forced = {}
    for k in range(n_scales + 1):
        imgs = [pipe(c, seed=i, forced_bits=pyr.bits[:k]).images[0] for i, (c, pyr) in enumerate(zip(prompts, pyrs))]
        forced[k] = score(imgs, prompts)
    res = {"model": a.model or "bundled", "n": a.n, "bit_accuracy_teacher_forced": acc,
           "forced_first_scales": {str(k): v for k, v in forced.items()}}
    print("teacher-forced greedy bit accuracy per scale:", " ".join(f"{x:.3f}" for x in acc))
    print("| true scales forced | colour | shape | count | relation | all right |")
    print("|---|---|---|---|---|---|")
    for k, v in forced.items():
        print(f"| {k} | {v['color']:.3f} | {v['shape']:.3f} | {v.get('count', float('nan')):.3f} | "
              f"{v.get('relation', float('nan')):.3f} | {v['overall']:.3f} |")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
