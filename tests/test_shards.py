"""Our own sharded layout (`io.save_component`): bundled files stay under the size limit and load back exactly."""
import json

import pytest
import torch

from infinity.io import CheckpointError, load_component, load_file, save_component


def _state():
    g = torch.Generator().manual_seed(0)
    return {f"w{i}": torch.randn(64, 64, generator=g).half() for i in range(6)}  # 8 KiB each


def test_shards_under_limit_round_trip(tmp_path):
    sd = _state()
    files = save_component(sd, tmp_path, "transformer", max_bytes=20_000)
    assert len(files) == 3 and all(f.stat().st_size < 20_000 + 1024 for f in files)
    index = json.loads((tmp_path / "transformer.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(sd) and index["metadata"]["total_size"] == 6 * 8192
    for loaded in (load_component(tmp_path, "transformer"), load_file(tmp_path / "transformer.safetensors")):
        assert list(loaded) == list(sd) or set(loaded) == set(sd)
        for k, v in sd.items():
            assert torch.equal(loaded[k], v)


def test_small_component_is_one_file_and_stale_shards_go(tmp_path):
    save_component(_state(), tmp_path, "transformer", max_bytes=20_000)
    save_component({"a": torch.zeros(3)}, tmp_path, "transformer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transformer.safetensors"]
    assert torch.equal(load_component(tmp_path, "transformer")["a"], torch.zeros(3))


def test_missing_shard_is_named(tmp_path):
    save_component(_state(), tmp_path, "transformer", max_bytes=20_000)
    (tmp_path / "transformer-00002-of-00003.safetensors").unlink()
    with pytest.raises(CheckpointError, match="00002-of-00003"):
        load_component(tmp_path, "transformer")


def test_pipeline_saves_shards_and_loads_them(tmp_path, monkeypatch, bundled_pipe):
    """save_pretrained shards what exceeds the limit; from_pretrained reads the folder back to the same image."""
    import infinity.io
    from infinity.pipeline import InfinityPipeline

    monkeypatch.setattr(infinity.io, "MAX_SHARD_BYTES", 2 * 2**20)
    bundled_pipe.save_pretrained(tmp_path)
    shards = sorted(p.name for p in tmp_path.glob("transformer-*-of-*.safetensors"))
    assert len(shards) >= 3 and (tmp_path / "transformer.safetensors.index.json").is_file()
    assert all(p.stat().st_size < 2 * 2**20 + 2**16 for p in tmp_path.glob("*.safetensors"))
    again = InfinityPipeline.from_pretrained(tmp_path, device="cpu")
    a = bundled_pipe("a red circle on a blue background", seed=3).images[0]
    b = again("a red circle on a blue background", seed=3).images[0]
    assert a.tobytes() == b.tobytes()
