"""Invariants of the bitwise quantizer: round trips and residual sums across scales."""
import math

import pytest
import torch

import infinity
from infinity import schedules
from infinity.tokenizer import quantizer as Q


@pytest.mark.parametrize("d", [1, 7, 16, 32, 63])
def test_bits_codes_indices_round_trip(d):
    g = torch.Generator().manual_seed(d)
    bits = torch.randint(0, 2, (2, 3, 5, d), generator=g, dtype=torch.uint8)
    codes = Q.bits_to_codes(bits)
    assert codes.shape == (2, d, 3, 5)
    torch.testing.assert_close(codes.norm(dim=1), torch.ones(2, 3, 5))  # on the unit sphere
    assert torch.equal(Q.codes_to_bits(codes), bits)
    idx = Q.bits_to_indices(bits)
    assert idx.min() >= 0 and (d == 63 or idx.max() < 2**d)
    assert torch.equal(Q.indices_to_bits(idx, d), bits)


def test_index_is_msb_first_and_limits():
    assert Q.bits_to_indices(torch.tensor([1, 0, 1, 1], dtype=torch.uint8)).item() == 11
    with pytest.raises(ValueError):
        Q.bits_to_indices(torch.zeros(64, dtype=torch.uint8))


def test_quantize_sign_and_magnitude():
    x = torch.tensor([[[[0.5]], [[-2.0]], [[1e-3]], [[-1e-9]]]])  # (1, 4, 1, 1)
    codes, bits = Q.quantize(x)
    assert bits.flatten().tolist() == [1, 0, 1, 0]
    torch.testing.assert_close(codes.flatten(), torch.tensor([1, -1, 1, -1]) / 2.0)


def test_residual_sums_across_scales():
    torch.manual_seed(0)
    # smooth features at the codes' scale, like a trained encoder's (white noise has no coarse part to code)
    feats = torch.nn.functional.interpolate(torch.randn(2, 16, 4, 4), size=(16, 16), mode="bilinear") * 0.5
    sched = schedules.scale_schedule(1.0, "0.06M")
    pyr = Q.residual_quantize(feats, sched)
    # the running sum after each scale is the sum of that scale's upsampled codes
    prev = torch.zeros_like(feats)
    for s, hw in enumerate(sched):
        step = Q.resize_linear(Q.bits_to_codes(pyr.bits[s]), (16, 16))
        torch.testing.assert_close(pyr.codes_sum[s], prev + step)
        prev = pyr.codes_sum[s]
    # each scale makes the residual smaller: coarse-to-fine approximation (paper §3.1)
    errs = [(feats - c).norm().item() for c in pyr.codes_sum]
    assert errs[-1] < errs[0]
    assert errs[-1] < 0.5 * feats.norm().item()
    # the quantizer's input at scale s is the residual left by scales < s, area-resized
    torch.testing.assert_close(pyr.inputs[3], Q.down_to(feats - pyr.codes_sum[2], sched[3]))


def test_flips_change_accumulated_codes_but_not_labels():
    torch.manual_seed(1)
    feats = torch.randn(1, 8, 8, 8)
    sched = schedules.scale_schedule(1.0, 5)
    clean = Q.residual_quantize(feats, sched)
    flipped = Q.residual_quantize(feats, sched, flip=lambda s, b: 1 - b if s == 1 else b)
    assert torch.equal(flipped.bits[1], clean.bits[1])            # labels stay the true bits
    assert torch.equal(flipped.used_bits[1], 1 - clean.bits[1])   # the accumulated ones were flipped
    assert not torch.equal(flipped.bits[2], clean.bits[2])        # later labels correct the error


def test_patchify_bits_round_trip():
    bits = torch.randint(0, 2, (1, 8, 6, 3), dtype=torch.uint8)
    tok = Q.bits_patchify(bits)
    assert tok.shape == (1, 4, 3, 12)
    assert torch.equal(Q.bits_unpatchify(tok), bits)
    # channel c·4 + 2·dy + dx holds latent channel c of sub-position (dy, dx)
    assert tok[0, 1, 2, 1 * 4 + 2 * 1 + 0] == bits[0, 3, 4, 1]


def test_image_to_bits_to_image_shapes_and_meta():
    tok = infinity.build_tokenizer(infinity.TokenizerConfig(codebook_dim=8, base_ch=32, ch_mult=(1, 2, 2)))
    sched = schedules.scale_schedule(0.75, 5)  # 3:4 → last (9,12)
    img = torch.rand(1, 3, 36, 48) * 2 - 1
    with torch.no_grad():
        pyr = tok.image_to_bits(img, sched)
        assert [tuple(b.shape[1:3]) for b in pyr.bits] == sched
        out = tok.bits_to_image(pyr.bits)
    assert out.shape == img.shape and out.abs().max() <= 1
    with pytest.raises(ValueError, match="multiple of the stride"):
        tok.image_to_features(torch.zeros(1, 3, 30, 48))
    with pytest.raises(KeyError, match="unknown tokenizer preset"):
        infinity.build_tokenizer("vae-d33")
    meta = infinity.build_tokenizer("vae-d64", device="meta")
    assert meta.stride == 16 and next(meta.parameters()).is_meta
