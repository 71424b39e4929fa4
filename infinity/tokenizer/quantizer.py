"""Binary spherical quantization and the multi-scale residual pyramid (paper §3.1).

Conventions: latent features and code sums are (B, d, H, W); per-scale bits are (B, h, w, d) uint8 (0/1), the
layout the transformer predicts them in. A bit is the sign of one latent channel; its code is ±1/√d, so every code
vector lies on the unit sphere (binary *spherical* quantization) and the codebook is implicit (2^d entries).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

HW = tuple[int, int]


# ---------------------------------------------------------------------------------------------------------------
# bits ↔ codes ↔ indices
# ---------------------------------------------------------------------------------------------------------------
def quantize(x_BdHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features → (codes ±1/√d, bits). The sign decides: a channel > 0 after L2 normalisation becomes bit 1.

    Codes are straight-through (value of the code, gradient of the normalised features) so the encoder trains
    through the quantizer, as in BSQ.
    """
    d = x_BdHW.shape[1]
    z = F.normalize(x_BdHW, dim=1)
    bits = z > 0
    q = torch.where(bits, 1.0, -1.0).to(z.dtype) / math.sqrt(d)
    codes = q if not z.requires_grad else z + (q - z).detach()
    return codes, bits.permute(0, 2, 3, 1).to(torch.uint8)


