"""Captioned synthetic scenes: flat shapes on a flat background, with a fixed grammar.

The grammar is small on purpose: every caption word (colour, shape, size, position,
count, relation) is something the pixel checker in ``infinity.eval.checker`` can verify,
so a small model's compositional ability can be measured without a learned judge.

Layout is done once in a unit square and reused for any aspect ratio: an object's extent
is ``size * min(width, height)`` pixels, so relative to each axis it can only shrink when
the frame is stretched. A layout that is inside the frame and overlap-free in the unit
square therefore stays so at every (height, width).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Iterator, Literal, Sequence

import numpy as np
from PIL import Image, ImageDraw

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 220, 50),
    "green": (50, 170, 80),
    "blue": (40, 90, 220),
    "purple": (140, 70, 200),
    "pink": (245, 130, 190),
    "brown": (130, 85, 45),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "gray": (130, 130, 130),
    "cyan": (40, 200, 210),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "heart")
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
SIZE_WORDS: tuple[str, ...] = ("small", "large")
COUNT_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three"}

# Colour-shape pairs that never appear in training captions or images; the held-out
# evaluation asks for them. Chosen once: 8 distinct colours, every shape at least once.
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("red", "triangle"),
    ("orange", "circle"),
    ("yellow", "heart"),
    ("green", "star"),
    ("blue", "square"),
    ("purple", "circle"),
    ("pink", "star"),
    ("cyan", "square"),
})
TRAIN_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (c, s) for c in COLORS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS)

# Object extent (longest side of its bounding box) as a fraction of the image's short side.
SIZE_RANGES: dict[str | None, tuple[float, float]] = {
    "small": (0.20, 0.28),
    None: (0.30, 0.38),
    "large": (0.40, 0.50),
}
FRAME_MARGIN = 0.035  # empty border around every object: >= 1 px of pure background from 32 px up
GAP = 0.06            # minimum empty space between two objects' boxes, so they never touch
CELL_MARGIN = 0.03    # a positioned centre keeps this far from its 3x3 cell's borders
SUPERSAMPLE = 4       # render at 4x and box-filter down: clean antialiased edges at 64 px

Split = Literal["train", "heldout"]
Kind = Literal["single", "count", "relation"]


@dataclass(frozen=True)
class SceneObject:
    """One drawn shape; ``cx, cy`` are its bounding-box centre as fractions of width/height."""
    color: str
    shape: str
    cx: float
    cy: float
    size: float  # longest bbox side / short image side


@dataclass(frozen=True)
class Scene:
    """A sampled scene. ``kind`` says which caption family describes it:
    'single' (one object, optional position and size words), 'count' (n identical
    objects, optional size word) or 'relation' (objects[0] <relation> objects[1])."""
    background: str
    objects: tuple[SceneObject, ...]
    kind: Kind
    position: str | None = None
    size_word: str | None = None
    relation: str | None = None

    def spec(self) -> "SceneSpec":
        o = self.objects[0]
        if self.kind == "relation":
            b = self.objects[1]
            objs = (ObjectSpec(o.color, o.shape, 1), ObjectSpec(b.color, b.shape, 1))
            return SceneSpec(self.background, objs, "relation", self.relation)
        if self.kind == "count":
            objs = (ObjectSpec(o.color, o.shape, len(self.objects), None, self.size_word),)
            return SceneSpec(self.background, objs, "count")
        return SceneSpec(self.background,
                         (ObjectSpec(o.color, o.shape, 1, self.position, self.size_word),), "single")


@dataclass(frozen=True)
class ObjectSpec:
    """What a caption says about one object (or a group of ``count`` identical ones)."""
    color: str
    shape: str
    count: int = 1
    position: str | None = None
    size: str | None = None


@dataclass(frozen=True)
class SceneSpec:
    """What a caption says about a scene: the checker judges an image against this."""
    background: str
    objects: tuple[ObjectSpec, ...]
    kind: Kind = "single"
    relation: str | None = None  # objects[0] <relation> objects[1]

    def normalized(self) -> "SceneSpec":
        """Same meaning with 'right of'/'below' rewritten as 'left of'/'above' (objects swapped)."""
        flip = {"right of": "left of", "below": "above"}
        if self.relation in flip:
            return replace(self, objects=self.objects[::-1], relation=flip[self.relation])
        return self


# ----------------------------------------------------------------------------- geometry

def _normalize(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale a polygon so its bbox is exactly [0,1]^2; also return its natural w/h."""
    lo, hi = points.min(0), points.max(0)
    return (points - lo) / (hi - lo), float((hi - lo)[0] / (hi - lo)[1])


