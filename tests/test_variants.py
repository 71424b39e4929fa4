"""The official variants (2B, 8B, 8B-512): presets checked against the official key lists on the meta device, and
tiny checkpoints written in the official layouts (same key names, tiny widths) loaded through `from_pretrained`."""
import dataclasses
import json

import pytest
import torch

import infinity
from infinity.config import MODEL_PRESETS
from infinity.io import CheckpointError
from infinity.loading import OFFICIAL_VARIANTS, resolve
from infinity.pipeline import InfinityPipeline
from infinity.validation import InvalidInput

from conftest import read_tsv, tiny_t5_encoder
from official_layout import TINY_TF, official_folder, tiny_config, tiny_parts, write_sharded  # noqa: F401 (fixture)

TSV = {"infinity-2b": ("infinity_2b_state_dict.tsv", "infinity_vae_d32reg_state_dict.tsv"),
       "infinity-8b": ("infinity_8b_state_dict.tsv", "infinity_vae_d56_f8_14_patchify_state_dict.tsv"),
       "infinity-8b-512": ("infinity_8b_state_dict.tsv", "infinity_vae_d56_f8_14_patchify_state_dict.tsv")}


@pytest.mark.parametrize("variant", sorted(OFFICIAL_VARIANTS))
def test_each_variant_builds_on_meta_with_the_official_keys(variant):
    cfg = MODEL_PRESETS[variant]
    tf = infinity.build_transformer(cfg.transformer, device="meta")
    tok = infinity.build_tokenizer(cfg.tokenizer, device="meta")
    tf_tsv, vae_tsv = TSV[variant]
    assert {k: tuple(v.shape) for k, v in tf.state_dict().items()} == read_tsv(tf_tsv)
    ref = {k: v for k, v in read_tsv(vae_tsv).items() if not k.startswith("quantize.")}
    assert {k: tuple(v.shape) for k, v in tok.state_dict().items()} == ref
    # the transformer reads what the VAE writes: 4·d bits per token under spatial patchify (8B)
    assert cfg.transformer.d_vae == cfg.tokenizer.token_bits and cfg.tokenizer.token_stride == 16


def test_variant_budgets_and_defaults():
    b2, b8, b512 = (MODEL_PRESETS[v] for v in ("infinity-2b", "infinity-8b", "infinity-8b-512"))
    assert b2.default_budget == b8.default_budget == "1M" and b512.default_budget == "0.25M"
    assert list(b512.budgets) == ["0.06M", "0.25M"] and "1M" in b8.budgets
    assert b2.defaults["temperature"] == 0.5 and b8.defaults["temperature"] == 1.0  # official scripts / notebooks
    assert {c.text_encoder for c in (b2, b8, b512)} == {"google/flan-t5-xl"}
    assert MODEL_PRESETS["infinity-8b"].tokenizer.spatial_patchify and not b2.tokenizer.spatial_patchify


@pytest.mark.parametrize("variant", ["infinity-8b", "infinity-8b-512"])
def test_tiny_sharded_checkpoint_loads_by_variant_with_its_t5(tmp_path, tiny_parts, golden, variant):
    official_folder(tmp_path, variant, tiny_parts, golden)
    assert resolve(tmp_path).variant == variant  # the only files present decide
    pipe = InfinityPipeline.from_pretrained(tmp_path, device="cpu", config=tiny_config())
    tok, tf = tiny_parts
    for k, v in tf.state_dict().items():  # every tensor, as stored (bf16 in the file) and cast to float32
        assert torch.equal(pipe.transformer.state_dict()[k], v.to(torch.bfloat16).float()), k
    assert pipe.text_encoder.channels == 256  # the T5 found in flan-t5-xl/
    out = pipe("a red circle", seed=0, greedy=True)
    assert out.images[0].size == (48, 48)  # 6×6 tokens at 8 px (2×2 patches of a stride-4 VAE)
    assert out.states[-1].bits.shape[1:] == (12, 12, 4)  # bits on the VAE grid


def test_bundled_variants_folder_prefers_2b_and_variant_chooses(tmp_path, tiny_parts):
    for v in ("infinity-8b", "infinity-8b-512"):
        official_folder(tmp_path, v, tiny_parts)
    assert resolve(tmp_path).variant == "infinity-8b"  # 8B before its 512 stage
    (tmp_path / "infinity_2b_reg.pth").write_bytes(b"")
    (tmp_path / "infinity_vae_d32reg.pth").write_bytes(b"")
    assert resolve(tmp_path).variant == "infinity-2b"  # the hub id's default when several are present
    assert resolve(tmp_path, variant="8b-512").variant == "infinity-8b-512"
    r = resolve(tmp_path / "infinity_8b_512x512_weights")  # the shards folder itself: variant from its name
    assert r.variant == "infinity-8b-512" and r.tokenizer == tmp_path / "infinity_vae_d56_f8_14_patchify.pth"
    assert r.config.default_budget == "0.25M"
    with pytest.raises(InvalidInput, match="unknown model variant 'infinity-20b'"):
        resolve(tmp_path, variant="infinity-20b")


