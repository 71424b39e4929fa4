"""Schedules equal the official tables for all 15 templates and 4 budgets."""
import json

import pytest

from infinity import schedules
from conftest import FIXTURES

REF = json.loads((FIXTURES / "dynamic_resolution.json").read_text())["templates"]
BUDGETS = ["0.06M", "0.25M", "0.60M", "1M"]


def test_fifteen_templates():
    assert [f"{t:.3f}" for t in schedules.templates()] == sorted(REF, key=float)


@pytest.mark.parametrize("template", sorted(REF, key=float))
@pytest.mark.parametrize("budget", BUDGETS)
def test_schedule_matches_official(template, budget):
    ref = REF[template][budget]
    sched = schedules.scale_schedule(float(template), budget)
    assert sched == [tuple(s[1:]) for s in ref["scales_t_h_w"]]
    assert all(type(v) is int for hw in sched for v in hw)
    assert list(schedules.pixel_size(sched, 16)) == ref["pixel_hw"]
    assert schedules.token_count(sched) == ref["seq_len"]


@pytest.mark.parametrize("template", sorted(REF, key=float))
def test_budgets_are_prefixes_and_rope_reference(template):
    full = schedules.scale_schedule(float(template), "1M")
    for b in BUDGETS:
        s = schedules.scale_schedule(float(template), b)
        assert full[: len(s)] == s
    assert list(schedules.rope_reference_hw(float(template))) == REF[template]["rope2d_grid_indices_mode2"]["reference_hw"]


def test_nearest_template_and_errors():
    assert schedules.nearest_template(1.02) == 1.0
    assert schedules.nearest_template(0.7) == 0.666
    assert schedules.nearest_template(9.0) == 3.0
    assert schedules.nearest_template(0.9, allowed=[0.75, 1.333]) == 0.75
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            schedules.nearest_template(bad)
    with pytest.raises(ValueError, match="unknown pixel budget"):
        schedules.scale_schedule(1.0, "2M")
    assert schedules.scale_schedule(1.0, 5) == [(1, 1), (2, 2), (4, 4), (6, 6), (8, 8)]
    assert schedules.pixel_size(schedules.scale_schedule(1.0, 5), stride=8) == (64, 64)


def test_ratio_labels():
    assert schedules.format_ratio(1.0) == "1:1"
    assert schedules.format_ratio(0.75) == "4:3"
    assert schedules.format_ratio(1.333) == "3:4"
    assert schedules.format_ratio(0.333) == "3:1"
    assert len({schedules.format_ratio(t) for t in schedules.templates()}) == 15
