"""Pictures of several runs of one prompt side by side: animation frames whose columns advance scale by scale
together, and one still grid of every scale (rows = scales, columns = runs).

Post-processing only, like `viz` (whose helpers and palette it shares): PIL images in, PIL images out. All runs
must share one schedule, so the same row (or frame) shows the same scale in every column.
"""
from __future__ import annotations

from typing import Optional, Sequence

from PIL import Image, ImageDraw

from .viz import _BAND, _BG, _TEXT, _display_scale, _draw_centered, _even, _font, _text_size, scale_frames

__all__ = ["column_frames", "scale_grid"]

_MIN_FONT = 10


def _check(columns: Sequence[Sequence[Image.Image]], titles: Sequence[str]) -> int:
    if not columns or not columns[0]:
        raise ValueError("no columns")
    if len(titles) != len(columns):
        raise ValueError(f"{len(titles)} titles for {len(columns)} columns")
    K = len(columns[0])
    if any(len(c) != K for c in columns):
        raise ValueError(f"columns differ in length: {[len(c) for c in columns]}")
    return K


def _cell_size(columns, min_long: int) -> tuple[int, int]:
    """(H, W) of one cell: the final image enlarged by an integer factor (NEAREST blocks stay equal)."""
    last = columns[0][-1]
    f = _display_scale(last.height, last.width, min_long)
    return _even(last.height * f), _even(last.width * f)


def _fitted(draw: ImageDraw.ImageDraw, text: str, width: int, size: int):
    """(font, text) that fit `width`: a smaller font first, then the text cut with an ellipsis, so a long label
    never runs into its neighbour's column."""
    smallest = max(_MIN_FONT, int(size * 0.75))  # smaller than this is no longer read at a glance
    while size > smallest and _text_size(draw, text, _font(size))[0] > width:
        size -= 1
    font = _font(size)
    while len(text) > 3 and _text_size(draw, text, font)[0] > width:
        text = text[:-4] + "..."
    return font, text


def _title_band(width: int, titles: Sequence[str], cell_w: int, gap: int, size: int) -> Image.Image:
    """One dark band with each column's title centred over its column."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    band_h = _even(_text_size(probe, "Ag", _font(size))[1] + 14)
    band = Image.new("RGB", (width, band_h), _BAND)
    draw = ImageDraw.Draw(band)
    for i, title in enumerate(titles):
        x0 = i * (cell_w + gap)
        font, text = _fitted(draw, title, cell_w - 6, size)
        _draw_centered(draw, (x0, 0, x0 + cell_w, band_h), text, font, _TEXT)
    return band


def _font_size(cell_w: int) -> int:
    # larger than viz's captions: these labels are what a viewer compares, and videos soften small text
    return int(min(26, max(12, round(cell_w / 13))))


def column_frames(columns: Sequence[Sequence[Image.Image]], titles: Sequence[str],
                  hws: Optional[Sequence[tuple[int, int]]] = None, gap: int = 8,
                  min_long: int = 256) -> list[Image.Image]:
    """Frame k holds image k of every column side by side, each column's title above it and one caption below
    ("scale k/K · wxh", from `hws` (h, w) when given). Every frame has one even size; coarse scales are enlarged
    NEAREST to the final image's display size."""
    K = _check(columns, titles)
    H, W = _cell_size(columns, min_long)
    gap = _even(max(0, int(gap)))
    width = len(columns) * W + (len(columns) - 1) * gap
    size = _font_size(W)
    top = _title_band(width, titles, W, gap, size)
    font = _font(size)
    bottom_h = top.height
    cells = [scale_frames(col, size=(H, W), label=False) for col in columns]
    frames = []
    for k in range(K):
        frame = Image.new("RGB", (width, top.height + H + bottom_h), _BAND)
        frame.paste(top, (0, 0))
        for i, col in enumerate(cells):
            frame.paste(col[k], (i * (W + gap), top.height))
        h, w = hws[k] if hws is not None else (columns[0][k].height, columns[0][k].width)
        # a plain "x": Pillow's bundled font has no glyph for the multiplication sign
        _draw_centered(ImageDraw.Draw(frame), (0, top.height + H, width, frame.height),
                       f"scale {k + 1}/{K} · {w}x{h}", font, _TEXT)
        frames.append(frame)
    return frames


def scale_grid(columns: Sequence[Sequence[Image.Image]], titles: Sequence[str],
               hws: Optional[Sequence[tuple[int, int]]] = None, gap: int = 4, min_long: int = 128) -> Image.Image:
    """Every scale of every column in one picture: rows = scales (labelled "k: wxh" on the left), columns = runs
    (titled on top)."""
    K = _check(columns, titles)
    H, W = _cell_size(columns, min_long)
    gap = _even(max(0, int(gap)))
    size = _font_size(W)
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    captions = [f"{k + 1}: {w}x{h}" for k, (h, w) in
                enumerate(hws if hws is not None else [(im.height, im.width) for im in columns[0]])]
    left = _even(max(_text_size(probe, c, font)[0] for c in captions) + 16)
    width = left + len(columns) * W + (len(columns) - 1) * gap
    top = _title_band(width - left, titles, W, gap, size)
    grid = Image.new("RGB", (width, top.height + K * H + (K - 1) * gap), _BG)
    ImageDraw.Draw(grid).rectangle((0, 0, width, top.height - 1), fill=_BAND)
    grid.paste(top, (left, 0))
    cells = [scale_frames(col, size=(H, W), label=False) for col in columns]
    draw = ImageDraw.Draw(grid)
    for k in range(K):
        y = top.height + k * (H + gap)
        _draw_centered(draw, (0, y, left, y + H), captions[k], font, _TEXT)
        for i, col in enumerate(cells):
            grid.paste(col[k], (left + i * (W + gap), y))
    return grid
