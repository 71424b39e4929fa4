"""bench/device_pack.py: the slim text encoder a GPU machine without network rebuilds encodes our captions as
all-MiniLM-L6-v2 does, and a caption outside the packed words is caught instead of read as zeros."""
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import device_pack  # noqa: E402


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    from infinity.data.emoji import find_emoji_root

    try:
        find_emoji_root()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("carry")
    stats = device_pack.pack(out, n_scenes=3000)
    return out, stats


def test_pack_is_small_and_encodes_like_the_full_model(packed):
    out, stats = packed
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert size < 30 * 2**20 and stats["emoji"] == 462
    assert 300 < stats["rows_kept"] < 2000
    assert stats["max_abs_diff_vs_float32_minilm"] < 0.02  # fp16 weights; features reach ~6


def test_unpack_rebuilds_a_full_folder_and_catches_unknown_words(packed, tmp_path):
    out, _ = packed
    device_pack.unpack(out, tmp_path / "minilm", check=500)
    state = load_file(str(tmp_path / "minilm" / "model.safetensors"))
    words = state[device_pack.WORDS]
    kept = load_file(str(out / "minilm" / "slim.safetensors"))["word_ids"]
    assert words.shape[0] == json.loads((tmp_path / "minilm" / "config.json").read_text())["vocab_size"]
    assert int((words.abs().sum(1) > 0).sum()) == len(kept) and words.dtype == torch.float32
    assert device_pack.missing_rows(tmp_path / "minilm", ["a red circle on a blue background"], kept.tolist()) == set()
    assert device_pack.missing_rows(tmp_path / "minilm", ["a zebra playing the saxophone"], kept.tolist())
