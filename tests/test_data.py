"""Scene grammar invariants, caption round trips, the held-out split, and the image datasets."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
from PIL import Image

from infinity.data import emoji as emoji_mod
from infinity.data.folder import ImageFolderDataset
from infinity.data.scenes import (
    COLORS, FRAME_MARGIN, GAP, HELD_OUT_PAIRS, PALETTE, SHAPES, SIZE_RANGES, SceneDataset,
    caption_scene, heldout_prompts, heldout_scenes, parse_caption, position_of, render_scene,
    sample_scene,
)

ASPECTS = [(64, 64), (48, 64), (64, 48), (40, 80), (80, 40), (33, 77)]  # (h, w)


def _scenes(n, split="train", seed=0):
    return [sample_scene(random.Random(f"t/{seed}/{i}"), split) for i in range(n)]


TRAIN = _scenes(3000)
HELDOUT = _scenes(500, "heldout")


def _pixel_box(o, h, w):
    """The object's box in pixels, as the renderer lays it out (longest side = size * short)."""
    short = min(h, w)
    return (o.cx * w - o.size * short / 2, o.cy * h - o.size * short / 2,
            o.cx * w + o.size * short / 2, o.cy * h + o.size * short / 2)


@pytest.mark.parametrize("scenes", [TRAIN, HELDOUT], ids=["train", "heldout"])
def test_grammar_invariants(scenes):
    kinds = set()
    for sc in scenes:
        kinds.add(sc.kind)
        assert sc.background in COLORS
        assert 1 <= len(sc.objects) <= 3
        for o in sc.objects:
            assert o.color != sc.background and o.shape in SHAPES
        for h, w in ASPECTS:  # inside the frame and apart, at every aspect ratio
            boxes = [_pixel_box(o, h, w) for o in sc.objects]
            short = min(h, w)
            for x0, y0, x1, y1 in boxes:
                assert x0 >= FRAME_MARGIN * short - 1e-6 and y0 >= FRAME_MARGIN * short - 1e-6
                assert x1 <= w - FRAME_MARGIN * short + 1e-6 and y1 <= h - FRAME_MARGIN * short + 1e-6
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
                    assert gap >= GAP * short - 1e-6
        if sc.kind == "single":
            (o,) = sc.objects
            lo, hi = SIZE_RANGES[sc.size_word]
            assert lo <= o.size <= hi
            if sc.position:
                assert position_of(o.cx, o.cy) == sc.position
        elif sc.kind == "count":
            assert len({(o.color, o.shape) for o in sc.objects}) == 1
            assert sc.size_word in ("small", None)
            assert all(SIZE_RANGES[sc.size_word][0] <= o.size <= SIZE_RANGES[sc.size_word][1] for o in sc.objects)
        else:
            a, b = sc.objects
            assert (a.color, a.shape) != (b.color, b.shape)
            dx, dy = b.cx - a.cx, b.cy - a.cy
            along, across = {"left of": (dx, dy), "right of": (-dx, dy),
                             "above": (dy, dx), "below": (-dy, dx)}[sc.relation]
            assert along >= 0.25 and abs(across) < along  # unambiguous, mostly along its axis
            assert all(SIZE_RANGES["small"][0] <= o.size <= SIZE_RANGES[None][1] for o in sc.objects)
    assert kinds == {"single", "count", "relation"}
    counts = {len(sc.objects) for sc in scenes if sc.kind == "count"}
    assert counts == {1, 2, 3}


def test_rendered_position_matches_word_at_every_aspect():
    """Read the drawn object back from pixels: its box centre lies in the named 3x3 cell."""
    singles = [sc for sc in TRAIN if sc.kind == "single" and sc.position][:40]
    for sc in singles:
        for h, w in ASPECTS:
            img = np.asarray(render_scene(sc, w, h), np.int32)
            assert img.shape == (h, w, 3)
            fg = np.abs(img - PALETTE[sc.background]).sum(2) > 60
            ys, xs = np.nonzero(fg)
            cx, cy = (xs.min() + xs.max() + 1) / 2 / w, (ys.min() + ys.max() + 1) / 2 / h
            assert position_of(cx, cy) == sc.position, (sc, h, w)
            assert not fg[0].any() and not fg[-1].any() and not fg[:, 0].any() and not fg[:, -1].any()


def test_caption_parse_round_trip():
    for i, sc in enumerate(TRAIN[:1500] + HELDOUT):
        for k in range(3):  # several phrasings of the same scene
            cap = caption_scene(sc, random.Random(f"cap/{i}/{k}"))
            spec = parse_caption(cap)
            assert spec is not None, cap
            assert spec.normalized() == sc.spec().normalized(), cap


def test_captions_use_several_phrasings():
    caps = {caption_scene(TRAIN[0], random.Random(k)) for k in range(40)}
    assert len(caps) >= 5


