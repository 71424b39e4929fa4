"""Pixel-reading checker for scene prompts: judges an image against a ``SceneSpec``.

It reads only the image. Steps:
1. background = median of the border pixels, named by the nearest palette colour;
2. foreground = pixels clearly away from that background colour; objects never touch in
   the scene grammar, so each 4-connected foreground region is one object;
3. a region's colour = median of its quarter farthest from the background (antialiased
   edge pixels are blends, e.g. red on yellow gives orange, so they must not vote);
4. coverage = where each pixel lies between background and object colour (0..1);
5. shape = the prototype (circle, square, triangle, star, heart: the words' definitions)
   that, placed and scaled from the coverage's total and centroid and softened by a few
   candidate blurs, reproduces the coverage best. Total and centroid survive blur, so
   this also reads the soft output of a small model; its fitted box gives the centre and
   size used for position, size and relation.
Only numpy and Pillow: the labelling below is a plain flood fill, fast enough at <= 256 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from infinity.data.scenes import PALETTE, SHAPES, SceneSpec, parse_caption, position_of, unit_polygon

_NAMES = list(PALETTE)
_RGB = np.array([PALETTE[n] for n in _NAMES], np.float32)
FOREGROUND_DIST = 40.0   # RGB distance from the background that marks a pixel as object
COLOR_MAX_DIST = 90.0    # farther than this from every palette colour: no colour name
MIN_AREA_FRAC = 0.004    # regions smaller than this fraction of the image are noise
MAX_FIT_ERROR = 0.2      # above this no prototype fits: the region has no shape name
BLUR_SIGMAS = (0.0, 0.6, 1.0, 1.5, 2.0)  # candidate softness of the image, pixels
PAD = 4                  # pixels of context around a region (room for its blurred edge)
_SS = 4                  # supersampling when drawing prototypes
SIZE_SPLIT = 0.345       # extent/short side between the 'small' and 'large' ranges
RELATION_MARGIN = 0.02   # centres must differ by this much (fraction of the axis)
ATTRIBUTES = ("background", "color", "shape", "object", "position", "size", "count", "relation", "overall",
              "single_shape", "single_shape_noncircle")
# Not part of "overall": the shape verdict again, restricted to single-object prompts, and to those whose shape is
# not a circle (a round blob passes as a circle, so this is the honest shape score of a soft generator).
DIAGNOSTICS = ("single_shape", "single_shape_noncircle")


@dataclass(frozen=True)
class Region:
    """One connected object found in the image; coordinates are fractions of width/height."""
    color: str | None
    shape: str | None
    cx: float
    cy: float
    extent: float  # longest side of the fitted box / short image side
    area: int


def _to_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
    raw = np.asarray(image)
    arr = raw.astype(np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got array of shape {arr.shape}")
    if raw.dtype.kind == "f" and arr.max() <= 1.0:  # a float image in [0, 1]
        arr = arr * 255.0
    return arr


def nearest_color(rgb: Sequence[float]) -> tuple[str | None, float]:
    """(palette name, distance) of the colour closest to ``rgb``; name None if too far."""
    d = np.linalg.norm(_RGB - np.asarray(rgb, np.float32), axis=1)
    i = int(d.argmin())
    return (_NAMES[i] if d[i] <= COLOR_MAX_DIST else None), float(d[i])


def _label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected component labels (1..n) of a boolean mask."""
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    flat, lab = mask.ravel(), labels.ravel()
    n = 0
    for start in np.flatnonzero(flat):
        if lab[start]:
            continue
        n += 1
        lab[start] = n
        stack = [int(start)]
        while stack:
            p = stack.pop()
            y, x = divmod(p, w)
            for q, ok in ((p - 1, x > 0), (p + 1, x < w - 1), (p - w, y > 0), (p + w, y < h - 1)):
                if ok and flat[q] and not lab[q]:
                    lab[q] = n
                    stack.append(q)
    return labels, n


