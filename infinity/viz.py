"""Pictures and videos of the coarse-to-fine generation: frames per scale, bit planes, bit flips, MP4/GIF, PNG metadata.

Post-processing only: everything here takes tensors or PIL images and returns PIL images, bytes or file paths; no
model code and no module-level state (fonts are loaded per call, which costs well under a millisecond).

Conventions: tensors of pixels are in [-1, 1] as the VAE decoder emits them; bit tensors are (h, w, d) on the latent
grid of one scale, with a leading batch axis of size 1 tolerated; every sequence of frames a function returns has one
size and even width and height, because H.264 with 4:2:0 chroma cannot encode odd dimensions.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from .images import from_pil, to_pil  # noqa: F401  (re-exported: callers of viz.to_pil keep working)

__all__ = [
    "to_pil",
    "scale_frames",
    "bit_plane_grid",
    "flip_map",
    "difference_map",
    "side_by_side",
    "write_mp4",
    "write_gif",
    "image_grid",
    "png_with_metadata",
    "save_png",
    "read_png_metadata",
]

PathLike = Union[str, os.PathLike]

# Palette. The background is a dark grey rather than black so that tiles of 0-bits (black) stay visible against it.
_BG = (40, 40, 44)
_BAND = (18, 18, 20)
_TEXT = (235, 235, 235)
_TEXT_DIM = (170, 170, 175)
# A flipped bit keeps its value readable: a bright red 1, a dark red 0. Neither colour occurs anywhere else in a
# bit-plane grid (the text is grey), so the flipped positions can be counted back from the picture.
FLIPPED_ONE = (255, 40, 40)
FLIPPED_ZERO = (140, 0, 0)

_MIN_DISPLAY = 256  # long side of frames that are scaled up for display
PNG_KEY = "infinity"  # PNG text chunk holding the JSON settings


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------
def _even(n: int) -> int:
    return n + (n & 1)


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at `size` px; the fixed-size bitmap font where FreeType is missing (Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError, ImportError):
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int, int, int]:
    """(width, height, x offset, y offset) of the ink of `text`; the offsets let us centre the ink, not the box."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top, left, top


