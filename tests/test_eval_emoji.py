"""Emoji-by-name retrieval (infinity/eval/emoji.py): the real emoji find themselves, blur and blanks do not."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from infinity.eval.emoji import THUMB, ranks, summary, thumbnail


@pytest.fixture(scope="module")
def gallery():
    from infinity.data.emoji import EmojiDataset

    try:
        ds = EmojiDataset(size=(64, 64))
    except FileNotFoundError as e:
        pytest.skip(str(e))
    return ds, np.stack([thumbnail(ds.image(i)) for i in range(len(ds))])


def test_real_emoji_rank_first_and_blobs_lose_detail(gallery):
    ds, gal = gallery
    idx = list(range(0, len(ds), 23))
    real = [ds.image(i) for i in idx]
    assert summary(ranks(real, idx, gal))["top1"] == 1.0
    blobs = [im.filter(ImageFilter.GaussianBlur(6.4)) for im in real]
    assert summary(ranks(blobs, idx, gal))["top1"] < 0.9  # blurred to colour blobs, many are confused
    white = [Image.new("RGB", (64, 64), "white")] * len(idx)
    assert summary(ranks(white, idx, gal))["top1"] < 0.2


def test_thumbnail_crops_the_centre_square():
    im = Image.new("RGB", (120, 60), "red")
    im.paste(Image.new("RGB", (30, 60), "blue"), (0, 0))  # outside the centre square: cropped away
    t = thumbnail(im).reshape(THUMB, THUMB, 3)
    assert t.shape == (THUMB, THUMB, 3) and np.allclose(t[..., 0], 255) and np.allclose(t[..., 2], 0)
