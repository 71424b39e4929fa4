"""Emoji by name, judged from pixels: is the generated image nearest to the emoji that was asked for?

Every emoji the model trains on becomes a small thumbnail (24×24 RGB on white, the way the training images show
them); a generated image is shrunk the same way and the emoji are ranked by squared distance. Top-1 / top-5 say
how often the asked emoji is the nearest / among the five nearest. Two references put the numbers in context:
the real emoji (1.0 by construction: the check itself works) and the real emoji blurred into colour blobs (what
colour and rough layout alone can score; a generator must beat it to show it draws more than blobs).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

THUMB = 24          # thumbnail side, pixels
BLOB_BLUR = 0.1     # Gaussian radius of the "colour blob" reference, as a fraction of the image side


def thumbnail(image: Image.Image) -> np.ndarray:
    """(THUMB·THUMB·3,) float32 of a centre-cropped square, box-filtered down."""
    im = image.convert("RGB")
    s = min(im.size)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((THUMB, THUMB), Image.BOX)
    return np.asarray(im, np.float32).reshape(-1)


def ranks(images, targets: list[int], gallery: np.ndarray) -> list[int]:
    """Rank (0 = nearest) of each image's target among the gallery's rows."""
    out = []
    for im, t in zip(images, targets, strict=True):
        d = ((gallery - thumbnail(im)) ** 2).sum(1)
        out.append(int((d < d[t]).sum()))
    return out


def summary(rank_list: list[int]) -> dict:
    r = np.asarray(rank_list)
    return {"top1": float((r == 0).mean()), "top5": float((r < 5).mean()), "median_rank": float(np.median(r))}


def emoji_retrieval(pipe, n: int = 100, seed: int = 0) -> dict:
    """Generate `n` emoji (evenly spread over the curated set) from their plain names at the default size, 1:1."""
    from ..data.emoji import EmojiDataset

    H, W = pipe.pixel_size(1.0)
    ds = EmojiDataset(size=(H, W))
    gallery = np.stack([thumbnail(ds.image(i)) for i in range(len(ds))])
    idx = [int(i) for i in np.linspace(0, len(ds) - 1, min(n, len(ds)))]
    real = [ds.image(i) for i in idx]
    blobs = [im.filter(ImageFilter.GaussianBlur(BLOB_BLUR * W)) for im in real]
    generated = [pipe(ds.entries[i].name, seed=seed + k).images[0] for k, i in enumerate(idx)]
    return {"n": len(idx), "gallery": len(ds), "generated": summary(ranks(generated, idx, gallery)),
            "real": summary(ranks(real, idx, gallery)), "blurred_blobs": summary(ranks(blobs, idx, gallery))}


def seed_diversity(pipe, prompts: list[str], seeds: int = 4) -> float:
    """Mean absolute pixel difference (0–255) between images of the same prompt under different seeds."""
    from ..images import mean_abs_diff

    diffs = []
    for k, p in enumerate(prompts):
        ims = [pipe(p, seed=1000 * k + s).images[0] for s in range(seeds)]
        diffs += [mean_abs_diff(ims[a], ims[b]) for a in range(seeds) for b in range(a + 1, seeds)]
    return float(np.mean(diffs))
