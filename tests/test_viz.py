"""Tests of infinity.viz: pixel conversion, display frames, bit-plane pictures, MP4/GIF files, PNG metadata."""
from __future__ import annotations

import re
import subprocess
import time

import numpy as np
import pytest
import torch
from PIL import Image

from infinity import viz


def _frames(n: int, size_wh: tuple[int, int]) -> list[Image.Image]:
    """Distinct frames (a moving bright bar), so neither encoder can merge them."""
    w, h = size_wh
    out = []
    for k in range(n):
        a = np.zeros((h, w, 3), np.uint8)
        a[..., 2] = 60
        x = (k * w) // max(n, 1)
        a[:, x : x + max(2, w // n)] = (250, 200, 30)
        out.append(Image.fromarray(a, "RGB"))
    return out


# ---------------------------------------------------------------------------------------------------------------
def test_to_pil_maps_range_and_rounds():
    x = torch.tensor([-1.0, 1.0, 0.0, -2.0, 3.0]).view(1, 1, 1, 5).expand(2, 3, 1, 5)
    images = viz.to_pil(x)
    assert len(images) == 2 and images[0].mode == "RGB" and images[0].size == (5, 1)
    row = np.asarray(images[1])[0, :, 0].tolist()
    # -1 -> 0, 1 -> 255, 0 -> 127.5 rounds to 128 (truncation would give 127), out of range clamps
    assert row == [0, 255, 128, 0, 255]


def test_to_pil_rejects_wrong_shape():
    with pytest.raises(ValueError):
        viz.to_pil(torch.zeros(1, 4, 2, 2))


# ---------------------------------------------------------------------------------------------------------------
def test_scale_frames_common_even_size():
    grids = [(1, 1), (2, 2), (4, 4), (6, 6), (8, 8), (12, 12), (16, 16)]
    previews = [Image.new("RGB", (w, h), (10 * i, 0, 0)) for i, (h, w) in enumerate(grids)]
    frames = viz.scale_frames(previews, hws=grids)
    assert len(frames) == len(previews)
    sizes = {f.size for f in frames}
    assert len(sizes) == 1
    (w, h), = sizes
    assert w % 2 == 0 and h % 2 == 0 and w >= 256
    # the picture part is enlarged NEAREST: the 1x1 preview becomes one flat colour
    top = np.asarray(frames[1])[:256]
    assert (top == top[0, 0]).all()
    # the caption band sits below a 256 px picture
    assert h > 256

    plain = viz.scale_frames(previews, size=(101, 151), label=False)
    assert {f.size for f in plain} == {(152, 102)}


def test_scale_frames_checks_caption_count():
    with pytest.raises(ValueError):
        viz.scale_frames([Image.new("RGB", (2, 2))], hws=[(1, 1), (2, 2)])


# ---------------------------------------------------------------------------------------------------------------
def _count(img: Image.Image, colour) -> int:
    return int((np.asarray(img) == np.array(colour, np.uint8)).all(axis=-1).sum())


def test_bit_plane_grid_marks_exactly_flipped_bits():
    g = torch.Generator().manual_seed(0)
    h, w, d = 2, 3, 5
    bits = torch.randint(0, 2, (h, w, d), generator=g, dtype=torch.uint8)
    mask = torch.zeros(h, w, d, dtype=torch.bool)
    mask[0, 0, 0] = mask[1, 2, 4] = mask[0, 1, 3] = True
    bits[0, 0, 0], bits[1, 2, 4], bits[0, 1, 3] = 1, 0, 1

    cell = 12
    f = cell // max(h, w)
    img = viz.bit_plane_grid(bits, mask, cell=cell, cols=3)
    assert img.mode == "RGB" and img.width % 2 == 0 and img.height % 2 == 0
    assert _count(img, viz.FLIPPED_ONE) == 2 * f * f
    assert _count(img, viz.FLIPPED_ZERO) == 1 * f * f
    # white pixels are exactly the unflipped 1-bits (the labels are grey, never pure white)
    assert _count(img, (255, 255, 255)) == int((bits.bool() & ~mask).sum()) * f * f

    clean = viz.bit_plane_grid(bits, None, cell=cell, cols=3)
    assert _count(clean, viz.FLIPPED_ONE) == 0 and _count(clean, viz.FLIPPED_ZERO) == 0
    assert clean.size == img.size


def test_bit_plane_grid_single_token_is_visible_and_batch_tolerated():
    bits = torch.ones(1, 1, 1, 32, dtype=torch.uint8)  # (B=1, 1, 1, d): the first scale
    img = viz.bit_plane_grid(bits, cell=24)
    assert _count(img, (255, 255, 255)) == 32 * 24 * 24
    with pytest.raises(ValueError):
        viz.bit_plane_grid(torch.zeros(2, 2, 4), torch.zeros(2, 2, 3, dtype=torch.bool))


def test_flip_map_and_difference_map():
    mask = torch.zeros(4, 4, 8, dtype=torch.bool)
    mask[1, 2, :4] = True  # half the bits flipped at one position
    heat = viz.flip_map(mask)
    assert heat.size == (256, 256)
    arr = np.asarray(heat)
    assert arr[0, 0].tolist() == [0, 0, 0]
    assert arr[64 + 5, 128 + 5].tolist() == [255, 255, 255]  # the maximum share maps to the top of the scale
    absolute = np.asarray(viz.flip_map(mask, vmax=1.0))
    assert 0 < absolute[64 + 5, 128 + 5].sum() < 3 * 255

    a = Image.new("RGB", (10, 6), (100, 100, 100))
    b = a.copy()
    b.putpixel((3, 2), (110, 100, 100))
    diff = np.asarray(viz.difference_map(a, b, gain=4.0))
    assert diff.shape == (6, 10, 3)
    assert diff.sum(axis=-1).nonzero()[0].size == 1 and diff[2, 3].sum() > 0
    with pytest.raises(ValueError):
        viz.difference_map(a, Image.new("RGB", (4, 4)))


# ---------------------------------------------------------------------------------------------------------------
def test_side_by_side_pairs_and_mismatch():
    left = _frames(3, (63, 41))
    right = _frames(3, (63, 41))
    pairs = viz.side_by_side(left, right)
    assert len(pairs) == 3 and len({p.size for p in pairs}) == 1
    w, h = pairs[0].size
    assert w % 2 == 0 and h % 2 == 0 and w > 2 * 63 and h > 41
    assert viz.side_by_side(left, right, titles=None)[0].size[1] == 42
    with pytest.raises(ValueError, match="equally many"):
        viz.side_by_side(left, right[:2])


def test_image_grid_size():
    grid = viz.image_grid(_frames(5, (20, 10)), cols=3, gap=2)
    assert grid.size == (3 * 20 + 2 * 2, 2 * 10 + 2)


# ---------------------------------------------------------------------------------------------------------------
def _ffmpeg_stream_info(path) -> str:
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stderr.splitlines() if "Video:" in ln]
    assert lines, proc.stderr
    return lines[0]


def test_write_mp4_h264_yuv420p_even_with_held_frames(tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    frames = _frames(4, (61, 45))  # odd width and height
    path = viz.write_mp4(frames, tmp_path / "sub" / "scales.mp4", fps=2, hold_last=3)
    assert path.endswith("scales.mp4")

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        read = [np.asarray(f) for f in reader]
    finally:
        reader.close()
    assert len(read) == 4 + 3
    assert read[0].shape[:2] == (46, 62)

    info = _ffmpeg_stream_info(path)
    assert re.search(r"Video: h264\b", info), info
    assert "yuv420p" in info, info
    assert re.search(r"\b62x46\b", info), info

    data = open(path, "rb").read()
    assert data.find(b"moov") < data.find(b"mdat"), "faststart: the index must precede the media data"


def test_write_mp4_mixed_sizes_default_hold(tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    frames = _frames(2, (30, 20)) + _frames(1, (33, 17))
    path = viz.write_mp4(frames, tmp_path / "mixed.mp4", fps=4)
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        read = [np.asarray(f) for f in reader]
    finally:
        reader.close()
    assert len(read) == 3 + 6  # default hold: 1.5 s at 4 fps
    assert read[0].shape[:2] == (20, 34)


def test_write_gif_frames_and_speed(tmp_path):
    frames = _frames(10, (256, 256))
    t0 = time.perf_counter()
    path = viz.write_gif(frames, tmp_path / "scales.gif", duration_ms=200, hold_last_ms=1000)
    seconds = time.perf_counter() - t0
    print(f"GIF: 10 frames of 256x256 written in {seconds:.3f} s")
    assert seconds < 5.0

    with Image.open(path) as gif:
        assert gif.n_frames == 10
        assert gif.size == (256, 256)
        assert gif.info.get("loop") == 0
        gif.seek(9)
        assert gif.info["duration"] == 1200


# ---------------------------------------------------------------------------------------------------------------
def test_png_metadata_round_trip(tmp_path):
    img = _frames(1, (17, 9))[0]
    meta = {"prompt": "a red fox in snow, 雪", "seed": 42, "cfg": 3.0, "scales": [1, 2, 4], "tau": torch.tensor(0.5)}
    data = viz.png_with_metadata(img, meta)
    back = viz.read_png_metadata(data)
    assert back == {"prompt": "a red fox in snow, 雪", "seed": 42, "cfg": 3.0, "scales": [1, 2, 4], "tau": 0.5}

    path = viz.save_png(img, tmp_path / "out.png", meta)
    assert viz.read_png_metadata(path) == back
    with Image.open(path) as reread:
        assert np.array_equal(np.asarray(reread.convert("RGB")), np.asarray(img))
        params = reread.text["parameters"]
    assert params.splitlines()[0] == "a red fox in snow, 雪" and "seed: 42" in params

    plain = tmp_path / "plain.png"
    img.save(plain)
    assert viz.read_png_metadata(plain) == {}
