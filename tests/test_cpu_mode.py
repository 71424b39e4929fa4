"""bench/cpu_mode.py (CPU mode end to end, time and peak RSS per phase) runs at smoke-test widths."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import cpu_mode  # noqa: E402


def test_cpu_mode_tiny_runs_every_phase(tmp_path):
    out = tmp_path / "r.json"
    assert cpu_mode.main(["--tiny", "--budget", "0.06M", "--text-tokens", "7", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["phase"] for r in res["phases"]] == ["text", "build", "sampling", "decode"]
    assert res["scales"] == 7 and res["int8"] and res["peak_rss_gib"] > 0
    assert all(r["seconds"] >= 0 and r["peak_rss_gib"] > 0 for r in res["phases"])


def test_blockwise_int8_build_leaves_nothing_on_meta():
    import torch

    cfg = cpu_mode.tiny_config(cpu_mode.MODEL_PRESETS["infinity-2b"]).transformer
    tf = cpu_mode.build_transformer(cfg, int8=True, gen=torch.Generator().manual_seed(0))
    assert tf.int8 and tf.blocks[0].sa.qkv_bias_folded
    assert not any(p.is_meta for p in tf.parameters())
