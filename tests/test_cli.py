"""The command line and the evaluation entry point, on the bundled model."""
import json
import subprocess
import sys

import pytest

from infinity.__main__ import main, parse_aspect
from infinity.pipeline import ASSETS, InfinityPipeline
from infinity.validation import InvalidInput
from infinity.viz import read_png_metadata

pytestmark = pytest.mark.skipif(not (ASSETS / "config.json").is_file(), reason="bundled model not in assets/")


@pytest.fixture
def loads(monkeypatch, bundled_pipe):
    """The CLI's model loading, answered with the session's bundled pipeline; counts the loads."""
    calls = []

    def load(*args, **kwargs):
        calls.append(args)
        return bundled_pipe

    monkeypatch.setattr(InfinityPipeline, "from_pretrained", load)
    return calls


def test_generate_writes_png_with_metadata_and_animation(tmp_path, capsys, loads):
    out, anim = tmp_path / "x.png", tmp_path / "x.gif"
    rc = main(["generate", "--prompt", "a red circle on a blue background", "--seed", "0", "--out", str(out),
               "--animation", str(anim), "--quiet"])
    assert rc == 0 and out.is_file() and anim.is_file()
    meta = read_png_metadata(out)
    assert meta["prompt"] == "a red circle on a blue background" and meta["seed"] == 0


@pytest.mark.parametrize("args,msg", [
    (["--prompt", "   "], "prompt is empty"),
    (["--prompt", "x", "--seed", "-3"], "seed"),
    (["--prompt", "x", "--guidance", "nan"], "guidance"),
    (["--prompt", "x", "--budget", "9M"], "resolution"),
    (["--prompt", "x", "--flip-share", "0.5", "--flip-scales", "42"], "flip scale"),
])
def test_bad_input_exits_with_one_line_before_the_model_loads(tmp_path, capsys, loads, args, msg):
    rc = main(["generate", "--out", str(tmp_path / "y.png"), "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and msg in err[-1] and err[-1].startswith("error:")
    assert not (tmp_path / "y.png").exists()
    assert loads == []  # judged from the model's config.json alone: a large model would not load for nothing


def test_missing_model_folder_exits_with_one_line(tmp_path, capsys):
    rc = main(["generate", "--out", str(tmp_path / "y.png"), "--quiet", "--prompt", "x", "--model", "/no/such"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "not found" in err[-1] and err[-1].startswith("error:")


def test_aspect_parsing():
    assert parse_aspect("4:3") == 0.75 and parse_aspect("1.5") == 1.5
    with pytest.raises(InvalidInput):
        parse_aspect("wide")


def test_module_entry_point_runs_in_a_fresh_process(tmp_path):
    out = tmp_path / "z.png"
    r = subprocess.run([sys.executable, "-m", "infinity", "generate", "--prompt", "sunflower", "--out", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.is_file()


def test_eval_scores_ground_truth_and_generation(bundled_pipe):
    from infinity.eval.__main__ import evaluate, table

    res = evaluate(bundled_pipe, n=4, n_emoji=3, n_emoji_gen=3)
    assert res["checker_on_ground_truth"]["overall"] == 1.0
    # generated and seen-pair images are scored on the same questions as the ground truth
    assert set(res["checker_on_ground_truth"]) <= set(res["generated"]) and "overall" in res["seen_pairs"]
    assert res["tokenizer_psnr_scenes"] > 5 and res["seconds_per_image"] > 0
    assert res["tokenizer_ceiling"]["background"] == 1.0  # the tokenizer keeps flat backgrounds exactly enough
    assert "seen colour–shape pairs" in table({"bundled": res})
    assert "| background |" in table({"bundled": res})
    er = res["emoji_retrieval"]  # the real emoji find themselves: the retrieval check works
    assert er["n"] == 3 and er["real"]["top1"] == 1.0 and 0 <= er["generated"]["top5"] <= 1
    assert res["seed_diversity"] > 0 and "emoji by name" in table({"bundled": res})
    json.dumps(res)


def test_train_and_eval_pass_their_options_through(capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", "--n", "0"])
    assert e.value.code == 2 and "--n must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "transformer", "--help"])
    assert e.value.code == 0 and "--flips" in capsys.readouterr().out