def bits_to_codes(bits_BhwD: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, h, w, d) bits → (B, d, h, w) codes ±1/√d."""
    d = bits_BhwD.shape[-1]
    scale = 1.0 / math.sqrt(d)
    codes = bits_BhwD.to(dtype) * (2 * scale) - scale
    return codes.permute(0, 3, 1, 2).contiguous()


def codes_to_bits(codes_BdHW: torch.Tensor) -> torch.Tensor:
    return (codes_BdHW > 0).permute(0, 2, 3, 1).to(torch.uint8)


def bit_weights(d: int, device=None) -> torch.Tensor:
    """2^(d−1) … 2^0: the official `mask` buffer (most significant bit first). int64 wraps for d = 64."""
    return 2 ** torch.arange(d - 1, -1, -1, device=device, dtype=torch.int64)


def bits_to_indices(bits: torch.Tensor) -> torch.Tensor:
    """(..., d) bits → (...) int64 codebook indices, bit 0 most significant. Exact for d ≤ 63."""
    d = bits.shape[-1]
    if d > 63:
        raise ValueError(f"integer indices need d ≤ 63 bits to fit int64, got d={d}; use the bits directly")
    return (bits.to(torch.int64) * bit_weights(d, bits.device)).sum(-1)


def indices_to_bits(indices: torch.Tensor, d: int) -> torch.Tensor:
    """(...) int64 indices → (..., d) uint8 bits."""
    if d > 63:
        raise ValueError(f"integer indices need d ≤ 63 bits to fit int64, got d={d}")
    w = bit_weights(d, indices.device)
    return ((indices.unsqueeze(-1) // w) % 2).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------------------
# resizing between scales (the official modes)
# ---------------------------------------------------------------------------------------------------------------
def down_to(x_BdHW: torch.Tensor, hw: HW) -> torch.Tensor:
    """Residual → scale: adaptive average ('area'), skipped at full size."""
    return x_BdHW if tuple(x_BdHW.shape[-2:]) == tuple(hw) else F.interpolate(x_BdHW, size=hw, mode="area")


def resize_linear(x_BdHW: torch.Tensor, hw: HW) -> torch.Tensor:
    """Code → full size, and running sum → next scale's transformer input: (bi/tri)linear, align_corners False.

    The official code uses 'trilinear' on (B, d, 1, h, w); with a time axis of 1 that is bilinear on (B, d, h, w).
    Note it is used for *down*-sizing the running sum too (a linear kernel, not an average).
    """
    if tuple(x_BdHW.shape[-2:]) == tuple(hw):
        return x_BdHW
    return F.interpolate(x_BdHW, size=hw, mode="bilinear", align_corners=False)


def patchify(x_BdHW: torch.Tensor) -> torch.Tensor:
    """2×2 latent patches → one token of 4d channels (channel c·4 + 2·dy + dx), paper §3.4 / Infinity-8B."""
    return F.pixel_unshuffle(x_BdHW, 2)


def unpatchify(x_B4dhw: torch.Tensor) -> torch.Tensor:
    return F.pixel_shuffle(x_B4dhw, 2)


def bits_unpatchify(bits_Bhw4d: torch.Tensor) -> torch.Tensor:
    """Token bits (B, h, w, 4d) → VAE-grid bits (B, 2h, 2w, d)."""
    return unpatchify(bits_Bhw4d.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()


def bits_patchify(bits_BHWd: torch.Tensor) -> torch.Tensor:
    """VAE-grid bits (B, 2h, 2w, d) → token bits (B, h, w, 4d)."""
    return patchify(bits_BHWd.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous()


# ---------------------------------------------------------------------------------------------------------------
# the multi-scale residual pyramid
# ---------------------------------------------------------------------------------------------------------------
FlipFn = Callable[[int, torch.Tensor], torch.Tensor]  # (scale index, bits) → bits to accumulate


@dataclass
class Pyramid:
    """Everything the multi-scale quantizer produced for a batch.

    `bits[s]` (B, h, w, d): the labels of scale s (the unflipped quantization of what was left);
    `used_bits[s]`: the bits whose codes were accumulated (differ from `bits[s]` only where flips were applied);
    `codes_sum[s]` (B, d, H, W): running sum of upsampled codes after scale s; `inputs[s]` (B, d, h, w): the
    quantizer's input at scale s (the residual, area-resized).
    """

    bits: list[torch.Tensor] = field(default_factory=list)
    used_bits: list[torch.Tensor] = field(default_factory=list)
    codes_sum: list[torch.Tensor] = field(default_factory=list)
    inputs: list[torch.Tensor] = field(default_factory=list)

    @property
    def codes(self) -> torch.Tensor:
        return self.codes_sum[-1]


def residual_quantize(features_BdHW: torch.Tensor, schedule: Sequence[HW], flip: Optional[FlipFn] = None) -> Pyramid:
    """Quantize features scale by scale, each scale coding what the coarser ones left (paper §3.1, Eq. 1–2).

    At scale s: r_s = area(F − Σ_{k<s} up(code_k)) → bits_s = sign(r_s) → code_s. With `flip` (bitwise
    self-correction, paper §3.3) the accumulated code is re-made from flipped bits, so later residuals — and
    their labels — account for the error, which teaches the transformer to repair it.
    """
    H, W = features_BdHW.shape[-2:]
    out = Pyramid()
    acc = torch.zeros_like(features_BdHW)
    for s, hw in enumerate(schedule):
        r = down_to(features_BdHW - acc, hw)
        codes, bits = quantize(r)
        used = bits
        if flip is not None:
            used = flip(s, bits)
            if used is not bits:
                codes = bits_to_codes(used, codes.dtype)
        acc = acc + resize_linear(codes, (H, W))
        out.bits.append(bits)
        out.used_bits.append(used)
        out.codes_sum.append(acc)
        out.inputs.append(r)
    return out


def accumulate(codes_sum: torch.Tensor, bits_BhwD: torch.Tensor) -> torch.Tensor:
    """Add one scale's bits to a running code sum kept at full latent size."""
    codes = bits_to_codes(bits_BhwD, codes_sum.dtype)
    return codes_sum + resize_linear(codes, tuple(codes_sum.shape[-2:]))


def bits_to_codes_sum(bits: Sequence[torch.Tensor], full_hw: HW) -> list[torch.Tensor]:
    """Per-scale bits → running code sum after each scale (what the decoder sees after that scale)."""
    B, _, _, d = bits[0].shape
    acc = bits[0].new_zeros((B, d, *full_hw), dtype=torch.float32)
    out = []
    for b in bits:
        acc = accumulate(acc, b)
        out.append(acc)
    return out


def transformer_inputs(codes_sums: Sequence[torch.Tensor], schedule: Sequence[HW], patchified: bool = False) -> torch.Tensor:
    """Teacher-forcing inputs: for scales 2…K the running sum after the previous scale, resized (linearly) to
    that scale and flattened → (B, Σ_{s≥1} h_s·w_s, d) [patchify: 4d channels on the token grid]."""
    xs = []
    for s in range(1, len(schedule)):
        x = resize_linear(codes_sums[s - 1], schedule[s])
        if patchified:
            x = patchify(x)
        xs.append(x.flatten(2).transpose(1, 2))
    return torch.cat(xs, dim=1)