def test_missing_files_are_named(tmp_path, tiny_parts):
    with pytest.raises(CheckpointError, match="neither a converted model"):
        resolve(tmp_path)
    official_folder(tmp_path, "infinity-8b", tiny_parts)
    with pytest.raises(CheckpointError, match=r"infinity-2b: .*infinity_2b_reg.pth not found"):
        resolve(tmp_path, variant="2b")
    (tmp_path / "infinity_vae_d56_f8_14_patchify.pth").unlink()
    with pytest.raises(CheckpointError, match="VAE infinity_vae_d56_f8_14_patchify.pth is missing"):
        resolve(tmp_path)


def test_sharded_missing_key_is_named_before_any_shard_is_read(tmp_path, tiny_parts):
    _, tf = tiny_parts
    sd = dict(tf.state_dict())
    gone = "block_chunks.3.module.0.ffn.fc2.weight"
    del sd[gone]
    write_sharded(tmp_path / "w", sd)
    (tmp_path / "w" / "model-00001-of-00003.safetensors").write_bytes(b"garbage")  # never opened
    with pytest.raises(CheckpointError, match=rf"(?s)model.safetensors.index.json does not fit.*missing \(1\): {gone}"):
        infinity.build_transformer(TINY_TF, device="meta", weights=tmp_path / "w")


def test_sharded_shard_must_hold_what_the_index_lists(tmp_path, tiny_parts):
    _, tf = tiny_parts
    gone = "head.weight"
    write_sharded(tmp_path / "w", tf.state_dict(), drop_from_shard=gone)
    with pytest.raises(CheckpointError, match=f"listed but absent: {gone}"):
        infinity.build_transformer(TINY_TF, device="meta", weights=tmp_path / "w")


def test_sharded_load_places_each_tensor_as_it_goes(tmp_path, tiny_parts):
    """Shard by shard: blocks straight to bf16 (the official cast), the rest float32, nothing left on meta."""
    _, tf = tiny_parts
    write_sharded(tmp_path / "w", tf.state_dict())
    m = infinity.build_transformer(TINY_TF, device="meta")
    seen = []

    def place(k, t):
        seen.append(k)
        return t.to(torch.bfloat16 if k.startswith("block_chunks.") else torch.float32)

    m.load_official(tmp_path / "w", place=place)
    assert sorted(seen) == sorted(tf.state_dict())
    assert m.block_chunks[0].module[0].sa.mat_qkv.weight.dtype == torch.bfloat16
    assert m.head.weight.dtype == torch.float32 and not any(t.is_meta for t in m.state_dict().values())


def test_pipeline_reduced_precision_keeps_the_official_split(tmp_path, tiny_parts, golden):
    official_folder(tmp_path, "infinity-8b", tiny_parts)
    pipe = InfinityPipeline.from_pretrained(tmp_path, device="cpu", dtype=torch.bfloat16, config=tiny_config(),
                                            text_encoder=tiny_t5_encoder(golden))
    assert pipe.transformer.blocks[0].ffn.fc1.weight.dtype == torch.bfloat16
    assert pipe.transformer.head.weight.dtype == torch.float32 and pipe.compute_dtype == torch.bfloat16


def test_hub_variants_offline_say_what_they_need(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"cannot get FoundationVision/Infinity \(infinity_8b_weights/\*, "
                                              r"infinity_vae_d56_f8_14_patchify.pth\): HF_HUB_OFFLINE is set"):
        InfinityPipeline.from_pretrained("infinity-8b", device="cpu")
    with pytest.raises(CheckpointError, match=r"infinity_8b_512x512_weights/\*"):
        InfinityPipeline.from_pretrained("FoundationVision/Infinity", variant="8b-512", device="cpu")
    with pytest.raises(CheckpointError, match="infinity_2b_reg.pth"):
        InfinityPipeline.from_pretrained(variant="2b", device="cpu")


def test_converted_variant_round_trips(tmp_path, tiny_parts, golden):
    """convert → save_pretrained (our safetensors + config.json) → from_pretrained gives the same weights."""
    official_folder(tmp_path / "off", "infinity-8b", tiny_parts)
    te = tiny_t5_encoder(golden)
    a = InfinityPipeline.from_pretrained(tmp_path / "off", device="cpu", config=tiny_config(), text_encoder=te)
    a.save_pretrained(tmp_path / "ours", half=False)
    b = InfinityPipeline.from_pretrained(tmp_path / "ours", device="cpu", text_encoder=te)
    assert b.config == dataclasses.replace(tiny_config(), h_div_w=())
    assert all(torch.equal(v, b.transformer.state_dict()[k]) for k, v in a.transformer.state_dict().items())


def test_cli_convert_official_files(tmp_path, golden):
    """`python -m infinity convert`: official .pth files → our folder; the variant's budgets and defaults go along."""
    from infinity import __main__ as cli

    from conftest import FIXTURES

    rc = cli.main(["convert", "--variant", "8b-512", "--transformer", str(FIXTURES / "golden_tiny_transformer.pth"),
                   "--tokenizer", str(FIXTURES / "golden_tiny_vae.pth"), "--transformer-preset", "infinity-golden-tiny",
                   "--tokenizer-preset", "vae-golden-tiny", "--out", str(tmp_path / "m")])
    assert rc == 0
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["budgets"] == {"0.06M": 7, "0.25M": 10} and cfg["defaults"]["temperature"] == 1.0
    pipe = InfinityPipeline.from_pretrained(tmp_path / "m", device="cpu", text_encoder=tiny_t5_encoder(golden))
    assert torch.equal(pipe.transformer.head.weight, golden.weights("gpt")["head.weight"])
