"""The convolutional encoder/decoder of the official BSQ-VAE family.

Module names mirror the official state dict (`encoder.down.0.block.0.conv1.conv.weight`, …): convolutions and
group norms sit one level down (`.conv`, `.norm`) so checkpoints load key for key.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import TokenizerConfig


class Conv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, padding: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if padding is None else padding)

    def forward(self, x):
        return self.conv(x)


class Norm(nn.Module):
    """GroupNorm, eps 1e-6; the official VAE uses 32 groups (24 when the channels do not divide by 32)."""

    def __init__(self, ch: int, groups: int = 32):
        super().__init__()
        if ch % groups and not (groups == 32 and ch % 24 == 0):
            raise ValueError(f"{ch} channels do not split into {groups} GroupNorm groups")
        self.norm = nn.GroupNorm(groups if ch % groups == 0 else 24, ch, eps=1e-6, affine=True)

    def forward(self, x):
        return self.norm(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int = 32):
        super().__init__()
        self.norm1, self.conv1 = Norm(cin, groups), Conv(cin, cout)
        self.norm2, self.conv2 = Norm(cout, groups), Conv(cout, cout)
        self.nin_shortcut = Conv(cin, cout, k=1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class Downsample(nn.Module):
    """Zero-pad right and bottom by one, then a stride-2 3×3 conv (no interpolation)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = Conv(ch, ch, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest ×2, then a 3×3 conv."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = Conv(ch, ch)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.block_1, self.block_2 = ResBlock(ch, ch, groups), ResBlock(ch, ch, groups)

    def forward(self, x):
        return self.block_2(self.block_1(x))


class Encoder(nn.Module):
    """Image (B, 3, H, W) in [−1, 1] → features (B, d, H/stride, W/stride)."""

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch, mult = cfg.base_ch, cfg.ch_mult
        self.conv_in = Conv(3, ch)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(mult):
            level = nn.Module()
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(cin, ch * m, cfg.norm_groups))
                cin = ch * m
            level.block = nn.ModuleList(blocks)
            if i < len(mult) - 1:
                level.downsample = Downsample(cin)
            self.down.append(level)
        self.mid = Mid(cin, cfg.norm_groups)
        self.norm_out = Norm(cin, cfg.norm_groups)
        self.conv_out = Conv(cin, cfg.codebook_dim)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.down:
            for blk in level.block:
                h = blk(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Code sum (B, d, h, w) → image (B, 3, h·stride, w·stride), clamped to [−1, 1].

    `up[i]` is level i; execution runs from the deepest level down to 0, upsampling at the end of levels ≥ 1.
    """

    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        ch, mult = cfg.base_ch, cfg.ch_mult
        cin = ch * mult[-1]
        self.conv_in = Conv(cfg.codebook_dim, cin)
        self.mid = Mid(cin, cfg.norm_groups)
        levels = [None] * len(mult)
        for i in reversed(range(len(mult))):
            level = nn.Module()
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(cin, ch * mult[i], cfg.norm_groups))
                cin = ch * mult[i]
            level.block = nn.ModuleList(blocks)
            if i > 0:
                level.upsample = Upsample(cin)
            levels[i] = level
        self.up = nn.ModuleList(levels)
        self.norm_out = Norm(cin, cfg.norm_groups)
        self.conv_out = Conv(cin, 3)

    def forward(self, z, clamp: bool = True):
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for blk in level.block:
                h = blk(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out.clamp(-1, 1) if clamp else out  # training reads the unclamped output so gradients flow
