"""The Compare tab's service and its /compare endpoint (issue 15): one prompt under 2–4 variants, each column the
same pixels as the single run with its settings, share links, limits; the pictures it is made of."""
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from infinity import viz, viz_compare  # noqa: E402
from infinity.validation import InvalidInput  # noqa: E402
from webui import links  # noqa: E402
from webui.compare import format_variants, from_table, label_of, parse_variants, preset_variants, to_table  # noqa
from webui.results import Compared, Scale, Started  # noqa: E402
from webui.settings import CompareSettings, make  # noqa: E402

PROMPT = "a red circle on a blue background"
pytestmark = pytest.mark.filterwarnings("ignore:.*:Warning:gradio.queueing")


@pytest.fixture(scope="module")
def served(app_client, app_server):
    """(client, studio) for the session's page (conftest `app_server`); the studio shares its pipeline and folder."""
    return app_client, app_server.studio


def pixels(path) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def test_compare_endpoint_columns_equal_single_runs(served):
    client, _ = served
    variants = [{}, {"seed": 4, "temperature": 0.5, "label": "warm"}, {"flip_share": 0.3, "flip_scales": [2]},
                {"guidance": 1}]
    pngs, row, grid, mp4, gif, info = client.predict(prompt=PROMPT, seed=3, variants=variants, api_name="/compare")
    assert info["labels"] == ["base", "warm", "flip 30% at 3", "guidance 1"]
    assert len(pngs) == 4
    # each column is the single run with its settings, pixel for pixel (the PNG bytes differ only by metadata)
    clean, flipped, *_ = client.predict(prompt=PROMPT, seed=3, flip_share=0.3, flip_scales=[2], flip_seed=0,
                                        api_name="/flip")
    single = [client.predict(prompt=PROMPT, seed=3, randomize_seed=False, api_name="/generate")[0][0],
              client.predict(prompt=PROMPT, seed=4, temperature=0.5, randomize_seed=False, api_name="/generate")[0][0],
              flipped,
              client.predict(prompt=PROMPT, seed=3, guidance=1, randomize_seed=False, api_name="/generate")[0][0]]
    assert pixels(clean) == pixels(single[0])
    for got, want in zip(pngs, single):
        assert pixels(got) == pixels(want)
    meta = viz.read_png_metadata(pngs[1])
    assert (meta["seed"], meta["temperature"], meta["label"]) == (4, 0.5, "warm")
    rows = info["scales"]
    assert [r["scale"] for r in rows] == list(range(len(rows))) and len(rows) >= 4
    assert all(len(r["mean_abs_diff"]) == 4 and r["mean_abs_diff"][0] == 0 for r in rows)
    assert rows[0]["mean_abs_diff"][2] == 0 and rows[1]["mean_abs_diff"][2] == 0  # same draws before the flip
    assert rows[-1]["mean_abs_diff"][1] > 0
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(mp4)
    props = next(frames)
    frames.close()
    assert props["codec"] == "h264" and props["pix_fmt"].startswith("yuv420p")
    assert Path(gif).read_bytes()[:4] == b"GIF8"
    with Image.open(grid) as g, Image.open(row) as r:
        assert g.width > 4 * 128 and g.height > len(rows) * 128  # rows = scales, columns = variants
        assert r.width >= 4 * 256 and r.height >= 256
    assert dict(parse_qsl(info["share_query"]))["variants"] == "base;label:warm,seed:4,temperature:0.5;" \
                                                               "flip_share:0.3,flip_scales:2;guidance:1"


def test_presets_and_limits(served):
    client, _ = served
    *_, info = client.predict(prompt="sunflower", seed=10, preset="four seeds", api_name="/compare")
    assert info["labels"] == ["seed 10", "seed 11", "seed 12", "seed 13"]
    assert [v["settings"]["seed"] for v in info["variants"]] == [10, 11, 12, 13]
    *_, info = client.predict(prompt="sunflower", api_name="/compare")  # a plain call: guidance 1 / 3 / 6
    assert info["labels"] == ["guidance 1", "guidance 3", "guidance 6"]
    cases = {
        "number of variants must be a whole number from 2 to 4, got 5": [{"seed": s} for s in range(5)],
        "number of variants must be a whole number from 2 to 4, got 1": [{"seed": 1}],
        r"variant 2 \(guidance 99\): guidance must be in \[0.0, 30.0\], got 99": [{"guidance": 1}, {"guidance": 99}],
        "unknown setting in variant 1 'colour'": [{"colour": 1}, {"seed": 1}],
        "choose at least one scale to flip": [{"flip_share": 0.2}, {"seed": 1}],
    }
    for message, variants in cases.items():
        with pytest.raises(gradio_client.exceptions.AppError, match=message):
            client.predict(prompt="sunflower", variants=variants, api_name="/compare")
    with pytest.raises(gradio_client.exceptions.AppError, match="unknown preset"):
        client.predict(prompt="sunflower", preset="eleven seeds", api_name="/compare")


