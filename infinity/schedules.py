"""Scale schedules: which (h, w) latent grids a generation walks through, per aspect ratio and pixel budget.

Pure functions, nothing built at import. The numbers are the official `dynamic_resolution` tables of Infinity
(paper §3.4 "dynamic aspect ratios"): for each of 8 h/w ratios ≥ 1 a list of 13 latent sizes; the 7 inverse
ratios reuse them with h and w swapped (15 templates in all). A budget takes a prefix of the 13-scale list:
'0.06M' 7 scales, '0.25M' 10, '0.60M' 12, '1M' 13. Pixel size = stride × last (h, w).
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

from .config import OFFICIAL_BUDGETS

Schedule = list[tuple[int, int]]
Budget = Union[str, int]

# (ratio h/w ≥ 1) → 13 (h, w) latent sizes, as in the official table.
_RATIO_TO_HWS: Mapping[float, tuple[tuple[int, int], ...]] = {
    1.0: ((1, 1), (2, 2), (4, 4), (6, 6), (8, 8), (12, 12), (16, 16), (20, 20), (24, 24), (32, 32), (40, 40),
          (48, 48), (64, 64)),
    1.25: ((1, 1), (2, 2), (3, 3), (5, 4), (10, 8), (15, 12), (20, 16), (25, 20), (30, 24), (35, 28), (45, 36),
           (55, 44), (70, 56)),
    1.333: ((1, 1), (2, 2), (4, 3), (8, 6), (12, 9), (16, 12), (20, 15), (24, 18), (28, 21), (36, 27), (48, 36),
            (60, 45), (72, 54)),
    1.5: ((1, 1), (2, 2), (3, 2), (6, 4), (9, 6), (15, 10), (21, 14), (27, 18), (33, 22), (39, 26), (48, 32),
          (63, 42), (78, 52)),
    1.75: ((1, 1), (2, 2), (3, 3), (7, 4), (11, 6), (14, 8), (21, 12), (28, 16), (35, 20), (42, 24), (56, 32),
           (70, 40), (84, 48)),
    2.0: ((1, 1), (2, 2), (4, 2), (6, 3), (10, 5), (16, 8), (22, 11), (30, 15), (38, 19), (46, 23), (60, 30),
          (74, 37), (90, 45)),
    2.5: ((1, 1), (2, 2), (5, 2), (10, 4), (15, 6), (20, 8), (25, 10), (30, 12), (40, 16), (50, 20), (65, 26),
          (80, 32), (100, 40)),
    3.0: ((1, 1), (2, 2), (6, 2), (9, 3), (15, 5), (21, 7), (27, 9), (36, 12), (45, 15), (54, 18), (72, 24),
          (90, 30), (111, 37)),
}


def templates() -> list[float]:
    """The 15 h/w templates, ascending (0.333 … 3.0). Inverses are int(1000/r)/1000 as in the official code."""
    out = set(_RATIO_TO_HWS)
    out.update(int(1000 / r) / 1000 for r in _RATIO_TO_HWS if r != 1.0)
    return sorted(out)


def nearest_template(h_div_w: float, allowed: Sequence[float] = ()) -> float:
    """The template closest to h/w (argmin |template − h/w|, as the official trainer and notebooks do)."""
    if not (h_div_w > 0):  # also rejects NaN
        raise ValueError(f"aspect ratio h/w must be a positive number, got {h_div_w!r}")
    cands = list(allowed) or templates()
    return min(cands, key=lambda t: abs(t - h_div_w))


def _full_hws(template: float) -> tuple[tuple[int, int], ...]:
    if template in _RATIO_TO_HWS:
        return _RATIO_TO_HWS[template]
    for r, hws in _RATIO_TO_HWS.items():
        if r != 1.0 and int(1000 / r) / 1000 == template:
            return tuple((w, h) for h, w in hws)
    raise ValueError(f"unknown h/w template {template!r}; known: {templates()}")


def num_scales(budget: Budget, budgets: Mapping[str, int] = OFFICIAL_BUDGETS) -> int:
    """Scales of a budget: a name from `budgets` (default the official ones) or a plain count (1…13)."""
    if isinstance(budget, bool):
        raise ValueError(f"unknown pixel budget {budget!r}")
    if isinstance(budget, int):
        n = budget
    elif budget in budgets:
        n = budgets[budget]
    else:
        raise ValueError(f"unknown pixel budget {budget!r}; known: {list(budgets)}")
    if not 1 <= n <= 13:
        raise ValueError(f"a schedule has 1 to 13 scales, got {n}")
    return n


def scale_schedule(h_div_w: float, budget: Budget = "1M", budgets: Mapping[str, int] = OFFICIAL_BUDGETS) -> Schedule:
    """(h, w) per scale for the template nearest to `h_div_w` at `budget`. Python ints (the official RoPE table
    is keyed by the schedule's string, which numpy ints would change)."""
    t = nearest_template(h_div_w)
    return [(int(h), int(w)) for h, w in _full_hws(t)[: num_scales(budget, budgets)]]


def rope_reference_hw(h_div_w: float) -> tuple[int, int]:
    """Grid that 2-D RoPE positions are normalised to: the last scale of the template's 13-scale schedule."""
    return _full_hws(nearest_template(h_div_w))[-1]


def pixel_size(schedule: Schedule, stride: int = 16) -> tuple[int, int]:
    """(H, W) in pixels of the last scale for a latent stride (16 for the official VAEs)."""
    h, w = schedule[-1]
    return h * stride, w * stride


def token_count(schedule: Schedule) -> int:
    """Transformer tokens of a schedule: Σ h·w (the 1×1 first scale is the start token)."""
    return sum(h * w for h, w in schedule)


def patchify_schedule(schedule: Schedule) -> Schedule:
    """VAE grid for a spatial-patchify model (Infinity-8B): each transformer cell is a 2×2 block of latents."""
    return [(2 * h, 2 * w) for h, w in schedule]


def format_ratio(h_div_w: float) -> str:
    """Label a template as width:height (e.g. 0.75 → '4:3'), the way people name aspect ratios."""
    names = {1.0: (1, 1), 1.25: (4, 5), 1.333: (3, 4), 1.5: (2, 3), 1.75: (4, 7), 2.0: (1, 2), 2.5: (2, 5), 3.0: (1, 3)}
    for r, (w, h) in names.items():
        if abs(h_div_w - r) < 1e-3:
            return f"{w}:{h}"
        if r != 1.0 and abs(h_div_w - int(1000 / r) / 1000) < 1e-3:
            return f"{h}:{w}"
    return f"h/w {h_div_w:g}"
