"""What a GPU Space and the GPU benchmark need, checked on a CPU: the app's model and memory options, spaces.GPU
durations that follow the request, and the benchmark scripts' argument parsing and setup path."""
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from infinity.config import MODEL_PRESETS
from infinity.loading import gpu_seconds, is_official

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_seconds_follow_budget_images_and_model():
    b2, b8 = MODEL_PRESETS["infinity-2b"], MODEL_PRESETS["infinity-8b"]
    by_budget = [gpu_seconds(b2, b) for b in ("0.06M", "0.25M", "0.60M", "1M")]
    assert by_budget == sorted(by_budget) and by_budget[0] < by_budget[-1]
    assert gpu_seconds(b2, "1M", images=4) > gpu_seconds(b2, "1M") > gpu_seconds(b2, "1M", runs=0)
    assert gpu_seconds(b8, "1M") > 2 * gpu_seconds(b2, "1M") - 20
    assert gpu_seconds(b2, None) == gpu_seconds(b2, "1M")  # the model's default budget
    assert gpu_seconds(MODEL_PRESETS["infinity-8b-512"], "1M") == gpu_seconds(MODEL_PRESETS["infinity-8b-512"], "0.25M")


def test_app_durations_read_the_request():
    from webui.settings import FlipSettings, GenerateSettings, TokenizeSettings
    from webui.widgets import gpu_durations

    d = gpu_durations(types.SimpleNamespace(config=MODEL_PRESETS["infinity-2b"]))
    small, big = d["generate_iter"](GenerateSettings(resolution="0.06M")), d["generate_iter"](GenerateSettings())
    assert small < big == gpu_seconds(MODEL_PRESETS["infinity-2b"], "1M")
    assert d["generate_iter"](GenerateSettings(num_images=3)) > big
    assert d["flip"](FlipSettings()) > big > d["tokenize"](TokenizeSettings())


def test_app_options_choose_variant_and_memory(monkeypatch):
    import app

    monkeypatch.setenv("INFINITY_MODEL", "infinity-8b")
    monkeypatch.setenv("INFINITY_OFFLOAD_BLOCKS", "1")
    args = app.parse_args([])
    assert args.model == "infinity-8b" and args.offload_blocks and not args.offload_text_encoder
    args = app.parse_args(["--model", "FoundationVision/Infinity", "--variant", "8b-512", "--offload-text-encoder",
                           "--text-encoder-device", "cpu"])
    assert args.variant == "8b-512" and args.offload_text_encoder and args.text_encoder_device == "cpu"
    calls = []
    monkeypatch.setattr(app.InfinityPipeline, "from_pretrained",
                        classmethod(lambda cls, *a, **k: calls.append((a, k))))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    app.load_pipeline("infinity-8b", offload_blocks=True, variant=None)
    assert calls[-1][0] == ("infinity-8b",) and calls[-1][1]["dtype"] == torch.bfloat16
    assert calls[-1][1]["offload_blocks"] is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    app.load_pipeline("infinity-8b")  # no GPU: the bundled model instead, as for the 2B
    assert calls[-1][0] == () and calls[-1][1]["device"] == "cpu"


def test_is_official(tmp_path):
    assert is_official("FoundationVision/Infinity") and is_official("8b") and is_official("infinity-8b-512")
    assert not is_official(None) and not is_official("someone/else")
    assert is_official(tmp_path)  # a folder without config.json: official files
    (tmp_path / "config.json").write_text("{}")
    assert not is_official(tmp_path)


@pytest.mark.parametrize("script", ["bench/bench_gpu.py", "bench/side_by_side.py"])
def test_bench_scripts_help(script):
    r = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout


def test_bench_gpu_smoke_on_cpu(tmp_path):
    """The benchmark's whole path (random weights placed per mode, offloaded blocks, T5 built from a config) at
    tiny widths on the CPU: one variant, one mode, one run."""
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, "bench/bench_gpu.py", "--tiny", "--device", "cpu", "--variants", "infinity-8b",
                        "--modes", "blocks-offload", "--runs", "1", "--budget", "0.06M", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["mode"] == "blocks-offload" and "error" not in row and row["size"] == [128, 128]  # 16×16 tokens of 8 px (tiny VAE: stride 4, patchify)


def _side_by_side():
    import importlib.util

    spec = importlib.util.spec_from_file_location("side_by_side", ROOT / "bench" / "side_by_side.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_side_by_side_setup_path(tmp_path, monkeypatch, capsys):
    """Without running the benchmark: what is missing is said, a complete setup gives the two harness commands,
    and the harness's summary parses."""
    sbs = _side_by_side()
    monkeypatch.delenv("OFFICIAL_INFINITY_DIR", raising=False)
    assert sbs.main(["--dry-run"]) == 2 and "OFFICIAL_INFINITY_DIR is not set" in capsys.readouterr().err
    off = tmp_path / "official"
    monkeypatch.setenv("OFFICIAL_INFINITY_DIR", str(off))
    assert sbs.main(["--dry-run"]) == 2 and "does not hold the official code" in capsys.readouterr().err
    (off / "infinity" / "models").mkdir(parents=True)
    (off / "infinity" / "models" / "infinity.py").write_text("")
    harness, refpy = tmp_path / "side_by_side.py", tmp_path / "python"
    harness.write_text("")
    args = ["--dry-run", "--harness", str(harness), "--ref-python", str(refpy), "--weights", str(tmp_path / "w")]
    assert sbs.main(args) == 2 and "reference Python not found" in capsys.readouterr().err
    refpy.write_text("")
    assert sbs.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " official " in lines[0] and " drive " in lines[1] and str(ROOT) in lines[1]
    summary = ("official  sampling 1.89 s  whole 5.51 s  (n=6)\nours      sampling 2.01 s  whole 5.86 s  (n=6)\n"
               "ratio ours/official: sampling 1.06, whole 1.06\n")
    res = sbs.parse(summary)
    assert res["ratio"] == {"sampling": 1.06, "whole": 1.06} and res["official"]["runs"] == 6