@pytest.mark.parametrize("text", [
    "", "hello world", "a red circle", "a red circle on a blue background on a green background",
    "two red circle on blue", "a red circles on blue", "a red circle near a blue square on white",
    "a red circle at the top at the bottom on blue",
])
def test_parse_rejects_text_outside_the_grammar(text):
    assert parse_caption(text) is None


def test_parse_examples():
    s = parse_caption("a small red circle in the top left on a blue background")
    assert (s.background, s.kind, s.objects[0].color, s.objects[0].shape) == ("blue", "single", "red", "circle")
    assert (s.objects[0].position, s.objects[0].size) == ("top left", "small")
    s = parse_caption("three yellow stars on a black background")
    assert (s.kind, s.objects[0].count, s.objects[0].shape, s.background) == ("count", 3, "star", "black")
    s = parse_caption("a green square to the left of a pink heart on a white background")
    assert s.relation == "left of" and [o.shape for o in s.objects] == ["square", "heart"]
    assert parse_caption("Grey background, a red circle in the centre").objects[0].position == "center"


def test_held_out_pairs_are_spread_and_never_trained():
    assert len(HELD_OUT_PAIRS) == 8
    assert {s for _, s in HELD_OUT_PAIRS} == set(SHAPES)
    assert len({c for c, _ in HELD_OUT_PAIRS}) == 8
    for i, sc in enumerate(TRAIN):
        assert not {(o.color, o.shape) for o in sc.objects} & HELD_OUT_PAIRS
        cap = caption_scene(sc, random.Random(i))
        for c, s in HELD_OUT_PAIRS:
            assert f"{c} {s}" not in cap
    train_ds = SceneDataset(300, seed=5)
    for i in range(len(train_ds)):
        sc, cap, _ = train_ds.scene(i)
        assert not {(o.color, o.shape) for o in sc.objects} & HELD_OUT_PAIRS
    for sc in HELDOUT:
        assert {(o.color, o.shape) for o in sc.objects} & HELD_OUT_PAIRS


def test_heldout_prompts_fixed_and_consistent():
    a, b = heldout_prompts(50, seed=0), heldout_prompts(50, seed=0)
    assert a == b and heldout_prompts(50, seed=1) != a
    for (cap, spec), (cap2, scene) in zip(a, heldout_scenes(50, seed=0)):
        assert cap == cap2 and spec == parse_caption(cap)
        assert spec.normalized() == scene.spec().normalized()
        assert {(o.color, o.shape) for o in spec.objects} & HELD_OUT_PAIRS
    seen = heldout_scenes(50, seed=0, split="train")  # the eval's diagnostic: fixed scenes of seen pairs only
    assert seen == heldout_scenes(50, seed=0, split="train")
    assert all(not {(o.color, o.shape) for o in sc.objects} & HELD_OUT_PAIRS for _, sc in seen)


def test_sample_scene_accepts_numpy_generator_and_rejects_bad_split():
    a = sample_scene(np.random.default_rng(3))
    assert a == sample_scene(np.random.default_rng(3))
    with pytest.raises(ValueError):
        sample_scene(random.Random(0), "test")


def test_scene_dataset_deterministic_and_sized():
    ds = SceneDataset(12, size=[(64, 64), (48, 64), (80, 40)], seed=3)
    again = SceneDataset(12, size=[(64, 64), (48, 64), (80, 40)], seed=3)
    other = SceneDataset(12, size=[(64, 64), (48, 64), (80, 40)], seed=4)
    held = SceneDataset(12, size=[(64, 64), (48, 64), (80, 40)], seed=3, split="heldout")
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"image", "caption", "h_div_w"}
        img = item["image"]
        assert img.mode == "RGB" and (img.height, img.width) in {(64, 64), (48, 64), (80, 40)}
        assert item["h_div_w"] == pytest.approx(img.height / img.width)
        seen.add(img.size)
        twin = again[i]
        assert twin["caption"] == item["caption"] and twin["image"].tobytes() == img.tobytes()
    assert len(seen) > 1
    assert [ds[i]["caption"] for i in range(12)] != [other[i]["caption"] for i in range(12)]
    assert [ds[i]["caption"] for i in range(12)] != [held[i]["caption"] for i in range(12)]
    assert len(list(ds)) == 12
    with pytest.raises(IndexError):
        ds[12]
    with pytest.raises(ValueError):
        SceneDataset(4, size=(16, 64))


def test_render_any_size():
    sc = TRAIN[1]
    for w, h in [(32, 32), (77, 33), (200, 120)]:
        img = render_scene(sc, w, h)
        assert img.size == (w, h) and img.mode == "RGB"
        assert img.getpixel((0, 0)) == PALETTE[sc.background]


# ----------------------------------------------------------------------------- emoji

def _emoji_or_skip(**kw):
    try:
        return emoji_mod.EmojiDataset(**kw)
    except FileNotFoundError:
        pytest.skip(f"{emoji_mod.PACKAGE} not installed (run `{emoji_mod.INSTALL_COMMAND}`)")


