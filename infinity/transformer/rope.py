"""2-D rotary position embedding over the scale pyramid.

Every scale's grid is mapped onto one reference grid — the last scale of the template's 13-scale schedule — so a
token's position means the same place in the image at every scale and every budget (official
`rope2d_normalized_by_hw=2`). Angles are computed in float32 as the official table is (at 1M the angles reach
~110 rad, where float64 angles would move cos/sin by ~1e-6).
"""
from __future__ import annotations

from typing import Sequence

import torch

HW = tuple[int, int]


def grid_indices(n: int, ref: int) -> torch.Tensor:
    """Positions of n cells on a grid of `ref`: round(i · ref/n), float32, round-half-to-even."""
    return torch.round(torch.arange(n, dtype=torch.float32) * (ref / n))


def rope_angles(schedule: Sequence[HW], ref_hw: HW, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(Σ h·w, head_dim/2) rotation angles: the first half of the pairs turn with the row, the rest with the column."""
    half = head_dim // 2
    inv_freq = 1.0 / (theta ** (torch.arange(0, half, 2, dtype=torch.int64).float() / half))  # (half/2,)
    rows, cols = [], []
    for h, w in schedule:
        r = grid_indices(h, ref_hw[0])
        c = grid_indices(w, ref_hw[1])
        rows.append(r.repeat_interleave(w))
        cols.append(c.repeat(h))
    row = torch.outer(torch.cat(rows), inv_freq)
    col = torch.outer(torch.cat(cols), inv_freq)
    return torch.cat([row, col], dim=1)


def rope_cos_sin(schedule: Sequence[HW], ref_hw: HW, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """(2, L, head_dim/2): cos and sin, float32."""
    a = rope_angles(schedule, ref_hw, head_dim, theta)
    return torch.stack([a.cos(), a.sin()])


def apply_rope(x_BHLc: torch.Tensor, cos_sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2m], x[2m+1]) by angle m, in float32."""
    cos, sin = cos_sin[0], cos_sin[1]
    xf = x_BHLc.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)
    return out.to(x_BHLc.dtype)
