"""Side-by-side CPU speed of the official Infinity code and ours, in one run, on the same weights.

    export OFFICIAL_INFINITY_DIR=/tmp/infinity_official   # a work tree of FoundationVision/Infinity
    python bench/side_by_side.py --rounds 3                # → bench/results_side_by_side.json

This is a wrapper around the shared harness (`../shared/refharness/side_by_side.py`, or --harness), which imports
the official package from OFFICIAL_INFINITY_DIR with only the CPU-impossible parts replaced (flash-attn → plain
attention, torch.compile off) and never copies official code. The harness needs its own Python environment with
the official requirements (--ref-python; its README gives the three setup commands). Steps:

1. once: the official side builds layer12 (125 M) + VAE d32 with seeded random weights and saves them in the
   official file formats (WEIGHTS/transformer.pth, WEIGHTS/vae.pth); ours loads exactly those files;
2. ROUNDS rounds, each running the official process then ours (2 timed runs each, after a warm-up), so drift of
   the machine hits both sides alike;
3. medians and the ratio ours/official for "sampling" (transformer + quantizer, 7 scales at 0.06M, guidance 3,
   temperature 0.5, top-p 0.97, 12 text tokens, 2 threads) and "whole" (plus the d32 decode).

Only ratios from one such run are comparable: numbers from different runs, days or machines are not (README,
Performance). Run it on an otherwise idle machine; `--dry-run` checks the setup and prints the commands.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Stopwatch, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HARNESS = ROOT.parent / "shared" / "refharness" / "side_by_side.py"
SETUP = """setup (about 3 minutes; see the harness README):
  python3 -m venv /tmp/refvenv
  /tmp/refvenv/bin/pip install -q torch numpy einops safetensors pillow imageio pytz tqdm transformers tokenizers
  # a work tree of the official repository (its .py/.json/.txt/.sh files), then:
  export OFFICIAL_INFINITY_DIR=/path/to/infinity_official"""


class SetupError(RuntimeError):
    pass


def check_setup(a) -> tuple[Path, Path, Path]:
    """(official dir, harness script, reference python), or SetupError saying what is missing and how to fix it."""
    official = os.environ.get("OFFICIAL_INFINITY_DIR")
    if not official:
        raise SetupError("OFFICIAL_INFINITY_DIR is not set: point it at a work tree of FoundationVision/Infinity.\n"
                         + SETUP)
    official = Path(official).expanduser()
    if not (official / "infinity" / "models" / "infinity.py").is_file():
        raise SetupError(f"OFFICIAL_INFINITY_DIR={official} does not hold the official code "
                         "(infinity/models/infinity.py is missing)")
    harness = Path(a.harness).expanduser()
    if not harness.is_file():
        raise SetupError(f"harness not found: {harness} (pass --harness PATH/side_by_side.py)")
    ref_python = Path(a.ref_python).expanduser()
    if not ref_python.is_file():
        raise SetupError(f"reference Python not found: {ref_python} (pass --ref-python)\n" + SETUP)
    return official, harness, ref_python


def commands(a, harness: Path, ref_python: Path) -> list[tuple[list[str], Path]]:
    weights = str(Path(a.weights).expanduser())
    steps = []
    if a.rebuild or not (Path(weights) / "transformer.pth").is_file():
        steps.append(([str(ref_python), str(harness), "official", weights, "1"], harness.parent))
    steps.append(([str(ref_python), str(harness), "drive", weights, str(a.rounds), str(ref_python), sys.executable,
                   str(ROOT)], harness.parent))
    return steps


def parse(out: str) -> dict:
    """The harness's summary lines → numbers."""
    res = {}
    for who in ("official", "ours"):
        m = re.search(rf"^{who}\s+sampling ([\d.]+) s\s+whole ([\d.]+) s\s+\(n=(\d+)\)", out, re.M)
        if m:
            res[who] = {"sampling_s": float(m[1]), "whole_s": float(m[2]), "runs": int(m[3])}
    m = re.search(r"ratio ours/official: sampling ([\d.]+), whole ([\d.]+)", out)
    if m:
        res["ratio"] = {"sampling": float(m[1]), "whole": float(m[2])}
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (each: official, then ours)")
    p.add_argument("--weights", default="/tmp/sbs_weights", help="where the shared random weights are kept")
    p.add_argument("--rebuild", action="store_true", help="rebuild the weights even if present")
    p.add_argument("--harness", default=os.environ.get("INFINITY_REFHARNESS", str(DEFAULT_HARNESS)))
    p.add_argument("--ref-python", default=os.environ.get("REF_PYTHON", "/tmp/refvenv/bin/python"),
                   help="the Python environment that runs the official code")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results_side_by_side.json")
    p.add_argument("--dry-run", action="store_true", help="check the setup and print the commands; run nothing")
    p.add_argument("--packed", action="store_true", help="ours with oneDNN-packed linear layers "
                   "(from_pretrained(packed=True)); the harness reads INFINITY_SBS_PACKED=1")
    p.add_argument("--int8", action="store_true", help="ours with int8 linear layers "
                   "(from_pretrained(int8=True)) against the official float32; the harness reads INFINITY_SBS_INT8=1")
    a = p.parse_args(argv)
    if a.packed and a.int8:
        p.error("--packed and --int8 are two different paths; pick one")
    try:
        official, harness, ref_python = check_setup(a)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    steps = commands(a, harness, ref_python)
    for cmd, cwd in steps:
        print(f"(cd {cwd} && {' '.join(cmd)})")
    if a.dry_run:
        return 0
    out = ""
    with Stopwatch() as sw:  # the whole run, both sides: the harness itself times each side
        for cmd, cwd in steps:
            env = dict(os.environ, INFINITY_SBS_PACKED=str(int(a.packed)), INFINITY_SBS_INT8=str(int(a.int8)))
            r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
            sys.stdout.write(r.stdout)
            if r.returncode:
                sys.stderr.write(r.stderr[-4000:])
                return r.returncode
            out = r.stdout
    res = parse(out)
    if "ratio" not in res:
        print("error: the harness printed no ratio line", file=sys.stderr)
        return 1
    res.update(command=" ".join([sys.executable, "bench/side_by_side.py", *(argv if argv is not None else sys.argv[1:])]),
               rounds=a.rounds, packed=a.packed, int8=a.int8, official_dir=str(official),
               machine=platform.processor() or platform.machine(),
               cpus=os.cpu_count(), seconds=round(sw.seconds, 1),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    write_results(a.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