def _draw_centered(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font, fill) -> None:
    x0, y0, x1, y1 = box
    try:
        # "mm" centres on the font's ascender/descender middle, so neighbouring captions share one baseline
        # whatever letters they contain (centring the ink would lift "flipped" above "clean")
        draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, font=font, fill=fill, anchor="mm")
    except ValueError:  # the bitmap fallback font knows no anchors
        w, h, ox, oy = _text_size(draw, text, font)
        draw.text((x0 + (x1 - x0 - w) // 2 - ox, y0 + (y1 - y0 - h) // 2 - oy), text, font=font, fill=fill)


def _band_font_size(width: int) -> int:
    # legible at 256 px, not shouting at 1024 px
    return int(min(22, max(11, round(width / 22))))


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _resize(image: Image.Image, size_wh: tuple[int, int]) -> Image.Image:
    """NEAREST when enlarging (token blocks stay crisp, as they really are); BOX when shrinking (no aliasing)."""
    if image.size == size_wh:
        return image
    shrinking = image.width >= size_wh[0] and image.height >= size_wh[1]
    return image.resize(size_wh, Image.Resampling.BOX if shrinking else Image.Resampling.NEAREST)


def _pad_to(image: Image.Image, size_wh: tuple[int, int], fill=_BG) -> Image.Image:
    """Centre `image` on a canvas of `size_wh` (used to give a sequence of frames one size without distortion)."""
    if image.size == size_wh:
        return image
    canvas = Image.new("RGB", size_wh, fill)
    canvas.paste(image, ((size_wh[0] - image.width) // 2, (size_wh[1] - image.height) // 2))
    return canvas


def _uniform(frames: Sequence[Image.Image]) -> list[Image.Image]:
    """RGB frames of one even size: the largest width and height among them, smaller frames centred."""
    if not frames:
        raise ValueError("no frames")
    frames = [_rgb(f) for f in frames]
    size = (_even(max(f.width for f in frames)), _even(max(f.height for f in frames)))
    return [_pad_to(f, size) for f in frames]


def _hot(values: np.ndarray) -> np.ndarray:
    """Black -> red -> yellow -> white colour map for values in [0, 1]; returns uint8 (..., 3)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    rgb = np.clip(v * 3.0 - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _display_scale(h: int, w: int, min_long: int = _MIN_DISPLAY) -> int:
    """Integer enlargement so that the long side reaches `min_long` (integer keeps NEAREST blocks equal)."""
    return max(1, math.ceil(min_long / max(h, w, 1)))


def _as_hwd(t: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(t).detach().cpu()
    if t.dim() == 4 and t.shape[0] == 1:  # a ScaleState field of batch size 1
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"{name} must be (h, w, d) (or (1, h, w, d)), got shape {tuple(t.shape)}")
    return t


# ----------------------------------------------------------------------------------------------------------------
# tensors -> images
# ----------------------------------------------------------------------------------------------------------------
def scale_frames(
    previews: Sequence[Image.Image],
    size: Optional[tuple[int, int]] = None,
    label: bool = True,
    hws: Optional[Sequence[tuple[int, int]]] = None,
) -> list[Image.Image]:
    """One display frame per scale of a generation, all of one even size.

    `previews[k]` is what the image looks like after scale k (a decode of `codes_sum`, or anything else). Each is
    resized to `size` = (H, W) — NEAREST when enlarging, so the coarse scales show their true blocks instead of a
    blur. Without `size`, the last (finest) preview's size is enlarged by an integer factor until its long side is
    at least 256 px. With `label`, a thin dark band under the picture reads "scale k/K · hxw"; `hws` gives the
    latent grid of each scale for that caption (otherwise the preview's own pixel size is shown).
    """
    if not previews:
        raise ValueError("no previews")
    if hws is not None and len(hws) != len(previews):
        raise ValueError(f"{len(hws)} grid sizes for {len(previews)} previews")
    if size is None:
        last = previews[-1]
        f = _display_scale(last.height, last.width)
        size = (last.height * f, last.width * f)
    H, W = _even(int(size[0])), _even(int(size[1]))

    font = _font(_band_font_size(W))
    band = 0
    if label:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        band = _even(_text_size(probe, "scale 0/0 · 0x0 Ag", font)[1] + 10)

    K = len(previews)
    frames = []
    for k, preview in enumerate(previews):
        picture = _resize(_rgb(preview), (W, H))
        if not label:
            frames.append(picture)
            continue
        frame = Image.new("RGB", (W, H + band), _BAND)
        frame.paste(picture, (0, 0))
        h, w = hws[k] if hws is not None else (preview.height, preview.width)
        # width x height, as resolutions are written; a plain "x": Pillow's bundled font has no glyph for "×"
        _draw_centered(ImageDraw.Draw(frame), (0, H, W, H + band), f"scale {k + 1}/{K} · {w}x{h}", font, _TEXT)
        frames.append(frame)
    return frames


def bit_plane_grid(
    bits: torch.Tensor,
    flip_mask: Optional[torch.Tensor] = None,
    cell: int = 48,
    cols: Optional[int] = None,
) -> Image.Image:
    """The d bit planes of one scale as a grid of tiles, plane index under each.

    `bits` (h, w, d) with values 0/1 (anything > 0 counts as 1); bit 1 is white, bit 0 black. Each tile is the
    h×w plane enlarged NEAREST by an integer factor so that its long side is about `cell` px (never below 1 px per
    bit, so a 1×1 scale is a visible square and a 64×64 scale is shown at full detail). Positions where
    `flip_mask` (h, w, d) is True are drawn in red: `FLIPPED_ONE` for a flipped bit that now reads 1, `FLIPPED_ZERO`
    for one that reads 0. `cols` defaults to 8 (16 beyond 64 planes).
    """
    b = _as_hwd(bits, "bits") > 0
    h, w, d = b.shape
    m = None
    if flip_mask is not None:
        m = _as_hwd(flip_mask, "flip_mask").bool()
        if tuple(m.shape) != (h, w, d):
            raise ValueError(f"flip_mask shape {tuple(m.shape)} does not match bits shape {(h, w, d)}")
    if cols is None:
        cols = 8 if d <= 64 else 16
    cols = max(1, min(int(cols), d))
    rows = math.ceil(d / cols)

    # colour every bit once, then enlarge all planes together: (d, h, w, 3) -> (d, h*f, w*f, 3)
    planes = b.permute(2, 0, 1).numpy()
    rgb = np.where(planes[..., None], np.uint8(255), np.uint8(0)).repeat(3, axis=-1)
    if m is not None:
        flipped = m.permute(2, 0, 1).numpy()
        rgb[flipped & planes] = FLIPPED_ONE
        rgb[flipped & ~planes] = FLIPPED_ZERO
    f = max(1, cell // max(h, w))
    tiles = rgb.repeat(f, axis=1).repeat(f, axis=2)
    th, tw = h * f, w * f

    font = _font(11)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_h = _text_size(probe, "0123456789", font)[1] + 6
    gap, margin = 6, 8
    col_w = max(tw, _text_size(probe, str(d - 1), font)[0] + 4)  # tiles of tiny scales still fit their label
    W = _even(2 * margin + cols * col_w + (cols - 1) * gap)
    H = _even(2 * margin + rows * (th + label_h) + (rows - 1) * gap)

    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = _BG
    origins = []
    for i in range(d):
        r, c = divmod(i, cols)
        x = margin + c * (col_w + gap) + (col_w - tw) // 2
        y = margin + r * (th + label_h + gap)
        canvas[y : y + th, x : x + tw] = tiles[i]
        origins.append((x, y))
    image = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(image)
    for i, (x, y) in enumerate(origins):
        cx = x + tw // 2
        _draw_centered(draw, (cx - col_w // 2, y + th, cx + col_w // 2 + 1, y + th + label_h), str(i), font, _TEXT_DIM)
    return image


def flip_map(flip_mask: torch.Tensor, size: Optional[int] = None, vmax: Optional[float] = None) -> Image.Image:
    """Heat map (black -> red -> yellow -> white) of the share of flipped bits at each position of one scale.

    `flip_mask` (h, w, d) bool. The share (0..1 over the d bits) is divided by `vmax`; by default `vmax` is the
    largest share present, because flipping e.g. 10 % of bits would otherwise leave the whole map nearly black.
    Pass vmax=1.0 for an absolute scale. Enlarged NEAREST so the long side is at least `size` (default 256) px.
    """
    m = _as_hwd(flip_mask, "flip_mask").bool()
    share = m.float().mean(dim=-1).numpy()
    top = float(share.max()) if vmax is None else float(vmax)
    norm = share / top if top > 0 else np.zeros_like(share)
    h, w = share.shape
    f = _display_scale(h, w, _MIN_DISPLAY if size is None else size)
    heat = _hot(norm).repeat(f, axis=0).repeat(f, axis=1)
    return _pad_to(Image.fromarray(heat, "RGB"), (_even(w * f), _even(h * f)), fill=(0, 0, 0))


def difference_map(img_a: Image.Image, img_b: Image.Image, gain: float = 4.0) -> Image.Image:
    """Per-pixel absolute difference of two equally sized images, amplified `gain` times, as a heat map.

    The channel-mean |a - b| (0..255) times `gain` is mapped through the same colour scale as `flip_map`: black
    where the images agree, red to white where they differ. Typical use: clean vs. bit-flipped final image, to see
    how far the later scales compensated the corruption.
    """
    if img_a.size != img_b.size:
        raise ValueError(f"image sizes differ: {img_a.size} vs {img_b.size}")
    a = np.asarray(_rgb(img_a), dtype=np.float32)
    b = np.asarray(_rgb(img_b), dtype=np.float32)
    diff = np.abs(a - b).mean(axis=-1) * (gain / 255.0)
    return Image.fromarray(_hot(diff), "RGB")


def side_by_side(
    left: Sequence[Image.Image],
    right: Sequence[Image.Image],
    titles: Optional[tuple[str, str]] = ("clean", "flipped"),
    gap: int = 8,
) -> list[Image.Image]:
    """Pair two sequences frame by frame: left | gap | right, each with its title above (None: no titles).

    Both halves share the largest frame size present (smaller frames are centred), so all returned frames have one
    even size. Raises ValueError when the sequences differ in length.
    """
    if len(left) != len(right):
        raise ValueError(f"side_by_side needs equally many frames on both sides, got {len(left)} and {len(right)}")
    if not left:
        return []
    cells = _uniform(list(left) + list(right))
    cw, ch = cells[0].size
    font = _font(_band_font_size(cw))
    band = 0
    if titles is not None:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        band = _even(max(_text_size(probe, t, font)[1] for t in (*titles, "Ag")) + 10)
    gap = _even(max(0, int(gap)))
    W, H = 2 * cw + gap, ch + band

    n = len(left)
    frames = []
    for a, b in zip(cells[:n], cells[n:]):
        frame = Image.new("RGB", (W, H), _BAND)
        frame.paste(a, (0, band))
        frame.paste(b, (cw + gap, band))
        if titles is not None:
            draw = ImageDraw.Draw(frame)
            _draw_centered(draw, (0, 0, cw, band), titles[0], font, _TEXT)
            _draw_centered(draw, (cw + gap, 0, W, band), titles[1], font, _TEXT)
        frames.append(frame)
    return frames


def image_grid(images: Sequence[Image.Image], cols: int, gap: int = 2) -> Image.Image:
    """Tile images row by row into `cols` columns (sample sheets during training); cells take the largest size."""
    if not images:
        raise ValueError("no images")
    cols = max(1, min(int(cols), len(images)))
    rows = math.ceil(len(images) / cols)
    cw, ch = max(i.width for i in images), max(i.height for i in images)
    grid = Image.new("RGB", (cols * cw + (cols - 1) * gap, rows * ch + (rows - 1) * gap), _BG)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        grid.paste(_pad_to(_rgb(img), (cw, ch)), (c * (cw + gap), r * (ch + gap)))
    return grid


# ----------------------------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------------------------
def write_mp4(
    frames: Sequence[Image.Image],
    path: PathLike,
    fps: float = 2,
    hold_last: Optional[int] = None,
    quality: float = 8.0,
) -> str:
    """Encode frames as an H.264 / yuv420p MP4 that browsers play and can stream (moov atom first).

    Frames of different sizes are centred on the largest, and odd sizes are padded to even ones (4:2:0 chroma
    needs even dimensions), so no frame is ever stretched. The last frame is repeated `hold_last` more times
    (default: about 1.5 s worth) so viewers get to see the final image before a player loops. `quality` is imageio's
    1..10 scale (8 = CRF 10: sharp block edges on the NEAREST-enlarged coarse scales). Returns the path as str.
    """
    import imageio.v2 as imageio

    frames = _uniform(frames)
    if hold_last is None:
        hold_last = max(1, round(1.5 * fps))
    frames = frames + [frames[-1]] * max(0, int(hold_last))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio.get_writer(
        str(path),
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        quality=quality,
        macro_block_size=2,  # sizes are already even; a larger block would make ffmpeg rescale the frames
        output_params=["-movflags", "+faststart"],
        ffmpeg_log_level="error",
    )
    try:
        for frame in frames:
            writer.append_data(np.asarray(frame))
    finally:
        writer.close()
    return str(path)


def write_gif(
    frames: Sequence[Image.Image],
    path: PathLike,
    duration_ms: int = 500,
    loop: int = 0,
    hold_last_ms: int = 1500,
) -> str:
    """Animated GIF (`loop` 0 = forever); the last frame stays `hold_last_ms` longer. Returns the path as str.

    Each frame is quantised to its own 256-colour palette with FASTOCTREE first: left to Pillow, the default
    median-cut quantiser makes writing a few hundred-pixel frames take seconds. Pillow merges identical
    consecutive frames into one with the summed duration, so the file can hold fewer frames than given.
    """
    frames = [f.quantize(colors=256, method=Image.Quantize.FASTOCTREE) for f in _uniform(frames)]
    durations = [int(duration_ms)] * len(frames)
    durations[-1] += max(0, int(hold_last_ms))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=loop)
    return str(path)


def _jsonable(value: Any) -> Any:
    """json.dumps fallback: tensors / numpy scalars become numbers or lists, anything else its str()."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _parameters_text(metadata: dict) -> str:
    """Human-readable summary: the prompt on its own line(s), then "key: value" pairs (what image viewers show)."""
    rest = {k: v for k, v in metadata.items() if k != "prompt"}
    pairs = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False, default=_jsonable)}" for k, v in rest.items())
    prompt = metadata.get("prompt")
    return "\n".join(part for part in (None if prompt is None else str(prompt), pairs) if part)


def _pnginfo(metadata: dict) -> PngInfo:
    info = PngInfo()
    # add_text switches to an iTXt (UTF-8) chunk by itself when the text is not Latin-1, e.g. a Chinese prompt
    info.add_text(PNG_KEY, json.dumps(metadata, ensure_ascii=False, default=_jsonable))
    info.add_text("parameters", _parameters_text(metadata))
    info.add_text("Software", "Infinity (bitwise autoregressive generation)")
    return info


def png_with_metadata(image: Image.Image, metadata: dict) -> bytes:
    """PNG bytes of `image` with `metadata` (prompt, seed, settings) as JSON under text key "infinity", plus a
    readable "parameters" chunk. Tuples come back as lists and tensors as (lists of) numbers."""
    buf = io.BytesIO()
    _rgb(image).save(buf, format="PNG", pnginfo=_pnginfo(metadata))
    return buf.getvalue()


def save_png(image: Image.Image, path: PathLike, metadata: dict) -> str:
    """Write `png_with_metadata(image, metadata)` to `path`; returns the path as str."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_with_metadata(image, metadata))
    return str(path)


def read_png_metadata(source: Union[PathLike, bytes]) -> dict:
    """The metadata dict stored by `png_with_metadata` / `save_png`; {} for a PNG without it."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    with Image.open(stream) as image:
        text = getattr(image, "text", {})  # reading .text loads chunks that follow the image data too
        raw = text.get(PNG_KEY)
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
