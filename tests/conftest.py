"""Shared fixtures: the golden vectors of the tiny official model, environment for offline runs."""
import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
torch.set_num_threads(2)

FIXTURES = Path(__file__).parent / "fixtures"


class Golden:
    """Lazy access to golden_tiny.safetensors: `g['sq.vae.z']`, weights with a prefix upcast to float32."""

    def __init__(self):
        from safetensors import safe_open

        self._f = safe_open(str(FIXTURES / "golden_tiny.safetensors"), "pt")
        self.meta = json.loads((FIXTURES / "golden_tiny.json").read_text())

    def __getitem__(self, key):
        t = self._f.get_tensor(key)
        return t.float() if t.dtype == torch.bfloat16 else t

    def keys(self):
        return self._f.keys()

    def weights(self, prefix):
        n = len(prefix) + 1
        return {k[n:]: self[k] for k in self.keys() if k.startswith(prefix + ".")}

    def image(self, case):
        u8 = self[f"in.{case}.image_u8"]
        t = u8.float() / 255
        return t + t - 1  # the official transform's arithmetic, bit for bit


@pytest.fixture(scope="session")
def golden():
    return Golden()


def read_tsv(name):
    rows = (FIXTURES / "state_dicts" / name).read_text().splitlines()[1:]
    return {k: tuple(int(x) for x in s.split(",")) for k, s in (r.split("\t") for r in rows)}
