"""What the service layer hands back, as small typed records (no gradio): one generated run, the events a streaming
request yields, and the result of each request kind. `info` stays a plain dict: it is the JSON the API returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from PIL import Image


@dataclass
class Run:
    """One generated image, kept on the CPU: the preview after each scale, bits and flip masks per scale."""

    settings: dict
    schedule: list[tuple[int, int]]
    previews: list[Image.Image] = field(default_factory=list)
    bits: list[torch.Tensor] = field(default_factory=list)  # (h, w, d) per scale
    masks: list[Optional[torch.Tensor]] = field(default_factory=list)  # flipped positions, or None
    seconds: float = 0.0
    truncated: bool = False  # the prompt was longer than the text encoder reads

    @property
    def image(self) -> Image.Image:
        return self.previews[-1]


# -- events of a streaming request (generate_iter, compare_iter); the last event is the request's result ---------
@dataclass
class Seeded:
    """A generation starts: the seed it uses (drawn when asked to randomize)."""

    seed: int


@dataclass
class Started:
    """A comparison starts: one label per variant, in order."""

    labels: list[str]


@dataclass
class Scale:
    """Image (or variant) `index` has one more scale: `run` grows by one preview each time."""

    index: int
    run: Run


# -- results ------------------------------------------------------------------------------------------------------
@dataclass
class Generated:
    runs: list[Run]
    pngs: list[str]
    mp4: str
    gif: str
    info: dict


@dataclass
class Flipped:
    """The clean and the flipped run from one seed, and pictures of where they part and rejoin."""

    clean: Run
    flipped: Run
    pairs: list[Image.Image]  # clean | flipped, per scale
    diffs: list[Image.Image]  # difference map per scale
    planes: Image.Image  # the flipped bit planes of scale `inspect`
    inspect: int
    clean_png: str
    flipped_png: str
    mp4: str
    planes_png: str
    info: dict


@dataclass
class Tokenized:
    """An image's reconstructions and bit maps per scale; the flip fields stay None when no bits were flipped."""

    input: Image.Image
    recon: list[Image.Image]
    hws: list[tuple[int, int]]
    scale: int
    bitmaps: list[Image.Image]
    recon_png: str
    scale_pngs: list[str]
    info: dict = field(default_factory=dict)
    kept: Optional[Image.Image] = None  # flipped, later scales kept
    requantized: Optional[Image.Image] = None  # flipped, later scales quantized again
    planes: Optional[Image.Image] = None
    kept_png: Optional[str] = None
    requantized_png: Optional[str] = None


@dataclass
class Varied:
    run: Run
    pairs: list[Image.Image]  # uploaded | variation, per scale
    png: str
    mp4: str
    info: dict


@dataclass
class Compared:
    runs: list[Run]
    labels: list[str]
    variants: list[dict]  # as given (or the preset's), for the share link
    pngs: list[str]
    frames: list[Image.Image]  # the labelled row, per scale
    grid: Image.Image
    row_png: str
    grid_png: str
    mp4: str
    gif: str
    info: dict
