"""Gradio demo of Infinity (arXiv 2412.04431): generate scale by scale, flip bits, look inside the tokenizer.

    python app.py                                   # the small model bundled in assets/, on CPU
    python app.py --model FoundationVision/Infinity # the official 2B model (needs a GPU)
    python app.py --model infinity-8b --offload-text-encoder  # Infinity-8B, T5 off the GPU between prompts
    python app.py --host 0.0.0.0 --port 7860 --share

On a Hugging Face Space the same settings come from the environment: INFINITY_MODEL, GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT, INFINITY_CONCURRENCY, INFINITY_MAX_QUEUE, INFINITY_OUTPUT_DIR, INFINITY_INT8, INFINITY_VARIANT,
INFINITY_TEXT_ENCODER_DEVICE, INFINITY_OFFLOAD_TEXT_ENCODER, INFINITY_OFFLOAD_BLOCKS (docs/app.md, GPU Space).

This file only parses options, loads the pipeline and launches; the page lives in `webui/` (README, "The app").
"""
from __future__ import annotations

# On ZeroGPU, `spaces` has to be imported before anything initialises CUDA; off ZeroGPU its decorator does nothing.
try:
    import spaces  # noqa: F401
except ImportError:  # the app runs fine without it
    spaces = None

import argparse
import logging
import os
from typing import Optional, Sequence

import torch

from infinity.loading import add_memory_args, is_official, memory_kwargs
from infinity.pipeline import OFFICIAL_REPO, InfinityPipeline
from webui import build_demo, default_output_root, launch_kwargs
from webui.texts import TITLE

log = logging.getLogger("infinity.app")
__all__ = ["build_demo", "launch_kwargs", "load_pipeline", "main", "parse_args"]


def load_pipeline(source: Optional[str] = None, int8: bool = False, **memory) -> InfinityPipeline:
    """The bundled model (on CPU) by default. An official model (2B, 8B, 8B-512) is loaded only when asked for and
    a GPU is present: on a CPU it would take minutes per image, so the bundled model is served instead (with a
    warning). `int8`: on CPU, int8 linear layers (faster for large models; close to, not equal to, float32).
    `memory`: `variant` and the memory modes of `from_pretrained` (docs/app.md, GPU Space)."""
    if source in (None, "", "bundled", "small"):
        return InfinityPipeline.from_pretrained(device="cpu", int8=int8)
    official = is_official(source)
    if official and not torch.cuda.is_available():
        log.warning("%s needs a GPU and none is present: serving the bundled small model instead", source)
        return InfinityPipeline.from_pretrained(device="cpu", int8=int8)
    on_cpu = not torch.cuda.is_available()
    if int8 and not on_cpu:
        log.warning("--int8 applies to CPUs only; on the GPU the model runs in bf16")
    return InfinityPipeline.from_pretrained(source, dtype=torch.bfloat16 if official else None, int8=int8 and on_cpu,
                                            **memory)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=TITLE)
    ap.add_argument("--model", default=env("INFINITY_MODEL"),
                    help=f"a model folder, hub id or official variant: infinity-2b, infinity-8b, infinity-8b-512 "
                         f"(default: the bundled small model; {OFFICIAL_REPO} and its variants need a GPU)")
    ap.add_argument("--variant", default=env("INFINITY_VARIANT"), help="which official model a folder or hub id means")
    add_memory_args(ap, os.environ)
    ap.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")))
    ap.add_argument("--share", action="store_true", help="a temporary public gradio.live link")
    ap.add_argument("--concurrency", type=int, default=int(env("INFINITY_CONCURRENCY", "1")),
                    help="requests that run the model at once (1 suits a CPU)")
    ap.add_argument("--max-queue", type=int, default=int(env("INFINITY_MAX_QUEUE", "20")),
                    help="requests that may wait; more are turned away")
    ap.add_argument("--outputs", default=str(default_output_root()), help="folder for generated files")
    ap.add_argument("--int8", action="store_true", default=env("INFINITY_INT8", "") not in ("", "0"),
                    help="CPU: int8 linear layers (faster for large models, close to float32)")
    return ap.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    pipe = load_pipeline(args.model, int8=args.int8, variant=args.variant, **memory_kwargs(args))
    demo = build_demo(pipe, output_root=args.outputs)
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=max(1, args.max_queue))
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs(args.outputs))


if __name__ == "__main__":
    main()