def _raw_polygon(shape: str) -> np.ndarray:
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "square":
        return np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    if shape == "triangle":  # apex up, base as wide as it is tall
        return np.array([[0.5, 0], [1, 1], [0, 1]], float)
    if shape == "star":  # five points, fairly fat so it survives 64 px
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    if shape == "heart":  # classic parametric heart, y flipped to image coordinates
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return np.stack([x, -y], 1)
    raise ValueError(f"unknown shape {shape!r}")


_POLYGONS = {s: _normalize(_raw_polygon(s)) for s in SHAPES}


def unit_polygon(shape: str) -> tuple[np.ndarray, float]:
    """(points filling the unit square exactly, natural width/height) for ``shape``."""
    pts, aspect = _POLYGONS[shape]
    return pts.copy(), aspect


def render_scene(scene: Scene, width: int, height: int) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``width x height`` pixels (both >= 32 recommended)."""
    s = SUPERSAMPLE
    W, H = width * s, height * s
    img = Image.new("RGB", (W, H), PALETTE[scene.background])
    draw = ImageDraw.Draw(img)
    short = min(W, H)
    for o in scene.objects:
        pts, aspect = unit_polygon(o.shape)
        ext = o.size * short
        bw, bh = (ext, ext / aspect) if aspect >= 1 else (ext * aspect, ext)
        x0, y0 = o.cx * W - bw / 2, o.cy * H - bh / 2
        if o.shape == "circle":
            draw.ellipse([x0, y0, x0 + bw, y0 + bh], fill=PALETTE[o.color])
        else:
            draw.polygon([(x0 + px * bw, y0 + py * bh) for px, py in pts], fill=PALETTE[o.color])
    return img.reduce(s)


# ----------------------------------------------------------------------------- sampling

def _as_random(rng: random.Random | np.random.Generator | int) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(2 ** 63)))
    return random.Random(rng)


def _cell_range(index: int, size: float) -> tuple[float, float]:
    """Centre range along one axis for grid cell ``index`` (0,1,2), keeping the object in frame."""
    lo = max(index / 3 + CELL_MARGIN, size / 2 + FRAME_MARGIN)
    hi = min((index + 1) / 3 - CELL_MARGIN, 1 - size / 2 - FRAME_MARGIN)
    return lo, hi


def position_of(cx: float, cy: float) -> str:
    """The 3x3-grid position word for a centre given as fractions of width/height."""
    col, row = min(int(cx * 3), 2), min(int(cy * 3), 2)
    v, h = ("top", "", "bottom")[row], ("left", "", "right")[col]
    return f"{v} {h}".strip() or "center"


def _place(rng: random.Random, sizes: Sequence[float], ok=lambda pts: True, tries: int = 400):
    """Rejection-sample centres for boxes of ``sizes`` with frame margin and gaps."""
    for _ in range(tries):
        pts = []
        for sz in sizes:
            lo, hi = sz / 2 + FRAME_MARGIN, 1 - sz / 2 - FRAME_MARGIN
            pts.append((rng.uniform(lo, hi), rng.uniform(lo, hi)))
        clear = all(
            max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= (sa + sb) / 2 + GAP
            for i, (a, sa) in enumerate(zip(pts, sizes))
            for b, sb in zip(pts[i + 1:], sizes[i + 1:]))
        if clear and ok(pts):
            return pts
    return None


def _pick_pair(rng: random.Random, split: Split, exclude_pairs=()) -> tuple[str, str]:
    pool = sorted(HELD_OUT_PAIRS) if split == "heldout" else TRAIN_PAIRS
    pool = [p for p in pool if p not in exclude_pairs]
    return rng.choice(pool)


def _relation_ok(rel: str, a, b) -> bool:
    """True when ``a rel b`` holds clearly: >= 0.25 apart on the axis and mostly along it."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    along, across = {"left of": (dx, dy), "right of": (-dx, dy),
                     "above": (dy, dx), "below": (-dy, dx)}[rel]
    return along >= 0.25 and abs(across) <= 0.6 * along