def test_emoji_dataset():
    ds = _emoji_or_skip(size=64)
    assert 300 <= len(ds) <= 700
    names = {e.name for e in ds.entries}
    assert {"red apple", "sunflower", "cactus"} <= names
    assert {e.subcategory for e in ds.entries} <= set(emoji_mod.SUBCATEGORIES)
    for e in ds.entries:  # no flags, keycaps, families or skin-tone variants
        assert e.category not in ("flags", "symbols", "people & body")
        assert not any(t in e.path.name for t in ("1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"))
    i = next(k for k, e in enumerate(ds.entries) if e.name == "red apple")
    item = ds[i]
    assert set(item) == {"image", "caption", "h_div_w"} and item["h_div_w"] == 1.0
    img = np.asarray(item["image"])
    assert img.shape == (64, 64, 3)
    assert (img[:3, :3] >= 250).all() and (img[-3:, -3:] >= 250).all()  # white margin
    red = (img[..., 0].astype(int) - img[..., 1]) > 80
    assert red.mean() > 0.15  # an apple is mostly red
    assert "apple" in item["caption"]
    assert ds[i]["caption"] == item["caption"]
    wide = _emoji_or_skip(size=(48, 80))[0]
    assert wide["image"].size == (80, 48) and wide["h_div_w"] == pytest.approx(0.6)
    by_name = _emoji_or_skip(caption_mode="name")
    assert by_name[i]["caption"] == "red apple"


def test_emoji_env_var_and_missing_package(monkeypatch, tmp_path):
    try:
        root = emoji_mod.find_emoji_root()
    except FileNotFoundError:
        root = None
    if root is not None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv(emoji_mod.ENV_VAR, str(root))
        assert emoji_mod.find_emoji_root() == root
    monkeypatch.delenv(emoji_mod.ENV_VAR, raising=False)
    monkeypatch.setattr(emoji_mod, "PACKAGE", "no-such-emoji-package")
    with pytest.raises(FileNotFoundError, match="npm install"):
        emoji_mod.EmojiDataset(root=tmp_path)


# ----------------------------------------------------------------------------- folder

def _two_tone(path, w, h):
    img = Image.new("RGB", (w, h), (255, 0, 0))
    img.paste((0, 0, 255), (w // 2, 0, w, h))
    img.save(path)


def test_folder_dataset_jsonl(tmp_path):
    _two_tone(tmp_path / "a.png", 100, 50)
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (30, 90), (0, 200, 0)).save(tmp_path / "sub" / "b.jpg")
    lines = [{"file": "a.png", "caption": "red and blue"}, {"file": "sub/b.jpg", "caption": " green "}]
    (tmp_path / "captions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    ds = ImageFolderDataset(tmp_path, size=64)
    assert len(ds) == 2
    a, b = ds[0], ds[1]
    assert a["caption"] == "red and blue" and b["caption"] == "green"
    assert a["image"].size == (64, 64) and a["h_div_w"] == 1.0
    px = np.asarray(a["image"])
    # cover-resize to 128x64 then centre crop: red left of centre, blue right of it
    assert px[32, 20, 0] > 200 and px[32, 44, 2] > 200
    # nearest aspect from a list: a 2:1 landscape image gets the (48, 96) size
    ds2 = ImageFolderDataset(tmp_path, size=[(64, 64), (48, 96), (96, 48)])
    assert ds2[0]["image"].size == (96, 48) and ds2[0]["h_div_w"] == 0.5
    assert ds2[1]["image"].size == (48, 96)


def test_folder_dataset_sidecars(tmp_path):
    for name, text in [("x.png", "first"), ("y.webp", "second")]:
        Image.new("RGB", (40, 40), (9, 9, 9)).save(tmp_path / name)
        (tmp_path / name).with_suffix(".txt").write_text(text + "\n")
    ds = ImageFolderDataset(tmp_path, size=(32, 48))
    assert [d["caption"] for d in ds] == ["first", "second"]
    assert ds[0]["image"].size == (48, 32) and ds[0]["image"].mode == "RGB"


def test_folder_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="no captioned images"):
        ImageFolderDataset(tmp_path)
    Image.new("RGB", (40, 40)).save(tmp_path / "lonely.png")
    with pytest.raises(FileNotFoundError, match="lonely"):
        ImageFolderDataset(tmp_path)
    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text(json.dumps({"file": "lonely.png"}) + "\n")
    with pytest.raises(ValueError, match="missing caption"):
        ImageFolderDataset(tmp_path)


@pytest.mark.parametrize("bad", ["../outside.png", "/etc/hostname", "sub/../../outside.png", "link.png"])
def test_folder_dataset_rejects_paths_outside(tmp_path, bad):
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "link.png")
    (root / "captions.jsonl").write_text(json.dumps({"file": bad, "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match="outside|inside the folder"):
        ImageFolderDataset(root)


def test_folder_sidecar_symlink_outside_rejected(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", root / "link.png")
    (root / "link.txt").write_text("x")
    with pytest.raises(ValueError, match="outside"):
        ImageFolderDataset(root)
