"""Sustained use of the app: N mixed API requests (all four endpoints, some cancelled mid-run), then a burst larger
than the queue. Reports the server's RSS, open files and output folder size before and after, and whether it still
serves. Starts `python app.py` in a subprocess (bundled model, CPU) so the figures are the server's own.

    python bench/soak.py                 # 200 requests
    python bench/soak.py --requests 40 --json bench/results_soak.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_stats(pid: int, outputs: Path) -> dict:
    """RSS (MB) and open file descriptors of the server process, size (MB) and file count of its output folder."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    files = [p for p in outputs.rglob("*") if p.is_file()]
    return dict(rss_mb=round(rss_kb / 1024, 1), open_fds=len(os.listdir(f"/proc/{pid}/fd")),
                output_mb=round(sum(p.stat().st_size for p in files) / 2**20, 2), output_files=len(files))


def start_server(port: int, outputs: Path, max_queue: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    log = open(outputs.parent / "server.log", "w")  # noqa: SIM115 - the server writes it while it runs
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--outputs", str(outputs),
                             "--max-queue", str(max_queue)], cwd=ROOT, env=env, stdout=log, stderr=log)
    for _ in range(240):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start")


def connect(Client, url: str, tries: int = 10):
    """A client, retried: on a busy machine the server may answer its first page slowly."""
    for i in range(tries):
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - httpx timeouts while the server warms up
            if i == tries - 1:
                raise
            time.sleep(3)


def upload(folder: Path) -> str:
    im = Image.new("RGB", (96, 64), (40, 90, 220))
    ImageDraw.Draw(im).ellipse((30, 16, 62, 48), fill=(220, 40, 40))
    path = folder / "soak.png"
    im.save(path)
    return str(path)


def one_request(client, rng: random.Random, image: str, handle_file) -> str:
    """One request of a random kind; returns its kind ('…-cancelled' when it was cancelled mid-run)."""
    kind = rng.choice(["generate", "generate", "flip", "tokenize", "variation"])
    seed = rng.randrange(1000)
    if kind == "generate":
        job = client.submit(prompt=rng.choice(["red apple", "sunflower", "a red circle on a blue background"]),
                            seed=seed, randomize_seed=False, num_images=rng.choice([1, 1, 2]),
                            resolution=rng.choice(["0.004M", "0.016M"]), api_name="/generate")
    elif kind == "flip":
        job = client.submit(prompt="cactus", seed=seed, flip_share=0.2, flip_scales=[2], api_name="/flip")
    elif kind == "tokenize":
        job = client.submit(image=handle_file(image), flip_share=0.2, flip_scale=2, api_name="/tokenize")
    else:
        job = client.submit(image=handle_file(image), prompt="sunflower", keep_scales=2, seed=seed,
                            api_name="/variation")
    if rng.random() < 0.15:
        time.sleep(rng.uniform(0.05, 0.3))
        job.cancel()
        return kind + "-cancelled"
    job.result(timeout=300)
    return kind


def burst(client, size: int, handle_file) -> dict:
    """More requests at once than the queue holds: how many are turned away, and how."""
    jobs = [client.submit(prompt="red apple", seed=i, randomize_seed=False, num_images=4, resolution="0.016M",
                          api_name="/generate") for i in range(size)]
    served, refused, messages = 0, 0, set()
    for job in jobs:
        try:
            job.result(timeout=600)
            served += 1
        except Exception as e:  # noqa: BLE001 - a full queue: a ValidationError that says "busy, try again in a moment"
            refused += 1
            messages.add(" ".join(str(e).split())[:120])  # the client puts the words on a second line
    return dict(sent=size, served=served, refused=refused, messages=sorted(messages))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--max-queue", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args()
    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="infinity-soak-"))
    outputs, port = work / "outputs", free_port()
    proc = start_server(port, outputs, a.max_queue)
    try:
        client = connect(Client, f"http://127.0.0.1:{port}/")
        image, rng = upload(work), random.Random(a.seed)
        one_request(client, random.Random(1), image, handle_file)  # warm-up: first-call costs are not a leak
        before, t0, kinds, failed = server_stats(proc.pid, outputs), time.perf_counter(), {}, []
        for i in range(a.requests):
            try:
                k = one_request(client, rng, image, handle_file)
                kinds[k] = kinds.get(k, 0) + 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                failed.append(f"{i}: {str(e)[:120]}")
        seconds = time.perf_counter() - t0
        time.sleep(2)  # let cancelled runs wind down before measuring
        after = server_stats(proc.pid, outputs)
        busy = burst(client, a.max_queue + 8, handle_file)
        still = client.predict(prompt="red apple", seed=1, randomize_seed=False, api_name="/generate")
        report = dict(requests=a.requests, kinds=kinds, failed=failed, seconds=round(seconds, 1), before=before,
                      after=after, burst=busy, serves_after_burst=Path(still[0][0]).is_file(),
                      final=server_stats(proc.pid, outputs))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
