"""Load test: N concurrent gradio_client users against the app on this machine (loopback only).

    python bench/load.py --users 16                    # launches the app with the bundled model in-process
    python bench/load.py --url http://127.0.0.1:7860/ --users 16

Each user asks /generate for one image with its own seed; every result is compared with the same request run
alone first (same seed → same PNG pixels: requests are never batched together). Prints served, failed and
latency percentiles. Bounded: one request per user, a timeout per request.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_png(result) -> str:
    """/generate returns (list of PNG paths, mp4, gif, info)."""
    return str(result[0][0])


def pixels(path: str) -> bytes:
    return np.asarray(Image.open(path).convert("RGB")).tobytes()


def request(url: str, prompt: str, seed: int):
    from gradio_client import Client

    client = Client(url, verbose=False)
    return client.predict(prompt=prompt, seed=seed, randomize_seed=False, api_name="/generate")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running app on this machine (default: launch one)")
    p.add_argument("--users", type=int, default=16)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    url, demo = a.url, None
    if url is None:
        import app
        from infinity.pipeline import InfinityPipeline

        demo = app.build_demo(InfinityPipeline.from_pretrained(device="cpu"))
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **app.launch_kwargs())
        url = f"http://127.0.0.1:{port}/"
    prompts = ["a red circle on a blue background", "sunflower", "three yellow stars on a black background", "cactus"]
    jobs = [(prompts[i % len(prompts)], 100 + i) for i in range(a.users)]
    solo = {job: pixels(first_png(request(url, *job))) for job in jobs}  # each request alone
    results, lock = {}, threading.Lock()

    def user(job):
        t0 = time.perf_counter()
        try:
            out = request(url, *job)
            ok = pixels(first_png(out)) == solo[job]
            err = None if ok else "differs from the same request run alone"
        except Exception as e:  # a failed request is counted, not raised
            ok, err = False, f"{type(e).__name__}: {e}"
        with lock:
            results[job] = (ok, time.perf_counter() - t0, err)

    threads = [threading.Thread(target=user, args=(job,)) for job in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.timeout)
    wall = time.perf_counter() - t0
    lat = sorted(r[1] for r in results.values())
    served = sum(r[0] for r in results.values())
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] if lat else float("nan")  # noqa: E731
    summary = {"users": a.users, "served": served, "failed": a.users - served, "wall_s": wall,
               "p50_s": q(0.5), "p90_s": q(0.9), "p99_s": q(0.99), "mean_s": statistics.mean(lat) if lat else None,
               "errors": sorted({r[2] for r in results.values() if r[2]})}
    print(json.dumps(summary, indent=1))
    if a.out:
        a.out.write_text(json.dumps(summary, indent=1))
    if demo is not None:
        demo.close()
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