@lru_cache(maxsize=None)
def _shape_stats(shape: str) -> tuple[float, float, float, float, float]:
    """(area fraction of its box, centroid x, y as box fractions, box w, h at extent 1)."""
    pts, aspect = unit_polygon(shape)
    x, y = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    cx, cy = ((x + x1) * cross).sum() / (6 * area), ((y + y1) * cross).sum() / (6 * area)
    bw, bh = (1.0, 1 / aspect) if aspect >= 1 else (aspect, 1.0)
    return float(abs(area)), float(cx), float(cy), bw, bh


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return img
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    img = np.pad(img, r)  # zero = background beyond the crop
    img = sum(k[i] * img[i:i + img.shape[0] - 2 * r] for i in range(2 * r + 1))
    return sum(k[i] * img[:, i:i + img.shape[1] - 2 * r] for i in range(2 * r + 1))


@dataclass(frozen=True)
class ShapeFit:
    shape: str | None
    cx: float      # fitted box centre, pixels in the crop
    cy: float
    extent: float  # fitted longest box side, pixels
    errors: dict   # shape -> relative squared error of its best fit


def fit_shape(coverage: np.ndarray) -> ShapeFit:
    """Fit each prototype to a coverage crop (background 0, object 1, some margin around).

    Blurring keeps an object's total coverage and its centroid, so for every shape those
    two numbers fix where its box must be and how big; the prototype is drawn there, blurred
    by a few candidate amounts (generated images are often soft), and compared with the
    crop. The shape with the smallest relative squared error wins.
    """
    h, w = coverage.shape
    mass = float(coverage.sum())
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    mx, my = float((coverage * xs).sum() / mass), float((coverage * ys).sum() / mass)
    energy = float((coverage ** 2).sum())
    errors, boxes = {}, {}
    for s in SHAPES:
        fill, pcx, pcy, bwf, bhf = _shape_stats(s)
        ext = (mass / (fill * bwf * bhf)) ** 0.5
        bw, bh = ext * bwf, ext * bhf
        x0, y0 = mx - pcx * bw, my - pcy * bh
        pts = unit_polygon(s)[0]
        canvas = Image.new("L", (w * _SS, h * _SS), 0)
        ImageDraw.Draw(canvas).polygon(
            [((x0 + px * bw) * _SS, (y0 + py * bh) * _SS) for px, py in pts], fill=255)
        drawn = np.asarray(canvas.reduce(_SS), np.float32) / 255.0
        errors[s] = min(float(((coverage - _blur(drawn, sg)) ** 2).sum()) / energy for sg in BLUR_SIGMAS)
        boxes[s] = (x0 + bw / 2, y0 + bh / 2, ext)
    best = min(errors, key=errors.get)
    cx, cy, ext = boxes[best]
    return ShapeFit(best if errors[best] <= MAX_FIT_ERROR else None, cx, cy, ext, errors)


def analyze(image) -> tuple[str | None, list[Region]]:
    """(background colour name, regions) read from an RGB image (PIL or HxWx3 array)."""
    arr = _to_array(image)
    H, W = arr.shape[:2]
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    bg_rgb = np.median(border, axis=0)
    bg_name, _ = nearest_color(bg_rgb)
    dist = np.linalg.norm(arr - bg_rgb, axis=2)
    labels, n = _label(dist > FOREGROUND_DIST)
    regions = []
    min_area = max(6, MIN_AREA_FRAC * H * W)
    for k in range(1, n + 1):
        ys, xs = np.nonzero(labels == k)
        if len(ys) < min_area:
            continue
        d = dist[ys, xs]
        core = arr[ys, xs][d >= np.percentile(d, 75)]
        color, _ = nearest_color(np.median(core, axis=0))
        # Coverage = position of each pixel between background and object colour. The
        # palette colour is the better reference when named: a blurred small object never
        # reaches its full colour anywhere.
        obj_rgb = np.asarray(PALETTE[color], np.float32) if color else np.median(core, axis=0)
        p = PAD
        y0, y1 = max(ys.min() - p, 0), min(ys.max() + 1 + p, H)
        x0, x1 = max(xs.min() - p, 0), min(xs.max() + 1 + p, W)
        axis = obj_rgb - bg_rgb
        cov = ((arr[y0:y1, x0:x1] - bg_rgb) @ axis) / max(float(axis @ axis), 1e-6)
        cov = np.clip(cov, 0, 1) * np.isin(labels[y0:y1, x0:x1], (0, k))
        if cov.sum() < 1:
            continue
        f = fit_shape(cov)
        regions.append(Region(color=color, shape=f.shape, cx=(x0 + f.cx) / W, cy=(y0 + f.cy) / H,
                              extent=f.extent / min(H, W), area=int(len(ys))))
    return bg_name, regions


