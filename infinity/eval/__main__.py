"""Evaluation that reads pixels, not the generator's intentions.

    python -m infinity.eval --n 200 --out runs/eval.json                 # the bundled model
    python -m infinity.eval --model runs/tf/model --compare runs/tf_noflip/model   # self-correction ablation

1. checker sanity: the checker's score on ground-truth renders of the held-out prompts (must be ≥ 0.98);
2. generation: each held-out prompt (colour–shape pairs never seen in training) generated with its own seed,
   scored per attribute (background, colour, shape, position, count, relation, …); the same for as many prompts
   of colour–shape pairs seen in training (a diagnostic: memorised pairs versus composition);
3. tokenizer: reconstruction PSNR on held-out scenes and on the curated emoji, and its ceiling: the checker's
   score on the ground truth passed through the tokenizer (what a perfect transformer could reach);
4. emoji by name: nearest-emoji retrieval of images generated from plain emoji names (`infinity/eval/emoji.py`),
   with the real emoji and the real emoji blurred to colour blobs as references;
5. seed diversity: mean pixel difference between four seeds of the same prompt.
Prints a markdown table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..data import scenes
from ..images import psnr
from .checker import ATTRIBUTES, score
from .emoji import emoji_retrieval, seed_diversity


def reconstruct(pipe, images) -> tuple[float, list]:
    """(mean PSNR, reconstructions) of images passed through the tokenizer (encode, then decode every scale)."""
    vals, recs = [], []
    for im in images:
        resized, pyr = pipe.encode_image(im, h_div_w=im.height / im.width)
        recs.append(pipe.decode(pyr.codes_sum[-1])[0])
        vals.append(psnr(resized, recs[-1]))
    return float(np.mean(vals)), recs


def tokenizer_psnr(pipe, images) -> float:
    return reconstruct(pipe, images)[0]


def evaluate(pipe, n: int, seed: int = 0, n_emoji: int = 200, n_emoji_gen: int = 100) -> dict:
    H, W = pipe.pixel_size(1.0)
    pairs = scenes.heldout_scenes(n, seed)
    truth = [scenes.render_scene(sc, W, H) for _, sc in pairs]
    prompts = [cap for cap, _ in pairs]
    res = {"n": n, "size": [H, W], "checker_on_ground_truth": score(truth, prompts)}
    t0 = time.perf_counter()
    gen = [pipe(p, seed=seed + i).images[0] for i, p in enumerate(prompts)]
    res["seconds_per_image"] = (time.perf_counter() - t0) / n
    res["generated"] = score(gen, prompts)
    # diagnostic: the same number of prompts built from colour-shape pairs seen in training (fresh scenes)
    seen = [cap for cap, _ in scenes.heldout_scenes(n, seed, split="train")]
    res["seen_pairs"] = score([pipe(p, seed=seed + i).images[0] for i, p in enumerate(seen)], seen)
    res["tokenizer_psnr_scenes"], recs = reconstruct(pipe, truth)
    # the checker on the ground truth passed through the tokenizer: what a perfect transformer could reach
    res["tokenizer_ceiling"] = score(recs, prompts)
    try:
        from ..data.emoji import EmojiDataset

        ds = EmojiDataset(size=(H, W))
        idx = np.linspace(0, len(ds) - 1, min(n_emoji, len(ds))).astype(int)
        res["tokenizer_psnr_emoji"] = tokenizer_psnr(pipe, [ds.image(int(i)) for i in idx])
        if n_emoji_gen:
            res["emoji_retrieval"] = emoji_retrieval(pipe, n_emoji_gen, seed)
    except (FileNotFoundError, RuntimeError, ValueError) as e:  # emoji package not installed
        res["tokenizer_psnr_emoji"] = None
        res["emoji_note"] = str(e)
    res["seed_diversity"] = seed_diversity(pipe, prompts[:20])
    return res


def table(results: dict[str, dict]) -> str:
    names = list(results)
    rows = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    first = results[names[0]]
    rows.append("| checker on ground truth (overall) | " + " | ".join(
        f"{r['checker_on_ground_truth']['overall']:.3f}" for r in results.values()) + " |")
    rows.append("| tokenizer ceiling (overall: checker on encoded+decoded ground truth) | " + " | ".join(
        f"{r['tokenizer_ceiling']['overall']:.3f}" for r in results.values()) + " |")
    for a in ATTRIBUTES:
        if a in first["generated"]:
            label = {"single_shape": "shape, single objects (diagnostic)",
                     "single_shape_noncircle": "shape, single objects except circles (diagnostic)"}.get(a, a)
            rows.append(f"| {label} | " + " | ".join(
                f"{r['generated'].get(a, float('nan')):.3f}" for r in results.values()) + " |")
    if all("seen_pairs" in r for r in results.values()):
        rows.append("| all attributes right, prompts of seen colour–shape pairs (diagnostic) | " + " | ".join(
            f"{r['seen_pairs']['overall']:.3f}" for r in results.values()) + " |")
    for k, label in (("tokenizer_psnr_scenes", "tokenizer PSNR scenes (dB)"), ("tokenizer_psnr_emoji", "tokenizer PSNR emoji (dB)")):
        rows.append(f"| {label} | " + " | ".join(f"{r[k]:.2f}" if r.get(k) is not None else "–" for r in results.values()) + " |")
    if all("emoji_retrieval" in r for r in results.values()):
        for k, label in (("generated", "emoji by name, generated"), ("blurred_blobs", "emoji by name, real emoji blurred to blobs (reference)")):
            rows.append(f"| {label}: top-1 / top-5 | " + " | ".join(
                f"{r['emoji_retrieval'][k]['top1']:.3f} / {r['emoji_retrieval'][k]['top5']:.3f}" for r in results.values()) + " |")
    if all("seed_diversity" in r for r in results.values()):
        rows.append("| seed diversity (mean pixel difference, 0–255) | " + " | ".join(
            f"{r['seed_diversity']:.1f}" for r in results.values()) + " |")
    rows.append("| seconds per image | " + " | ".join(f"{r['seconds_per_image']:.3f}" for r in results.values()) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    from ..pipeline import InfinityPipeline

    p = argparse.ArgumentParser(prog="python -m infinity.eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--compare", nargs="*", default=[], help="more model folders evaluated the same way")
    p.add_argument("--n", type=int, default=400, help="held-out prompts")
    p.add_argument("--n-emoji", type=int, default=100, help="emoji generated from their names (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    results = {}
    for src in [a.model] + list(a.compare):
        name = src or "bundled"
        results[name] = evaluate(InfinityPipeline.from_pretrained(src, device="cpu"), a.n, a.seed, n_emoji_gen=a.n_emoji)
    print(table(results))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
