"""Parity of the tokenizer with the official code: key lists of every preset and the golden tiny VAE's outputs."""
import pytest
import torch

import infinity
from infinity import schedules
from infinity.io import CheckpointError
from infinity.tokenizer import transformer_inputs

from conftest import FIXTURES, read_tsv

PRESET_FILES = {
    "vae-d16": "infinity_vae_d16_state_dict.tsv",
    "vae-d24": "infinity_vae_d24_state_dict.tsv",
    "vae-d32": "infinity_vae_d32reg_state_dict.tsv",
    "vae-d64": "infinity_vae_d64_state_dict.tsv",
    "vae-d14-patchify": "infinity_vae_d56_f8_14_patchify_state_dict.tsv",
}


@pytest.mark.parametrize("preset", sorted(PRESET_FILES))
def test_preset_keys_and_shapes_match_official(preset):
    ref = read_tsv(PRESET_FILES[preset])
    ref = {k: v for k, v in ref.items() if not k.startswith("quantize.")}  # same module registered twice
    tok = infinity.build_tokenizer(preset, device="meta")
    ours = {k: tuple(v.shape) for k, v in tok.state_dict().items()}
    assert ours == ref


def _tiny(golden):
    tok = infinity.build_tokenizer("vae-golden-tiny")
    tok.load_official(golden.weights("vae"))
    return tok


def test_official_pth_loads_like_the_safetensors(golden):
    tok = infinity.build_tokenizer("vae-golden-tiny", weights=FIXTURES / "golden_tiny_vae.pth")
    ref = golden.weights("vae")
    for k, v in tok.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_plain_names_are_placed_on_wrappers(golden):
    sd = {k.replace(".conv.weight", ".weight").replace(".norm.bias", ".bias"): v for k, v in golden.weights("vae").items()}
    tok = infinity.build_tokenizer("vae-golden-tiny", weights=sd)
    assert torch.equal(tok.encoder.conv_in.conv.weight, golden["vae.encoder.conv_in.conv.weight"])


def test_wrong_vae_fails_naming_keys(golden):
    with pytest.raises(CheckpointError) as e:
        infinity.build_tokenizer("vae-d16", device="meta", weights=FIXTURES / "golden_tiny_vae.pth")
    msg = str(e.value)
    assert "missing" in msg and "wrong shape" in msg and "golden_tiny_vae.pth" in msg
    sd = golden.weights("vae")
    sd.pop("decoder.conv_out.conv.bias")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"(?s)missing \(1\): decoder.conv_out.conv.bias.*unexpected \(1\): extra.weight"):
        infinity.build_tokenizer("vae-golden-tiny", weights=sd)


@pytest.mark.parametrize("case", ["sq", "ns", "pf"])
def test_golden_vae_outputs(golden, case):
    tok = _tiny(golden)
    sched = [tuple(s[1:]) for s in golden.meta["schedules"][case]["vae_scale_schedule"]]
    img = golden.image(case)
    with torch.no_grad():
        feats = tok.image_to_features(img)
        torch.testing.assert_close(feats, golden[f"{case}.vae.raw_features"], atol=1e-4, rtol=0)
        pyr = tok.features_to_bits(feats, sched)
        for s in range(len(sched)):
            ref_bits = golden[f"{case}.vae.scale{s:02d}.bits"][:, 0]  # (B,1,h,w,d) → (B,h,w,d)
            assert torch.equal(pyr.bits[s], ref_bits), f"bits differ at scale {s}"
            torch.testing.assert_close(pyr.inputs[s], golden[f"{case}.vae.scale{s:02d}.bsq_input"][:, :, 0], atol=1e-4, rtol=0)
            torch.testing.assert_close(pyr.codes_sum[s], golden[f"{case}.vae.scale{s:02d}.cum_codes"][:, :, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(pyr.codes, golden[f"{case}.vae.z"], atol=1e-5, rtol=0)
        torch.testing.assert_close(tok.codes_to_image(pyr.codes), golden[f"{case}.vae.decoded"], atol=1e-4, rtol=0)
        # the same sums rebuilt from bits alone (what generation does)
        rebuilt = tok.bits_to_codes_sum(pyr.bits, sched[-1])
        for s in range(len(sched)):
            torch.testing.assert_close(rebuilt[s], pyr.codes_sum[s], atol=1e-6, rtol=0)


@pytest.mark.parametrize("case,patchified", [("sq", False), ("ns", False), ("pf", True)])
def test_teacher_forcing_inputs_and_labels(golden, case, patchified):
    """The transformer inputs built from the pyramid equal the official flip_requant without flips."""
    from infinity.tokenizer.quantizer import bits_patchify

    tok = _tiny(golden)
    sched = [tuple(s[1:]) for s in golden.meta["schedules"][case]["vae_scale_schedule"]]
    with torch.no_grad():
        pyr = tok.features_to_bits(golden[f"{case}.vae.raw_features"], sched)
    x = transformer_inputs(pyr.codes_sum, sched, patchified=patchified)
    torch.testing.assert_close(x, golden[f"{case}.tf.x_BLC_wo_prefix"], atol=1e-5, rtol=0)
    bits = [bits_patchify(b) if patchified else b for b in pyr.bits]
    gt = torch.cat([b.flatten(1, 2) for b in bits], dim=1)
    assert torch.equal(gt, golden[f"{case}.tf.gt_bits"])


def test_golden_perturbed_fails(golden):
    """The parity check can fail: a perturbation of 1e-3 in one decoded pixel is caught."""
    tok = _tiny(golden)
    sched = schedules.scale_schedule(1.0, "0.06M")
    with torch.no_grad():
        dec = tok.codes_to_image(tok.image_to_bits(golden.image("sq"), sched).codes)
    torch.testing.assert_close(dec, golden["sq.vae.decoded"], atol=1e-4, rtol=0)  # unperturbed: it matches
    ref = golden["sq.vae.decoded"].clone()
    ref[0, 0, 0, 0] += 1e-3
    with pytest.raises(AssertionError):
        torch.testing.assert_close(dec, ref, atol=1e-4, rtol=0)


def test_bitwise_self_correction_example(golden):
    """The official flip_requant example: with the stored flipped bits at scales 0–2, re-quantizing the rest
    gives the recorded transformer input (paper §3.3)."""
    from infinity.tokenizer import quantizer as Q

    sched = [tuple(s[1:]) for s in golden.meta["schedules"]["sq"]["vae_scale_schedule"]]
    flipped = [golden[f"sq.bsc.scale{s:02d}.flipped_bits"][:, 0] for s in range(3)]
    pyr = Q.residual_quantize(golden["sq.vae.raw_features"], sched,
                              flip=lambda s, bits: flipped[s].to(bits) if s < 3 else bits)
    assert any(not torch.equal(f, b) for f, b in zip(flipped, pyr.bits[:3]))  # the example does flip bits
    torch.testing.assert_close(Q.transformer_inputs(pyr.codes_sum, sched), golden["sq.bsc.x_BLC_wo_prefix"],
                               atol=1e-5, rtol=0)