def sample_scene(rng: random.Random | np.random.Generator | int, split: Split = "train") -> Scene:
    """Sample a scene. ``split='train'`` never uses a ``HELD_OUT_PAIRS`` colour-shape pair;
    ``split='heldout'`` always contains at least one of them."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    r = _as_random(rng)
    kind: Kind = r.choices(("single", "count", "relation"), weights=(0.45, 0.3, 0.25))[0]
    if kind == "relation":
        return _sample_relation(r, split)
    color, shape = _pick_pair(r, split)
    background = r.choice([c for c in COLORS if c != color])
    if kind == "count":
        n = r.choices((1, 2, 3), weights=(1, 2, 2))[0]
        size_word = r.choice(("small", None))  # large ones do not fit side by side at every aspect
        while True:
            sizes = [r.uniform(*SIZE_RANGES[size_word]) for _ in range(n)]
            pts = _place(r, sizes)
            if pts:
                objs = tuple(SceneObject(color, shape, x, y, sz) for (x, y), sz in zip(pts, sizes))
                return Scene(background, objs, "count", size_word=size_word)
    size_word = r.choice(("small", None, "large"))
    size = r.uniform(*SIZE_RANGES[size_word])
    position = r.choice(POSITIONS) if r.random() < 0.85 else None
    if position is None:
        (cx, cy), = _place(r, [size])
    else:
        idx = POSITIONS.index(position)
        cx, cy = r.uniform(*_cell_range(idx % 3, size)), r.uniform(*_cell_range(idx // 3, size))
    return Scene(background, (SceneObject(color, shape, cx, cy, size),), "single",
                 position=position, size_word=size_word)


def _sample_relation(r: random.Random, split: Split) -> Scene:
    if split == "heldout":  # one held-out object, the other may be anything distinct
        first = _pick_pair(r, "heldout")
        other = r.choice([(c, s) for c in COLORS for s in SHAPES if (c, s) != first])
        pairs = [first, other] if r.random() < 0.5 else [other, first]
    else:
        first = _pick_pair(r, "train")
        pairs = [first, _pick_pair(r, "train", exclude_pairs=(first,))]
    background = r.choice([c for c in COLORS if c not in {pairs[0][0], pairs[1][0]}])
    relation = r.choice(RELATIONS)
    while True:
        sizes = [r.uniform(SIZE_RANGES["small"][0], SIZE_RANGES[None][1]) for _ in range(2)]
        pts = _place(r, sizes, ok=lambda p: _relation_ok(relation, p[0], p[1]))
        if pts:
            objs = tuple(SceneObject(c, s, x, y, sz) for (c, s), (x, y), sz in zip(pairs, pts, sizes))
            return Scene(background, objs, "relation", relation=relation)


# ----------------------------------------------------------------------------- captions

_POSITION_PHRASES = {
    "corner": ["in the {p}", "at the {p}", "in the {p} corner"],
    "top": ["at the top", "near the top"],
    "bottom": ["at the bottom", "near the bottom"],
    "left": ["on the left", "at the left side"],
    "right": ["on the right", "at the right side"],
    "center": ["in the center", "in the middle", "at the centre"],
}
_RELATION_PHRASES = {
    "left of": ["to the left of", "left of"],
    "right of": ["to the right of", "right of"],
    "above": ["above", "over"],
    "below": ["below", "beneath"],
}
_INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# {o}: object phrase, {b}: background colour, {ab}: it with its article. Several sentence shapes.
_TEMPLATES = [
    "{o} on {ab} background",
    "{o}, {b} background",
    "{b} background, {o}",
    "{o} against {b}",
    "{o} on {b}",
    "{ab} background with {o}",
    "{o} against {ab} background",
]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _noun_phrase(color: str, shape: str, n: int, size_word: str | None, explicit: bool) -> str:
    words = ([size_word] if size_word else []) + [color, shape + ("s" if n > 1 else "")]
    det = COUNT_WORDS[n] if explicit else _article(words[0])
    return " ".join([det] + words)


def caption_scene(scene: Scene, rng: random.Random | np.random.Generator | int) -> str:
    """A caption for ``scene`` in a randomly chosen phrasing; ``parse_caption`` inverts it."""
    r = _as_random(rng)
    o, bg = scene.objects[0], scene.background
    if scene.kind == "relation":
        a, b, rel = scene.objects[0], scene.objects[1], scene.relation
        if r.random() < 0.5:  # same meaning, other subject
            a, b, rel = b, a, _INVERSE[rel]
        phrase = (f"{_noun_phrase(a.color, a.shape, 1, None, False)} "
                  f"{r.choice(_RELATION_PHRASES[rel])} {_noun_phrase(b.color, b.shape, 1, None, False)}")
    elif scene.kind == "count":
        phrase = _noun_phrase(o.color, o.shape, len(scene.objects), scene.size_word, True)
    else:
        phrase = _noun_phrase(o.color, o.shape, 1, scene.size_word, False)
        if scene.position:
            group = "corner" if " " in scene.position else scene.position
            where = r.choice(_POSITION_PHRASES[group]).format(p=scene.position)
            if r.random() < 0.25:  # position first: "in the top left, a red circle on blue"
                tail = r.choice(["on {ab} background", "against {b}", "on {b}"])
                return f"{where}, {phrase} " + tail.format(b=bg, ab=f"{_article(bg)} {bg}")
            phrase = f"{phrase} {where}"
    ab = f"{_article(bg)} {bg}"
    return r.choice(_TEMPLATES).format(o=phrase, b=bg, ab=ab)


_SYNONYMS = {"grey": "gray", "centre": "center", "middle": "center", "an": "a"}
_PLURALS = {s + "s": s for s in SHAPES}
_COUNT_OF = {"a": 1, "one": 1, "two": 2, "three": 3}
_REL_WORDS = {"left": "left of", "right": "right of", "above": "above", "over": "above",
              "below": "below", "beneath": "below", "under": "below"}


def parse_caption(text: str) -> SceneSpec | None:
    """Recover the ``SceneSpec`` from a caption of this grammar; None if it does not fit."""
    toks = [_SYNONYMS.get(t, t) for t in re.findall(r"[a-z]+", text.lower())]
    objects, spans, backgrounds = [], [], []
    for i, t in enumerate(toks):
        if t not in PALETTE:
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        shape = nxt if nxt in SHAPES else _PLURALS.get(nxt)
        if shape is None:
            backgrounds.append(t)
            continue
        j, size = i, None
        if j > 0 and toks[j - 1] in SIZE_WORDS:
            j, size = j - 1, toks[j - 1]
        det = toks[j - 1] if j > 0 else ""
        count = _COUNT_OF.get(det)
        if count is None or (count > 1) != (nxt in _PLURALS):
            return None
        objects.append(ObjectSpec(t, shape, count, None, size))
        spans.append((j - 1, i + 1, det != "a"))
    if len(backgrounds) != 1 or not 1 <= len(objects) <= 2:
        return None
    background = backgrounds[0]
    if len(objects) == 2:
        between = [_REL_WORDS[t] for t in toks[spans[0][1] + 1:spans[1][0]] if t in _REL_WORDS]
        if len(set(between)) != 1 or any(o.count != 1 for o in objects):
            return None
        return SceneSpec(background, tuple(objects), "relation", between[0])
    obj = objects[0]
    if spans[0][2]:  # an explicit number word
        return SceneSpec(background, (obj,), "count")
    rest = toks[:spans[0][0]] + toks[spans[0][1] + 1:]
    vert = {t for t in rest if t in ("top", "bottom")}
    horiz = {t for t in rest if t in ("left", "right")}
    if len(vert) > 1 or len(horiz) > 1 or any(t in _REL_WORDS and t not in horiz for t in rest):
        return None
    position = " ".join(sorted(vert) + sorted(horiz)) or ("center" if "center" in rest else None)
    return SceneSpec(background, (replace(obj, position=position),), "single")


# ----------------------------------------------------------------------------- datasets

def _seeded(*parts) -> random.Random:
    # String seeds hash with SHA-512 inside random.Random: stable across runs and machines.
    return random.Random("infinity-scenes/" + "/".join(map(str, parts)))


def heldout_scenes(n: int, seed: int = 0, split: Split = "heldout") -> list[tuple[str, Scene]]:
    """``n`` fixed (caption, scene) pairs, each scene using a held-out colour-shape pair.

    ``split="train"`` gives fixed scenes of the training pairs instead (a diagnostic: seen pairs in fresh layouts
    and phrasings, to tell memorised pairs from composition)."""
    out = []
    for i in range(n):
        r = _seeded("heldout-prompts", seed, i) if split == "heldout" else _seeded("seen-pairs", split, seed, i)
        scene = sample_scene(r, split)
        out.append((caption_scene(scene, r), scene))
    return out


def heldout_prompts(n: int, seed: int = 0) -> list[tuple[str, SceneSpec]]:
    """``n`` fixed evaluation prompts with the spec the checker should verify."""
    # Parsed from the caption so the objects come in the caption's order.
    return [(cap, parse_caption(cap)) for cap, _ in heldout_scenes(n, seed)]


SizeArg = int | tuple[int, int] | Sequence[tuple[int, int]]
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((64, 64), (48, 64), (64, 48), (40, 80), (80, 40))


def _size_list(size: SizeArg) -> list[tuple[int, int]]:
    if isinstance(size, int):
        return [(size, size)]
    if len(size) == 2 and all(isinstance(v, int) for v in size):
        return [tuple(size)]
    return [tuple(s) for s in size]


class SceneDataset:
    """Map-style dataset of ``n`` rendered scenes: ``{"image", "caption", "h_div_w"}``.

    ``size`` is (h, w), an int for squares, or a list of (h, w) to draw from per item.
    Item ``i`` depends only on (seed, split, i), so it is the same in every worker/epoch;
    train and heldout draw from separate seed spaces.
    """

    def __init__(self, n: int, size: SizeArg = DEFAULT_SIZES, seed: int = 0, split: Split = "train"):
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
        self.n, self.sizes, self.seed, self.split = n, _size_list(size), seed, split
        if any(min(hw) < 32 for hw in self.sizes):
            raise ValueError("scene sizes must be at least 32 pixels per side")

    def __len__(self) -> int:
        return self.n

    def scene(self, i: int) -> tuple[Scene, str, tuple[int, int]]:
        """(scene, caption, (h, w)) of item ``i``."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        r = _seeded(self.split, self.seed, i)
        scene = sample_scene(r, self.split)
        return scene, caption_scene(scene, r), r.choice(self.sizes)

    def __getitem__(self, i: int) -> dict:
        scene, caption, (h, w) = self.scene(i)
        return {"image": render_scene(scene, w, h), "caption": caption, "h_div_w": h / w}

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(self.n))