def test_progress_per_variant_and_scale(served):
    _, studio = served
    s = make(CompareSettings, {**studio.defaults(), "prompt": "cactus", "preset": "guidance 1 / 3 / 6"})
    # a run grows as it streams: note its length when each event arrives
    events = [(e.index, len(e.run.previews)) if isinstance(e, Scale) else e for e in studio.compare_iter(s)]
    K = len(studio.pipe.schedule(s.aspect_ratio, s.resolution))
    assert events[0] == Started(["guidance 1", "guidance 3", "guidance 6"])
    assert events[1:-1] == [(i, k) for i in range(3) for k in range(1, K + 1)]
    assert isinstance(events[-1], Compared) and events[-1].labels == events[0].labels


def test_share_link_restores_a_comparison(served):
    _, studio = served
    variants = [{"guidance": 1}, {"seed": 9, "greedy": True}, {"flip_share": 0.25, "flip_scales": [1, 3]}]
    query = links.query_from_settings(studio, {**studio.defaults(), "prompt": "red apple", "variants": variants})
    s = links.settings_from_query(studio, dict(parse_qsl(query)))
    assert s["variants"] == variants and s["compare"] and s["prompt"] == "red apple" and s["ignored"] == []
    # a link without a prompt, or with variants the pipeline refuses, regenerates nothing
    assert not links.settings_from_query(studio, {"variants": "guidance:1;guidance:3"})["compare"]
    bad = links.settings_from_query(studio, {"prompt": "x", "variants": "guidance:1;guidance:99"})
    assert bad["ignored"] == ["variants"] and bad["variants"] == [] and not bad["compare"]
    assert links.settings_from_query(studio, {"prompt": "x", "variants": "nonsense"})["ignored"] == ["variants"]


def test_variant_forms_round_trip():
    variants = [{"label": "mine", "guidance": 2.5}, {"seed": 3, "greedy": False, "top_p": 0.9},
                {"flip_share": 0.2, "flip_scales": [0, 2]}, {}]
    assert parse_variants(format_variants(variants)) == variants
    assert format_variants(variants).endswith(";base")
    table = to_table(variants[:3])
    assert table[2][-1] == "1,3"  # the page counts scales from 1
    assert from_table(table + [[""] * len(table[0])]) == variants[:3]  # blank rows are skipped
    assert [label_of(v) for v in variants] == ["mine", "seed 3, top-p 0.9, sampled", "flip 20% at 1,3", "base"]
    assert preset_variants("four seeds", 7)[-1] == {"seed": 10}
    with pytest.raises(InvalidInput, match="greedy value"):
        from_table([["", "", "", "", "", "maybe", "", ""]])


def test_column_frames_and_grid_share_one_layout():
    cols = [[Image.new("RGB", (s, s), (60 * i, 90, 200)) for s in (2, 4, 8, 16)] for i in range(3)]
    hws = [(1, 1), (2, 2), (4, 4), (8, 8)]
    frames = viz_compare.column_frames(cols, ["a", "b", "c"], hws)
    assert len(frames) == 4 and len({f.size for f in frames}) == 1
    W, H = frames[0].size
    assert W % 2 == 0 and H % 2 == 0 and W >= 3 * 256
    # each column's colour sits in its own third of the frame
    mid = np.asarray(frames[-1])[H // 2]
    for i in range(3):
        assert tuple(mid[i * W // 3 + 40]) == (60 * i, 90, 200)
    grid = viz_compare.scale_grid(cols, ["a", "b", "c"], hws)
    assert grid.height > 4 * 128 and grid.width > 3 * 128
    with pytest.raises(ValueError, match="titles"):
        viz_compare.column_frames(cols, ["a"], hws)


def test_gpu_duration_follows_the_number_of_variants():
    import types

    from infinity.config import MODEL_PRESETS
    from webui.widgets import gpu_durations

    d = gpu_durations(types.SimpleNamespace(config=MODEL_PRESETS["infinity-2b"]))
    two = d["compare_iter"](CompareSettings(variants=[{}, {"seed": 1}]))
    assert d["generate_iter"](make(CompareSettings, {})) < two < d["compare_iter"](CompareSettings(preset="four seeds"))