def _relation_holds(rel: str, a: Region, b: Region) -> bool:
    m = RELATION_MARGIN
    return {"left of": a.cx < b.cx - m, "right of": a.cx > b.cx + m,
            "above": a.cy < b.cy - m, "below": a.cy > b.cy + m}[rel]


def check(image, spec: SceneSpec | str) -> dict[str, bool | None]:
    """Per-attribute verdicts for ``image`` against ``spec`` (or a caption to parse).

    background: border colour; color: every named colour has a region; shape: every
    named shape has a region (any colour); object: every colour-shape pair is one region;
    position / size: the object's largest matching region is in that 3x3 cell / size range;
    count: exactly that many colour-shape regions; relation: centre comparison of the two
    objects. None where the prompt does not mention the attribute; overall: all the rest. Then the diagnostics
    (`DIAGNOSTICS`, not in overall): the shape verdict on single-object prompts, and on those of a non-circle.
    """
    if isinstance(spec, str):
        parsed = parse_caption(spec)
        if parsed is None:
            raise ValueError(f"caption does not follow the scene grammar: {spec!r}")
        spec = parsed
    bg, regions = analyze(image)

    def best(o) -> Region | None:
        bound = [r for r in regions if r.color == o.color and r.shape == o.shape]
        pool = bound or [r for r in regions if r.color == o.color]
        return max(pool, key=lambda r: r.area) if pool else None

    objs = spec.objects
    out: dict[str, bool | None] = {
        "background": bg == spec.background,
        "color": all(any(r.color == o.color for r in regions) for o in objs),
        "shape": all(any(r.shape == o.shape for r in regions) for o in objs),
        "object": all(any(r.color == o.color and r.shape == o.shape for r in regions) for o in objs),
        "position": None, "size": None, "count": None, "relation": None,
    }
    chosen = [best(o) for o in objs]
    if any(o.position for o in objs):
        out["position"] = all(o.position is None or (r is not None and position_of(r.cx, r.cy) == o.position)
                              for o, r in zip(objs, chosen))
    if any(o.size for o in objs):
        out["size"] = all(o.size is None or (r is not None and (r.extent < SIZE_SPLIT) == (o.size == "small"))
                          for o, r in zip(objs, chosen))
    if spec.kind == "count":
        out["count"] = all(sum(r.color == o.color and r.shape == o.shape for r in regions) == o.count
                           for o in objs)
    if spec.relation:
        a, b = chosen[0], chosen[1]
        out["relation"] = bool(a is not None and b is not None and a is not b and _relation_holds(spec.relation, a, b))
    out["overall"] = all(v for v in out.values() if v is not None)
    single = spec.kind == "single"
    out["single_shape"] = out["shape"] if single else None
    out["single_shape_noncircle"] = out["shape"] if single and objs[0].shape != "circle" else None
    return out


def score(images: Iterable, specs: Iterable[SceneSpec | str]) -> dict[str, float]:
    """Accuracy per attribute over images paired with specs (attributes never judged are left out)."""
    hits: dict[str, list[bool]] = {a: [] for a in ATTRIBUTES}
    for image, spec in zip(images, specs, strict=True):
        for k, v in check(image, spec).items():
            if v is not None:
                hits[k].append(bool(v))
    return {k: float(np.mean(v)) for k, v in hits.items() if v}
