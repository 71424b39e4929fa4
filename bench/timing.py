"""What the benchmark scripts share: a stopwatch that waits for the GPU, and one way to write their results.

    from timing import Stopwatch, write_results   # bench/ is on sys.path when a bench script runs
"""
from __future__ import annotations

import json
import time
from pathlib import Path


class Stopwatch:
    """`with Stopwatch(device) as sw: ...`, then `sw.seconds`: the block's wall time. On CUDA it waits for the
    queued kernels at both ends, so the time is the work's and not only its launch's."""

    def __init__(self, device=None):
        self.cuda = device is not None and str(device).startswith("cuda")
        self.seconds = float("nan")

    def _sync(self) -> None:
        if self.cuda:
            import torch  # only a CUDA timing needs it

            torch.cuda.synchronize()

    def __enter__(self) -> "Stopwatch":
        self._sync()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._t0


def write_results(path: Path, results: dict) -> None:
    """The results as indented JSON at `path` (its folder made first), and a line saying where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {path}")
