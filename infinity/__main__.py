"""Command line: generate, convert, train, eval.

    python -m infinity generate --prompt "a red circle on a blue background" --seed 0 --out x.png
    python -m infinity convert --transformer infinity_2b_reg.pth --tokenizer infinity_vae_d32reg.pth --out 2b/
    python -m infinity train tokenizer|cache|transformer [...]
    python -m infinity eval [...]

Errors end with one line on stderr and a non-zero exit.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def parse_aspect(text: str) -> float:
    """'W:H' (as people write it, e.g. 4:3) or a plain h/w number → h/w."""
    from .validation import InvalidInput

    try:
        if ":" in text:
            w, h = (float(v) for v in text.split(":", 1))
            return h / w
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise InvalidInput(f"aspect ratio must look like 4:3 (width:height) or a number h/w, got {text!r}") from None


def _scales(text: str) -> list[int]:
    from .validation import InvalidInput

    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InvalidInput(f"flip scales must be comma-separated scale indices, got {text!r}") from None


def _model_config(source, variant=None):
    """The config of the model `--model` names, read without loading weights (None when only loading can tell),
    so bad input is refused before the minutes a large model takes to load."""
    import json

    from .config import MODEL_PRESETS, ModelConfig
    from .pipeline import ASSETS, OFFICIAL_REPO

    from .loading import is_variant_name, variant_name

    folder = Path(source) if source else ASSETS
    if (folder / "config.json").is_file():
        return ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
    if variant or (source and not folder.exists() and is_variant_name(source)):
        return MODEL_PRESETS[variant_name(variant or source)]
    if str(source).rstrip("/").lower() == OFFICIAL_REPO.lower():
        return MODEL_PRESETS["infinity-2b"]
    return None


def cmd_generate(a) -> None:
    import torch
    from tqdm import tqdm

    from . import viz
    from .loading import memory_kwargs
    from .pipeline import InfinityPipeline
    from .validation import check_request

    if a.threads:
        torch.set_num_threads(a.threads)
    out = Path(a.out)
    if out.suffix.lower() != ".png":
        raise SystemExit(f"error: --out must be a .png file, got {a.out}")
    if a.animation and Path(a.animation).suffix.lower() not in (".mp4", ".gif"):
        raise SystemExit(f"error: --animation must end in .mp4 or .gif, got {a.animation}")
    kw = dict(negative_prompt=a.negative, guidance=a.guidance, temperature=a.temperature, top_p=a.top_p,
              greedy=a.greedy, h_div_w=parse_aspect(a.aspect), budget=a.budget, flip_share=a.flip_share,
              flip_scales=_scales(a.flip_scales))
    cfg = _model_config(a.model, a.variant)
    if cfg is not None:
        check_request(cfg, a.prompt, a.seed, **kw)  # the pipeline's own check, before the model loads
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        a.dtype or ("bfloat16" if device.type == "cuda" else "float32")]  # bf16 on a GPU, as the official code
    pipe = InfinityPipeline.from_pretrained(a.model, device=device, dtype=dtype, int8=a.int8, packed=a.packed,
                                            variant=a.variant, **memory_kwargs(a))
    prepared = pipe.prepare(a.prompt, a.seed, **kw)
    steps = list(tqdm(pipe.stream(prepared=prepared, previews=bool(a.animation)), total=len(prepared.schedule),
                      desc="scales", unit="scale", disable=a.quiet))
    image = steps[-1].previews[0] if a.animation else pipe.decode(steps[-1].codes_sum)[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    viz.save_png(image, out, prepared.settings)
    if a.animation:
        frames = viz.scale_frames([s.previews[0] for s in steps], hws=[s.hw for s in steps])
        (viz.write_mp4 if a.animation.lower().endswith(".mp4") else viz.write_gif)(frames, a.animation)
    if prepared.truncated and any(prepared.truncated):
        print("note: the prompt was longer than the text encoder's limit and was cut", file=sys.stderr)
    if not a.quiet:
        h, w = image.height, image.width
        print(f"wrote {out} ({w}x{h}, seed {a.seed})" + (f" and {a.animation}" if a.animation else ""))


def cmd_convert(a) -> None:
    """Official .pth files → safetensors + config.json, loadable with InfinityPipeline.from_pretrained(folder)."""
    import dataclasses

    from .config import MODEL_PRESETS, TOKENIZER_PRESETS, TRANSFORMER_PRESETS
    from .pipeline import InfinityPipeline
    from .tokenizer import build_tokenizer
    from .transformer import build_transformer

    from .loading import variant_name

    # the variant's budgets and sampling defaults (2B unless --variant), with any parts named on the command line
    base = MODEL_PRESETS[variant_name(a.variant) if a.variant else "infinity-2b"]
    tok_cfg = TOKENIZER_PRESETS[a.tokenizer_preset] if a.tokenizer_preset else base.tokenizer
    tf_cfg = TRANSFORMER_PRESETS[a.transformer_preset] if a.transformer_preset else base.transformer
    tok = build_tokenizer(tok_cfg, device="meta", weights=a.tokenizer)
    tf = build_transformer(tf_cfg, device="meta", weights=a.transformer)
    cfg = dataclasses.replace(base, name=a.name or a.transformer_preset or base.name, tokenizer=tok_cfg,
                              transformer=tf_cfg, text_encoder=a.text_encoder)
    pipe = InfinityPipeline(tok, tf, None, cfg)
    pipe.save_pretrained(a.out, half=a.half)
    print(f"wrote {a.out}/tokenizer.safetensors, transformer.safetensors, config.json")


def main(argv=None) -> int:
    from .loading import add_memory_args

    p = argparse.ArgumentParser(prog="python -m infinity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    g = sub.add_parser("generate", help="prompt → PNG (and optionally the coarse-to-fine animation)")
    g.add_argument("--prompt", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="output .png (prompt, seed and settings in its metadata)")
    g.add_argument("--negative", default=None, help="negative prompt")
    g.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (model default)")
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--greedy", action="store_true", help="argmax per bit")
    g.add_argument("--aspect", default="1:1", help="width:height, e.g. 4:3, or h/w as a number")
    g.add_argument("--budget", default=None, help="pixel budget the model declares (e.g. 0.004M, 1M)")
    g.add_argument("--flip-share", type=float, default=0.0, help="share of bits to flip (self-correction demo)")
    g.add_argument("--flip-scales", default="", help="comma-separated scale indices to flip, e.g. 2,3")
    g.add_argument("--animation", default=None, help="write the scale animation to FILE.mp4 or FILE.gif")
    g.add_argument("--model", default=None, help="folder, hub id or official variant (infinity-2b, infinity-8b, "
                                                  "infinity-8b-512); default: the bundled small model")
    g.add_argument("--variant", default=None, help="which official model a folder or the hub id means "
                                                    "(default: the one whose files are there, 2B first)")
    g.add_argument("--device", default=None)
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                   help="the blocks' dtype (default: bfloat16 on a GPU, float32 on a CPU)")
    g.add_argument("--threads", type=int, default=None)
    g.add_argument("--int8", action="store_true", help="CPU: int8 linear layers (faster; close to, not equal to fp32)")
    g.add_argument("--packed", action=argparse.BooleanOptionalAction, default=None,
                   help="CPU float32: linear weights reordered once for oneDNN (faster; logits within ~1e-6); "
                        "default: on for the official models on a CPU in float32 without --int8, off otherwise")
    g.add_argument("--quiet", action="store_true")
    add_memory_args(g)
    g.set_defaults(fn=cmd_generate)

    c = sub.add_parser("convert", help="official checkpoints → safetensors + config")
    c.add_argument("--transformer", required=True, help="infinity_2b_reg.pth, or a sharded 8B folder")
    c.add_argument("--tokenizer", required=True, help="infinity_vae_d32reg.pth (8B: infinity_vae_d56_f8_14_patchify.pth)")
    c.add_argument("--variant", default=None, help="infinity-2b (default), infinity-8b or infinity-8b-512: the parts, "
                                                    "budgets and sampling defaults of that model")
    c.add_argument("--transformer-preset", default=None, help="override the variant's transformer preset")
    c.add_argument("--tokenizer-preset", default=None, help="override the variant's tokenizer preset")
    c.add_argument("--text-encoder", default="google/flan-t5-xl")
    c.add_argument("--name", default=None)
    c.add_argument("--half", action="store_true", help="store fp16 weights")
    c.add_argument("--out", required=True)
    c.set_defaults(fn=cmd_convert)

    t = sub.add_parser("train", help="training stages (see each stage's --help)")
    t.add_argument("stage", choices=["tokenizer", "cache", "transformer"])
    t.add_argument("args", nargs=argparse.REMAINDER)
    e = sub.add_parser("eval", help="evaluation (python -m infinity.eval --help)")
    e.add_argument("args", nargs=argparse.REMAINDER)

    argv = list(sys.argv[1:] if argv is None else argv)
    # train and eval hand every further argument to their own parsers (so `--help` and `--n` reach them)
    if argv[:1] == ["eval"]:
        from .eval.__main__ import main as eval_main

        return eval_main(argv[1:]) or 0
    if argv[:1] == ["train"] and len(argv) > 1 and argv[1] in ("tokenizer", "cache", "transformer"):
        import importlib

        importlib.import_module(f"infinity.train.{argv[1]}").main(argv[2:])
        return 0
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from .io import CheckpointError
    from .validation import InvalidInput

    try:
        a.fn(a)
    except (InvalidInput, CheckpointError, KeyError) as err:  # KeyError: an unknown preset name
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
