"""Checkpoint faults: missing, truncated, wrong-architecture and malicious files fail clearly, running nothing."""
import os
import pickle

import pytest
import torch

import infinity
from infinity.io import CheckpointError, load_file, load_sharded, save_safetensors

from conftest import FIXTURES


class Exploit:
    def __reduce__(self):  # unpickling would run this
        return (os.system, ("touch /tmp/infinity_pwned_marker",))


def test_missing_file_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="not found: .*nope.pth"):
        load_file(tmp_path / "nope.pth")


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = "/tmp/infinity_pwned_marker"
    if os.path.exists(marker):
        os.remove(marker)
    bad = tmp_path / "evil.pth"
    torch.save({"vae": {"x": Exploit()}}, bad)
    with pytest.raises(CheckpointError, match="refusing to load .*evil.pth"):
        infinity.build_tokenizer("vae-golden-tiny", weights=bad)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="raw.pkl"):
        load_file(raw)
    assert not os.path.exists(marker)


def test_truncated_files(tmp_path):
    data = (FIXTURES / "golden_tiny_vae.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth"):
        infinity.build_tokenizer("vae-golden-tiny", weights=cut)
    st = tmp_path / "w.safetensors"
    save_safetensors({"a": torch.zeros(1000)}, st)
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="w.safetensors"):
        load_file(st)


def test_wrong_architecture_names_the_keys():
    with pytest.raises(CheckpointError, match=r"(?s)golden_tiny_transformer.pth does not fit.*missing"):
        infinity.build_transformer("infinity-layer12", device="meta", weights=FIXTURES / "golden_tiny_transformer.pth")
    with pytest.raises(CheckpointError, match="expected a state dict"):
        infinity.build_transformer("infinity-golden-tiny", weights={"trainer": {"gpt_fsdp": {"x": 1}}})


def test_sharded_folder_round_trip_and_escape(tmp_path, golden):
    import json

    sd = golden.weights("gpt")
    keys = sorted(sd)
    half = len(keys) // 2
    save_safetensors({k: sd[k] for k in keys[:half]}, tmp_path / "model-00001-of-00002.safetensors")
    save_safetensors({k: sd[k] for k in keys[half:]}, tmp_path / "model-00002-of-00002.safetensors")
    wm = {k: f"model-0000{1 if i < half else 2}-of-00002.safetensors" for i, k in enumerate(keys)}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    m = infinity.build_transformer("infinity-golden-tiny", weights=tmp_path)
    assert torch.equal(m.head.weight, sd["head.weight"])
    wm[keys[0]] = "../elsewhere.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    with pytest.raises(CheckpointError, match="not a plain file name"):
        load_sharded(tmp_path)


def test_fp16_and_bf16_files_load(tmp_path, golden):
    sd = {k: v.to(torch.bfloat16) for k, v in golden.weights("vae").items() if v.is_floating_point()}
    sd.update({k: v for k, v in golden.weights("vae").items() if not v.is_floating_point()})
    save_safetensors(sd, tmp_path / "vae.safetensors")
    tok = infinity.build_tokenizer("vae-golden-tiny", weights=tmp_path / "vae.safetensors")
    assert tok.encoder.conv_in.conv.weight.dtype == torch.float32
