"""`BitwiseTokenizer`: image ↔ per-scale bits, with every intermediate exposed.

Verbs: `image_to_features`, `features_to_bits`, `image_to_bits`, `bits_to_codes_sum`, `codes_to_image`,
`bits_to_image`. Schedules given to the tokenizer are on its own latent grid (for a spatial-patchify VAE that is
twice the transformer's grid; see `schedules.patchify_schedule`).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TOKENIZER_PRESETS, TokenizerConfig, resolve_preset
from ..io import CheckpointError, StateDict, build_module, load_file, load_strict
from . import quantizer as Q
from .vae import Decoder, Encoder


class _LFQ(nn.Module):
    """Holds the official `mask` buffer (bit weights 2^(d−1)…1) so state dicts match key for key."""

    def __init__(self, d: int):
        super().__init__()
        self.register_buffer("mask", Q.bit_weights(d))


class _Quantizer(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.lfq = _LFQ(d)


class BitwiseTokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantizer = _Quantizer(cfg.codebook_dim)

    # -- shapes ---------------------------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return self.cfg.codebook_dim

    @property
    def stride(self) -> int:
        return self.cfg.stride

    # -- encoding -------------------------------------------------------------------------------------------
    def image_to_features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [−1, 1] → continuous latent features (B, d, H/stride, W/stride)."""
        if image.shape[-1] % self.stride or image.shape[-2] % self.stride:
            raise ValueError(f"image size {tuple(image.shape[-2:])} must be a multiple of the stride {self.stride}")
        return self.encoder(image)

    def features_to_bits(self, features: torch.Tensor, schedule: Sequence[tuple[int, int]], flip=None) -> Q.Pyramid:
        """Multi-scale residual quantization (paper §3.1). The last scale must equal the latent size."""
        if tuple(schedule[-1]) != tuple(features.shape[-2:]):
            raise ValueError(f"schedule ends at {tuple(schedule[-1])} but the latent grid is {tuple(features.shape[-2:])}")
        return Q.residual_quantize(features, schedule, flip=flip)

    def image_to_bits(self, image: torch.Tensor, schedule: Sequence[tuple[int, int]]) -> Q.Pyramid:
        return self.features_to_bits(self.image_to_features(image), schedule)

    # -- decoding -------------------------------------------------------------------------------------------
    @staticmethod
    def bits_to_codes_sum(bits: Sequence[torch.Tensor], full_hw: tuple[int, int]) -> list[torch.Tensor]:
        return Q.bits_to_codes_sum(bits, full_hw)

    def codes_to_image(self, codes_sum: torch.Tensor, grid: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Running code sum (B, d, H, W) → image (B, 3, H·stride, W·stride) in [−1, 1]. Decoding the sum after
        any scale gives that scale's preview: the latent grid stays at full size throughout. With `grid` smaller
        than (H, W), the sum is first area-averaged to it: a cheaper, smaller preview (`pipeline.preview_grid`)."""
        if grid is not None and tuple(grid) != tuple(codes_sum.shape[-2:]):
            codes_sum = F.interpolate(codes_sum.float(), size=tuple(grid), mode="area")
        return self.decoder(codes_sum.to(self._dtype()))

    def bits_to_image(self, bits: Sequence[torch.Tensor]) -> torch.Tensor:
        full = tuple(bits[-1].shape[1:3])
        return self.codes_to_image(Q.bits_to_codes_sum(bits, full)[-1])

    def _dtype(self) -> torch.dtype:
        return self.decoder.conv_in.conv.weight.dtype

    # -- loading --------------------------------------------------------------------------------------------
    def load_official(self, source: Union[str, "os.PathLike", Mapping[str, torch.Tensor]]) -> "BitwiseTokenizer":
        """Load an official VAE file (`{'vae': state_dict}` or a bare state dict; wrapper names `X.conv.weight`
        or plain `X.weight`), strictly."""
        name = str(source) if not isinstance(source, Mapping) else "state dict"
        sd = load_file(source) if not isinstance(source, Mapping) else dict(source)
        if "vae" in sd and isinstance(sd["vae"], Mapping):
            sd = sd["vae"]
        if not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{name}: expected a state dict of tensors (or a dict with a 'vae' entry)")
        load_strict(self, official_to_ours(sd, self.state_dict()), f"tokenizer {self.cfg}", name)
        return self


def official_to_ours(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> StateDict:
    """Map official VAE keys onto ours: drop the duplicated `quantize.*` entries (the same module registered
    twice), and place plain `X.weight` names on the wrappers `X.conv.weight` / `X.norm.weight`."""
    out: StateDict = {}
    for k, v in sd.items():
        if k.startswith("quantize."):
            continue
        if k not in own:
            stem, leaf = k.rsplit(".", 1) if "." in k else ("", k)
            for wrap in ("conv", "norm"):
                cand = f"{stem}.{wrap}.{leaf}"
                if cand in own:
                    k = cand
                    break
        out[k] = v
    return out


def build_tokenizer(name_or_config: Union[str, TokenizerConfig], device: Union[str, torch.device, None] = None,
                    dtype: Optional[torch.dtype] = None, weights=None) -> BitwiseTokenizer:
    """Build a tokenizer from a preset name (`vae-d32`, …) or a config. `device='meta'` builds without memory;
    `weights` (a path or state dict in the official layout) loads strictly."""
    cfg = resolve_preset(name_or_config, TOKENIZER_PRESETS, "tokenizer")
    return build_module(lambda: BitwiseTokenizer(cfg), device, dtype, weights)
