"""Hostile input at the library level: uploads that are not images, damaged, or decompression bombs; prompts with
control characters and mixed scripts. (The same cases through the server are in test_app.py.)"""
import struct
import zlib

import pytest
from PIL import Image

from infinity.validation import MAX_IMAGE_PIXELS, InvalidInput, clean_prompt, open_image


def test_good_upload_opens_as_rgb(tmp_path):
    Image.new("RGBA", (30, 20), (1, 2, 3, 4)).save(tmp_path / "a.png")
    im = open_image(str(tmp_path / "a.png"))
    assert im.mode == "RGB" and im.size == (30, 20)
    assert open_image(Image.new("L", (5, 6))).mode == "RGB"


@pytest.mark.parametrize("w,h", [(8000, 6000), (20000, 20000)])  # over our cap; over Pillow's own bomb limit
def test_decompression_bombs_are_refused_from_the_header(tmp_path, w, h, png_header):
    path = png_header(tmp_path / "bomb.png", w, h)
    assert (tmp_path / "bomb.png").stat().st_size < 100
    with pytest.raises(InvalidInput, match="too large"):
        open_image(path)


def test_damaged_and_foreign_files(tmp_path):
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="damaged or truncated"):
        open_image(str(tmp_path / "cut.png"))
    (tmp_path / "notes.png").write_text("just text with a .png name")
    with pytest.raises(InvalidInput, match="not an image"):
        open_image(str(tmp_path / "notes.png"))
    with pytest.raises(InvalidInput, match="upload an image"):
        open_image(None)
    with pytest.raises(InvalidInput, match="not an image"):
        open_image(12345)
    with pytest.raises(InvalidInput, match="too large"):
        open_image(Image.new("1", (MAX_IMAGE_PIXELS // 1000 + 1, 1000)))


@pytest.mark.parametrize("raw,clean", [
    ("a red\x00 circle\x1b[31m", "a red circle [31m"),           # NUL and ESC become spaces
    ("  \t\n a\u200bb ", "a\u200bb"),                               # zero-width space is a format char: kept
    ("красный круг 赤い丸 دائرة حمراء 🍎", "красный круг 赤い丸 دائرة حمراء 🍎"),  # scripts mixed: kept as is
    ("\ud800x\ue000y", "x y"),                                       # lone surrogate / private use dropped
    ("👩\u200d🔬 scientist", "👩\u200d🔬 scientist"),                   # ZWJ emoji sequence stays joined
])
def test_prompts_are_cleaned_not_rejected(raw, clean):
    assert clean_prompt(raw) == clean


@pytest.mark.parametrize("raw", ["", "   ", "\x00\x01\x1f", "\u2028\u2029", None])
def test_prompts_with_nothing_left_are_refused(raw):
    with pytest.raises(InvalidInput, match="empty"):
        clean_prompt(raw)
