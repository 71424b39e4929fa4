"""Gradio demo of Infinity (arXiv 2412.04431): generate scale by scale, flip bits, look inside the tokenizer.

    python app.py                                   # the small model bundled in assets/, on CPU
    python app.py --model FoundationVision/Infinity # the official 2B model (needs a GPU)
    python app.py --host 0.0.0.0 --port 7860 --share

On a Hugging Face Space the same settings come from the environment: INFINITY_MODEL, GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT, INFINITY_CONCURRENCY, INFINITY_MAX_QUEUE, INFINITY_OUTPUT_DIR.

`build_demo(pipe)` returns the Blocks without launching it; `launch_kwargs()` gives what `launch()` needs (theme,
CSS, the one folder files may be served from). Everything the page does is also a plain method of `Studio`, and the
named API endpoints (/generate, /flip, /tokenize, /variation) return plain values: PNG/MP4/GIF paths and a JSON dict.
"""
from __future__ import annotations

# On ZeroGPU, `spaces` has to be imported before anything initialises CUDA; off ZeroGPU its decorator does nothing.
try:
    import spaces
except ImportError:  # the app runs fine without it
    spaces = None

import argparse
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence
from urllib.parse import urlencode

import numpy as np
import torch
from PIL import Image

import gradio as gr
from gradio import utils as gr_utils

from infinity import schedules, viz
from infinity.pipeline import OFFICIAL_REPO, InfinityPipeline, preview_grid
from infinity.tokenizer import quantizer as Q
from infinity.validation import MAX_IMAGE_PIXELS, MAX_SEED, InvalidInput, check_seed, clean_prompt, open_image

log = logging.getLogger("infinity.app")

HERE = Path(__file__).resolve().parent


def upload_image(**kw) -> gr.Image:
    """The upload box, as a file path. Gradio opens each upload's header before our code runs and, for a file
    that claims more pixels than Pillow allows, fails with a long technical message; this says it in one sentence
    instead. Size caps and damage are judged afterwards by `Studio.check_image`. (Wrapped on the instance: a
    subclass would make Gradio write a type-stub file next to app.py.)"""
    box = gr.Image(type="filepath", image_mode=None, **kw)
    inner = box.preprocess

    def preprocess(payload):
        try:
            return inner(payload)
        except gr.Error:
            raise
        except Image.DecompressionBombError:
            raise gr.Error(f"the image is too large: at most {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from None
        except Exception:  # noqa: BLE001 - whatever Pillow cannot open is, to the user, not an image
            raise gr.Error("the upload is not an image Pillow can read (PNG, JPEG, WebP, …)") from None

    box.preprocess = preprocess
    return box


def _own_upload(path) -> Path:
    """`path` if it lies (links and '..' resolved) in Gradio's upload folder; anything else is refused unopened."""
    p = Path(path).resolve()
    if not p.is_relative_to(Path(gr_utils.get_upload_folder()).resolve()):
        raise InvalidInput("the upload is not an image")
    return p


TITLE = "Infinity — bitwise autoregressive image generation"
INTRO = ("An image is drawn scale by scale, from a 1×1 grid up to the full latent grid: at each scale a transformer "
         "predicts the sign bits of what the coarser scales left out "
         "([arXiv 2412.04431](https://arxiv.org/abs/2412.04431)).")
FLIP_NOTE = ("**What you are looking at.** Both runs use the same prompt, seed and random draws; in the right one a "
             "share of the sampled bits is flipped at the chosen scales. Infinity is trained with *bitwise "
             "self-correction* (paper §3.3): during training, bits are flipped on purpose and the following scales "
             "learn to predict the residual that repairs them. The difference maps show how much of the damage is "
             "still visible after each later scale.")
TOKENIZER_NOTE = ("The tokenizer turns an image into bit maps, one per scale, each coding the residual the coarser "
                  "scales left. Flip bits at one scale to see what an error there does: kept as they are, later "
                  "scales cannot fix it; re-quantized after the flip (what self-correction trains the model to "
                  "predict, paper §3.3), they absorb most of it.")
RESPONSIBLE_USE = ("**Responsible use.** Images are machine-made and can be wrong, biased or offensive. Do not use "
                   "this demo to make deceptive pictures of real people, to harass anyone, or for sexual content. "
                   "Saved PNGs carry their prompt, seed and settings in the file metadata, so generated images stay "
                   "recognisable as such. The small bundled model only knows simple scenes and emoji; the 2B model "
                   "inherits the biases of its web-scale training data.")
# Prompts of the kinds the bundled model was trained on (simple scenes, single emoji); fine for the 2B model too.
EXAMPLES = [
    "a red circle on a blue background",
    "three yellow stars on a black background",
    "a green square to the left of a pink heart on a white background",
    "red apple",
    "sunflower",
    "cactus",
]
MAX_IMAGES = 4  # images per request: each is generated on its own (CPU-friendly, and seed+i equals a single run)
FPS = 2  # scale animations: half a second per scale is enough to see each one
OUTPUT_MAX_AGE_S = 3600
# (min, max, step) of the sliders; share links are held to the same ranges, so a restored value always fits
GUIDANCE = (0.0, 10.0, 0.5)  # the library accepts up to MAX_GUIDANCE, but beyond ~10 images only saturate
TEMPERATURE = (0.05, 2.0, 0.05)
TOP_P = (0.0, 1.0, 0.01)
FLIP_SHARE = (0.01, 1.0, 0.01)

# Share links: URL key -> setting name. The JS that writes the URL and `settings_from_query` both use this order.
QUERY_KEYS = {
    "prompt": "prompt", "negative": "negative_prompt", "seed": "seed", "guidance": "guidance",
    "temperature": "temperature", "top_p": "top_p", "greedy": "greedy", "ratio": "h_div_w", "resolution": "budget",
    "n": "num_images", "flip_share": "flip_share", "flip_scales": "flip_scales", "inspect": "inspect_scale",
    "flip_seed": "flip_seed",
}


# ----------------------------------------------------------------------------------------------------------------
# files: one app-owned root, one fresh folder per request, nothing named after user input
# ----------------------------------------------------------------------------------------------------------------
class OutputStore:
    """Per-request folders under `root`; folders older than `max_age_s` are deleted as new ones are made."""

    PREFIX = "req-"

    def __init__(self, root: Path, max_age_s: float = OUTPUT_MAX_AGE_S):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._last_prune = 0.0
        self.prune()

    def new_dir(self, kind: str) -> Path:
        if time.time() - self._last_prune > 60:  # a directory scan per minute is plenty
            self.prune()
        return Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{kind}-", dir=self.root))

    def prune(self) -> None:
        self._last_prune = now = time.time()
        for p in self.root.iterdir():
            # only what this class made: never follow links, never touch other files someone put there
            if p.name.startswith(self.PREFIX) and p.is_dir() and not p.is_symlink():
                try:
                    if now - p.stat().st_mtime > self.max_age_s:
                        shutil.rmtree(p, ignore_errors=True)
                except FileNotFoundError:  # another worker removed it first
                    pass


# ----------------------------------------------------------------------------------------------------------------
# results of one run, kept on the CPU (previews as PIL, bits for the bit-plane pictures)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    settings: dict
    schedule: list[tuple[int, int]]
    previews: list[Image.Image] = field(default_factory=list)  # decode after each scale
    bits: list[torch.Tensor] = field(default_factory=list)  # (h, w, d) per scale
    masks: list[Optional[torch.Tensor]] = field(default_factory=list)  # flipped positions, or None
    seconds: float = 0.0
    truncated: bool = False  # the prompt was longer than the text encoder reads

    @property
    def image(self) -> Image.Image:
        return self.previews[-1]


@contextmanager
def user_errors():
    """Bad input becomes a message on the page (and an error for API clients); the server keeps serving."""
    try:
        yield
    except InvalidInput as e:
        raise gr.Error(str(e)) from None
    except torch.OutOfMemoryError:
        # free what the failed run held so the next request starts clean
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise gr.Error("Out of memory for this request: try a smaller resolution or fewer images.") from None


def _last(it):
    item = None
    for item in it:
        pass
    return item


def _enlarge(image: Image.Image) -> Image.Image:
    """Nearest-neighbour enlargement for display: small images stay crisp instead of being blurred by the browser."""
    return viz.scale_frames([image], label=False)[0]


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean())


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = float(((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _whole(value: Any, name: str) -> int:
    """A whole number from a widget or an API client (sliders send floats such as 2.0)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if isinstance(value, bool) or not x.is_integer():
        raise InvalidInput(f"{name} must be a whole number, got {value!r}")
    return int(x)


def _hw(hw: Sequence[int]) -> str:
    return f"{hw[0]}×{hw[1]}"


def _model_gpu(duration: int):
    """`spaces.GPU(duration=...)` when the package imports (it does nothing off ZeroGPU); otherwise the function as
    is. `Studio` only wraps its methods for a pipeline on CUDA: asking ZeroGPU for a GPU that a CPU pipeline will not
    use only costs quota and start-up time."""
    def wrap(fn):
        return spaces.GPU(duration=duration)(fn) if spaces is not None else fn
    return wrap


# ----------------------------------------------------------------------------------------------------------------
# what the page does, as plain methods
# ----------------------------------------------------------------------------------------------------------------
class Studio:
    """The pipeline plus an output store. Methods take plain values and raise `InvalidInput` on bad input."""

    def __init__(self, pipe: InfinityPipeline, store: OutputStore):
        self.pipe, self.store = pipe, store
        self.cfg = pipe.config
        if pipe.device.type != "cpu":
            # whole methods: on ZeroGPU every CUDA call has to happen inside the decorated function, and what
            # they return (PIL images, CPU tensors, paths) can cross its process boundary
            self.generate_iter = _model_gpu(120)(self.generate_iter)
            self.flip = _model_gpu(90)(self.flip)
            self.tokenize = _model_gpu(30)(self.tokenize)
            self.variation = _model_gpu(60)(self.variation)

    # -- choices the model declares ------------------------------------------------------------------------------
    def default_ratio(self) -> float:
        return schedules.nearest_template(1.0, self.pipe.aspect_ratios())

    def ratio_choices(self) -> list[tuple[str, float]]:
        return [(schedules.format_ratio(r), r) for r in self.pipe.aspect_ratios()]

    def budget_choices(self, h_div_w: Optional[float] = None) -> list[tuple[str, str]]:
        """'64×64 px (0.004M)': the budget in real pixels for this aspect ratio (width × height)."""
        r = self.default_ratio() if h_div_w is None else h_div_w
        out = []
        for b in self.pipe.budgets():
            H, W = self.pipe.pixel_size(r, b)
            out.append((f"{W}×{H} px ({b})", b))
        return out

    def scale_choices(self, h_div_w: Optional[float] = None, budget: Optional[str] = None) -> list[tuple[str, int]]:
        r = self.default_ratio() if h_div_w is None else h_div_w
        return [(f"{k + 1}: {_hw(hw)}", k) for k, hw in enumerate(self.pipe.schedule(r, budget))]

    def defaults(self) -> dict:
        """Every setting of the page at its default: what a link without query parameters opens with."""
        d = self.cfg.defaults
        K = len(self.pipe.schedule(self.default_ratio(), self.cfg.default_budget))
        mid = K // 2
        return dict(prompt="", negative_prompt="", seed=0, randomize=True, guidance=float(d.get("guidance", 3.0)),
                    temperature=float(d.get("temperature", 1.0)), top_p=float(d.get("top_p", 0.0)), greedy=False,
                    h_div_w=self.default_ratio(), budget=self.cfg.default_budget, num_images=1, flip_share=0.2,
                    flip_scales=[mid], inspect_scale=mid, flip_seed=0)

    # -- share links ------------------------------------------------------------------------------------------
    def settings_from_query(self, query: Mapping[str, str]) -> dict:
        """Page settings from a share link's query parameters. Unknown keys are ignored; a value that does not fit
        the model falls back to its default and is listed under `ignored`. `autorun` says whether the link asks to
        regenerate (it names a prompt); a link with a seed turns `randomize` off, so that seed is used."""
        s = self.defaults()
        ignored = []

        def take(key, convert):
            if key not in query:
                return
            try:
                s[QUERY_KEYS[key]] = convert(str(query[key]).strip())
            except (ValueError, TypeError, InvalidInput):
                ignored.append(key)

        def number(lo, hi):
            def convert(v):
                x = float(v)
                if not lo <= x <= hi:  # also rejects NaN
                    raise ValueError(v)
                return x
            return convert

        def whole(lo, hi):
            def convert(v):
                x = float(v)
                if not (x.is_integer() and lo <= x <= hi):
                    raise ValueError(v)
                return int(x)
            return convert

        def flag(v):
            if v.lower() in ("1", "true", "yes", "on"):
                return True
            if v.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(v)

        def ratio(v):  # a label as the page writes it ('4:3') or a template h/w ('0.75')
            for label, r in self.ratio_choices():
                if v == label or (v.replace(".", "", 1).isdigit() and abs(float(v) - r) < 1e-6):
                    return r
            raise ValueError(v)

        def budget(v):
            if v not in self.pipe.budgets():
                raise ValueError(v)
            return v

        take("prompt", lambda v: clean_prompt(v, allow_empty=True))
        take("negative", lambda v: clean_prompt(v, "negative prompt", allow_empty=True))
        take("seed", whole(0, MAX_SEED))
        take("guidance", number(*GUIDANCE[:2]))
        take("temperature", number(*TEMPERATURE[:2]))
        take("top_p", number(*TOP_P[:2]))
        take("greedy", flag)
        take("ratio", ratio)
        take("resolution", budget)
        take("n", whole(1, MAX_IMAGES))
        take("flip_share", number(*FLIP_SHARE[:2]))
        K = len(self.pipe.schedule(s["h_div_w"], s["budget"]))  # scale indices depend on ratio and resolution
        take("flip_scales", lambda v: sorted({whole(0, K - 1)(x) for x in v.split(",") if x.strip()}))
        take("inspect", whole(0, K - 1))
        take("flip_seed", whole(0, MAX_SEED))
        s["randomize"] = "seed" not in query or "seed" in ignored  # a link with a seed means that seed
        s["autorun"] = bool(s["prompt"])
        s["ignored"] = ignored
        return s

    def query_from_settings(self, settings: Mapping[str, Any]) -> str:
        """The inverse of `settings_from_query` (without the leading '?'): what the page writes into its URL."""
        labels = {r: label for label, r in self.ratio_choices()}
        out = {}
        for key, name in QUERY_KEYS.items():
            v = settings.get(name)
            if v is None or v == "" or (name in ("flip_share", "flip_scales") and not v):
                continue
            if name == "h_div_w":
                v = labels.get(v, v)
            elif isinstance(v, bool):
                v = int(v)
            elif isinstance(v, (list, tuple)):
                v = ",".join(str(int(x)) for x in v)
            out[key] = v
        return urlencode(out)

    # -- generation -------------------------------------------------------------------------------------------
    def gen_kwargs(self, negative_prompt, guidance, temperature, top_p, greedy, h_div_w, budget) -> dict:
        if budget not in self.pipe.budgets():
            raise InvalidInput(f"unknown resolution {budget!r}; this model offers {self.pipe.budgets()}")
        try:
            ratio = float(h_div_w)
        except (TypeError, ValueError):
            raise InvalidInput(f"aspect ratio must be a number (height / width), got {h_div_w!r}") from None
        return dict(negative_prompt=negative_prompt or None, guidance=guidance, temperature=temperature,
                    top_p=top_p, greedy=bool(greedy), h_div_w=ratio, budget=budget)

    def pick_seed(self, seed, randomize: bool, num_images: int = 1) -> int:
        n = self.check_count(num_images)
        if randomize:
            return random.randint(0, MAX_SEED - n + 1)
        seed = check_seed(seed)
        if seed + n - 1 > MAX_SEED:
            raise InvalidInput(f"seeds run from {seed} to {seed + n - 1}, past the largest seed {MAX_SEED}")
        return seed

    @staticmethod
    def check_count(num_images) -> int:
        n = _whole(num_images, "number of images")
        if not 1 <= n <= MAX_IMAGES:
            raise InvalidInput(f"number of images must be between 1 and {MAX_IMAGES}, got {num_images!r}")
        return n

    def _run(self, prompt: str, seed: int, kw: dict) -> Iterator[Run]:
        """Sample scale by scale; yields the same `Run`, one scale longer each time (live previews)."""
        t0 = time.perf_counter()
        p = self.pipe.prepare(prompt, seed, **kw)
        run = Run(settings=dict(p.settings), schedule=list(p.schedule), truncated=any(p.truncated))
        for st in self.pipe.stream(prompt, seed, prepared=p):
            grid = preview_grid(run.schedule[len(run.previews)], run.schedule[-1], st.codes_sum.shape[-2:])
            run.previews.append(self.pipe.decode(st.codes_sum, grid)[0])
            run.bits.append(st.bits[0].cpu())
            run.masks.append(None if st.flip_mask is None else st.flip_mask[0].cpu())
            run.seconds = time.perf_counter() - t0
            yield run

    def metadata(self, run: Run, **extra) -> dict:
        H, W = run.image.height, run.image.width
        return {**run.settings, "size": [W, H], "scales": [list(hw) for hw in run.schedule], **extra}

    def generate_iter(self, prompt, negative_prompt, seed, randomize, guidance, temperature, top_p, greedy, h_div_w,
                      budget, num_images) -> Iterator[tuple[str, Any]]:
        """Events ('seed', s), ('scale', (i, run)) per scale of image i, then ('done', result dict)."""
        prompt = clean_prompt(prompt)
        n = self.check_count(num_images)
        seed = self.pick_seed(seed, randomize, n)
        kw = self.gen_kwargs(negative_prompt, guidance, temperature, top_p, greedy, h_div_w, budget)
        yield "seed", seed
        folder = self.store.new_dir("generate")
        runs, pngs = [], []
        for i in range(n):
            run = None
            for run in self._run(prompt, seed + i, kw):
                yield "scale", (i, run)
            runs.append(run)
            pngs.append(viz.save_png(run.image, folder / f"image-{i + 1}-seed-{seed + i}.png", self.metadata(run)))
        first = runs[0]
        frames = viz.scale_frames(first.previews, hws=first.schedule)
        settings = {**first.settings, "num_images": n}
        yield "done", dict(
            runs=runs, pngs=pngs, frames=frames,
            mp4=viz.write_mp4(frames, folder / "scales.mp4", fps=FPS),
            gif=viz.write_gif(frames, folder / "scales.gif", duration_ms=int(1000 / FPS)),
            info=dict(seed=seed, seeds=[seed + i for i in range(n)], settings=settings,
                      size=self.metadata(first)["size"], scales=[list(hw) for hw in first.schedule],
                      seconds=[round(r.seconds, 3) for r in runs], prompt_truncated=first.truncated,
                      share_query=self.query_from_settings(settings)),
        )

    def generate(self, *args, **kw) -> dict:
        return _last(self.generate_iter(*args, **kw))[1]

    # -- bit flips -------------------------------------------------------------------------------------------
    def flip(self, prompt, negative_prompt, seed, guidance, temperature, top_p, greedy, h_div_w, budget, flip_share,
             flip_scales, inspect_scale, flip_seed) -> dict:
        """The clean run and the run with flipped bits, from one seed; pictures of where they part and rejoin."""
        seed, flip_seed = check_seed(seed), check_seed(flip_seed)
        kw = self.gen_kwargs(negative_prompt, guidance, temperature, top_p, greedy, h_div_w, budget)
        scales = sorted({_whole(s, "flip scale") for s in (flip_scales or [])})
        if not scales:
            raise InvalidInput("choose at least one scale to flip bits at")
        if not (isinstance(flip_share, (int, float)) and 0 < flip_share <= 1):
            raise InvalidInput(f"the share of bits to flip must be above 0 and at most 1, got {flip_share!r}")
        K = len(self.pipe.schedule(kw["h_div_w"], budget))
        inspect = scales[0] if inspect_scale is None or inspect_scale == "" else _whole(inspect_scale, "scale")
        if not 0 <= inspect < K:
            raise InvalidInput(f"scale {inspect} does not exist: this schedule has scales 0 to {K - 1}")
        clean = _last(self._run(prompt, seed, kw))
        flipped = _last(self._run(prompt, seed, {**kw, "flip_share": float(flip_share), "flip_scales": scales,
                                                 "flip_seed": flip_seed}))

        folder = self.store.new_dir("flip")
        title = f"{flip_share:.0%} of bits flipped at scale{'s' if len(scales) > 1 else ''} " + \
            ", ".join(str(s + 1) for s in scales)
        pairs = viz.side_by_side(viz.scale_frames(clean.previews, hws=clean.schedule),
                                 viz.scale_frames(flipped.previews, hws=flipped.schedule), titles=("clean", title))
        diffs = [viz.difference_map(a, b) for a, b in zip(clean.previews, flipped.previews)]
        planes = viz.bit_plane_grid(flipped.bits[inspect], flipped.masks[inspect])
        rows = [dict(scale=k, grid=list(hw),
                     flipped_bits=0 if flipped.masks[k] is None else int(flipped.masks[k].sum()),
                     bits=int(flipped.bits[k].numel()),
                     mean_abs_diff=round(_mean_abs_diff(a, b), 3))
                for k, (hw, a, b) in enumerate(zip(clean.schedule, clean.previews, flipped.previews))]
        meta = {"flip_share": float(flip_share), "flip_scales": scales, "flip_seed": flip_seed}
        return dict(
            clean=clean, flipped=flipped, pairs=pairs, planes=planes, inspect=inspect,
            diff_frames=viz.scale_frames(diffs, hws=clean.schedule),
            clean_png=viz.save_png(clean.image, folder / f"clean-seed-{seed}.png", self.metadata(clean)),
            flipped_png=viz.save_png(flipped.image, folder / f"flipped-seed-{seed}.png",
                                     self.metadata(flipped, **meta)),
            mp4=viz.write_mp4(pairs, folder / "clean-vs-flipped.mp4", fps=FPS),
            planes_png=viz.save_png(planes, folder / f"bit-planes-scale-{inspect + 1}.png",
                                    {"scale": inspect, "grid": list(clean.schedule[inspect]), **meta}),
            info=dict(seed=seed, settings={**flipped.settings, "flip_seed": flip_seed, "inspect_scale": inspect},
                      scales=rows),
        )

    # -- tokenizer -------------------------------------------------------------------------------------------
    def _encode(self, image: Image.Image, budget: str):
        img, pyr = self.pipe.encode_image(image, budget=budget)
        return img, [b for b in pyr.bits]

    def _decode_bits(self, bits: Sequence[torch.Tensor]) -> list[Image.Image]:
        """Previews after each scale from (possibly flipped) bits."""
        full = tuple(bits[-1].shape[1:3])
        return [self.pipe.decode(s, preview_grid(b.shape[1:3], full))[0]
                for s, b in zip(Q.bits_to_codes_sum(bits, full), bits)]

    @staticmethod
    def check_image(image) -> Image.Image:
        """Uploads arrive as the path of the file Gradio saved in its upload folder (it only opens the header), so
        size and damage are judged here, before decoding. A path anywhere else is refused: no string from a
        request is ever opened as a file."""
        return open_image(_own_upload(image) if isinstance(image, (str, os.PathLike)) else image)

    @classmethod
    def check_image_size(cls, image) -> tuple[int, int]:
        """(width, height) read from the header only (for choosing the aspect ratio as soon as a file arrives)."""
        if isinstance(image, Image.Image):
            return image.size
        if image is None:
            raise InvalidInput("upload an image first")
        try:
            with Image.open(_own_upload(image)) as im:
                return im.size
        except Exception:  # noqa: BLE001 - any unreadable header: the real request will say why
            raise InvalidInput("the upload is not an image") from None

    def tokenize(self, image, budget, flip_share=0.0, flip_scale=None, flip_seed=0) -> dict:
        """Per-scale reconstructions and bit maps of an image; with a share > 0, the effect of flipping that share
        of one scale's bits, once with the later scales kept and once re-quantized after the flip."""
        image = self.check_image(image)
        if budget not in self.pipe.budgets():
            raise InvalidInput(f"unknown resolution {budget!r}; this model offers {self.pipe.budgets()}")
        flip_seed = check_seed(flip_seed)
        try:
            share = float(flip_share or 0.0)
        except (TypeError, ValueError):
            raise InvalidInput(f"the share of bits to flip must be a number, got {flip_share!r}") from None
        if not 0 <= share <= 1:
            raise InvalidInput(f"the share of bits to flip must be between 0 and 1, got {share:g}")
        img, bits = self._encode(image, budget)
        K = len(bits)
        scale = K // 2 if flip_scale is None or flip_scale == "" else _whole(flip_scale, "flip scale")
        if not 0 <= scale < K:
            raise InvalidInput(f"scale {scale} does not exist: this image has scales 0 to {K - 1}")
        hws = [tuple(b.shape[1:3]) for b in bits]
        recon = self._decode_bits(bits)
        folder = self.store.new_dir("tokenize")
        out = dict(input=img, recon=recon, hws=hws, scale=scale,
                   recon_frames=viz.scale_frames(recon, hws=hws),
                   bitmaps=[viz.bit_plane_grid(b[0].cpu()) for b in bits],
                   input_png=viz.save_png(img, folder / "input.png", {"budget": budget}),
                   recon_png=viz.save_png(recon[-1], folder / "reconstruction.png", {"budget": budget, "scales": K}),
                   scale_pngs=[viz.save_png(r, folder / f"scale-{k + 1}.png", {"scale": k, "grid": list(hw)})
                               for k, (r, hw) in enumerate(zip(recon, hws))],
                   kept=None, requantized=None, planes=None, kept_png=None, requantized_png=None, planes_png=None)
        info = dict(size=[img.width, img.height], scales=[list(hw) for hw in hws], bits_per_position=bits[0].shape[-1],
                    psnr_reconstruction=round(_psnr(img, recon[-1]), 2))
        if share > 0:
            g = torch.Generator().manual_seed(flip_seed)
            mask = (torch.rand(bits[scale].shape, generator=g) < share).to(bits[scale].device)
            kept_bits = list(bits)
            kept_bits[scale] = bits[scale] ^ mask.to(bits[scale].dtype)
            kept = self._decode_bits(kept_bits)[-1]
            requant = self._requantize(img, budget, scale, mask)
            planes = viz.bit_plane_grid(kept_bits[scale][0].cpu(), mask[0].cpu())
            meta = {"budget": budget, "flip_share": share, "flip_scale": scale, "flip_seed": flip_seed}
            out.update(kept=kept, requantized=requant, planes=planes,
                       kept_png=viz.save_png(kept, folder / "flipped-later-kept.png", meta),
                       requantized_png=viz.save_png(requant, folder / "flipped-later-requantized.png", meta),
                       planes_png=viz.save_png(planes, folder / f"bit-planes-scale-{scale + 1}.png", meta))
            info.update(flip_share=share, flip_scale=scale, flip_seed=flip_seed, flipped_bits=int(mask.sum()),
                        psnr_flipped_later_kept=round(_psnr(recon[-1], kept), 2),
                        psnr_flipped_later_requantized=round(_psnr(recon[-1], requant), 2))
        out["info"] = info
        return out

    @torch.no_grad()
    def _requantize(self, img: Image.Image, budget: str, scale: int, mask: torch.Tensor) -> Image.Image:
        """Quantize again with the flip applied, so every later scale codes what the flipped bits left: the labels
        bitwise self-correction trains on (paper §3.3)."""
        _, pyr = self.pipe.encode_image(img, img.height / img.width, budget,
                                        flip=lambda s, b: b ^ mask.to(b) if s == scale else b)
        return self.pipe.decode(pyr.codes_sum[-1])[0]

    def variation(self, image, prompt, keep_scales, seed, budget) -> dict:
        """Keep the first `keep_scales` scales of an image's bits and let the model draw the rest from `prompt`."""
        image = self.check_image(image)
        seed = check_seed(seed)
        if budget not in self.pipe.budgets():
            raise InvalidInput(f"unknown resolution {budget!r}; this model offers {self.pipe.budgets()}")
        img, bits = self._encode(image, budget)
        K = len(bits)
        keep = _whole(keep_scales, "scales to keep")
        if not 0 <= keep <= K:
            raise InvalidInput(f"scales to keep must be between 0 and {K}, got {keep_scales!r}")
        kw = dict(h_div_w=img.height / img.width, budget=budget, forced_bits=bits[:keep])
        run = _last(self._run(prompt, seed, kw))
        recon = self._decode_bits(bits)
        folder = self.store.new_dir("variation")
        pairs = viz.side_by_side(viz.scale_frames(recon, hws=run.schedule), viz.scale_frames(run.previews,
                                 hws=run.schedule), titles=("uploaded", f"variation (first {keep} kept)"))
        return dict(run=run, pairs=pairs,
                    png=viz.save_png(run.image, folder / f"variation-seed-{seed}.png",
                                     self.metadata(run, keep_scales=keep, source="uploaded image")),
                    mp4=viz.write_mp4(pairs, folder / "variation.mp4", fps=FPS),
                    info=dict(seed=seed, keep_scales=keep, settings=run.settings,
                              scales=[list(hw) for hw in run.schedule]))


# ----------------------------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------------------------
CSS = """
.pixelated img, .pixelated video { image-rendering: pixelated; }
/* a 64 px result fills the frame (the file itself stays at its real size, metadata and all) */
#result img { width: 100%; height: 100%; object-fit: contain; }
#intro p { margin-top: 0; }
#model-line { opacity: .75; font-size: .9em; }
#footer { margin-top: 1.5em; opacity: .85; font-size: .9em; }
"""


def _url_js(ratio_labels: Mapping[float, str]) -> str:
    """Writes the settings into the address bar (and, inside a Space's iframe, into the parent page's URL)."""
    labels = {str(k): v for k, v in ratio_labels.items()}
    labels.update({str(int(k)) if float(k).is_integer() else str(k): v for k, v in ratio_labels.items()})
    return f"""
(...values) => {{
  if (!window.__infinityLinkRead) return;
  const keys = {json.dumps(list(QUERY_KEYS))};
  const ratios = {json.dumps(labels)};
  const params = new URLSearchParams();
  keys.forEach((k, i) => {{
    let v = values[i];
    if (v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) return;
    if (Array.isArray(v)) v = v.join(',');
    if (typeof v === 'boolean') v = v ? 1 : 0;
    if (k === 'ratio') v = ratios[String(v)] ?? v;
    params.set(k, String(v));
  }});
  const query = params.toString();
  history.replaceState(history.state, '', location.pathname + (query ? '?' + query : '') + location.hash);
  if (window.parent !== window) {{
    // a Space shows the app in an iframe; this message is how Spaces lets it update the page's own URL
    window.parent.postMessage({{queryString: query}}, 'https://huggingface.co');
  }}
}}
"""


def _copy_js(share_base: Optional[str]) -> str:
    """Copies the page's link (on a Space: the Space page's, not the iframe's) and shows it in the link box."""
    base = json.dumps(share_base) if share_base else "location.origin + location.pathname"
    return f"""
() => {{
  const link = {base} + location.search;
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(link).catch(() => {{}});
  return link;
}}
"""


def build_demo(pipe: InfinityPipeline, output_root: Optional[os.PathLike] = None) -> gr.Blocks:
    """The whole page for one pipeline. Queued with one worker and a bounded queue (CPU-friendly); call
    `.queue(...)` again to change that, and launch with `**launch_kwargs(output_root)`."""
    studio = Studio(pipe, OutputStore(Path(output_root) if output_root else default_output_root()))
    D = studio.defaults()
    cfg = pipe.config
    K0 = studio.scale_choices(D["h_div_w"], D["budget"])
    space = os.environ.get("SPACE_ID")
    share_base = f"https://huggingface.co/spaces/{space}" if space else None
    model_line = (f"Model **{cfg.name}** · {len(pipe.budgets())} resolution{'s' if len(pipe.budgets()) > 1 else ''}, "
                  f"{len(pipe.aspect_ratios())} aspect ratios · {pipe.device.type.upper()}")
    model_events = dict(concurrency_id="model", concurrency_limit="default")

    with gr.Blocks(title=TITLE, delete_cache=(1800, OUTPUT_MAX_AGE_S)) as demo:
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(INTRO, elem_id="intro")
        gr.Markdown(model_line, elem_id="model-line")

        with gr.Tabs():
            # ---------------------------------------------------------------------------------- Generate
            with gr.Tab("Generate", id="generate"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        prompt = gr.Textbox(label="Prompt", placeholder="a red circle on a blue background",
                                            lines=1, max_lines=4, autofocus=True, elem_id="prompt")
                        with gr.Row():
                            run_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=3)
                            stop_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn", scale=1)
                        negative = gr.Textbox("", label="Negative prompt", placeholder="optional", lines=1, max_lines=3)
                        with gr.Row():
                            seed = gr.Number(label="Seed", value=D["seed"], precision=0, elem_id="seed", scale=3)
                            randomize = gr.Checkbox(label="Random seed", value=D["randomize"], scale=2)
                        ratio = gr.Radio(studio.ratio_choices(), value=D["h_div_w"],
                                         label="Aspect ratio (width:height)")
                        budget = gr.Radio(studio.budget_choices(D["h_div_w"]), value=D["budget"], label="Resolution")
                        guidance = gr.Slider(*GUIDANCE[:2], value=D["guidance"], step=GUIDANCE[2],
                                             label="Guidance (CFG)",
                                             info="how strongly the prompt steers each scale; 1 = no guidance")
                        temperature = gr.Slider(*TEMPERATURE[:2], value=D["temperature"], step=TEMPERATURE[2],
                                                label="Temperature",
                                                info="lower: safer bits, higher: more variety")
                        num_images = gr.Slider(1, MAX_IMAGES, value=1, step=1, label="Number of images",
                                               info="seeds seed, seed+1, …, each generated on its own")
                        with gr.Accordion("Advanced", open=False):
                            top_p = gr.Slider(*TOP_P[:2], value=D["top_p"], step=TOP_P[2], label="Top-p per bit",
                                              info="drop the less likely value of a bit when its probability is "
                                                   "≤ 1 − top-p (0 = off)")
                            greedy = gr.Checkbox(label="Greedy (most likely value of every bit)", value=False)
                        with gr.Row():
                            copy_btn = gr.Button("Copy link to these settings", size="sm", scale=1)
                            link = gr.Textbox(show_label=False, placeholder="share link", interactive=False,
                                              container=False, scale=2, elem_id="share-link")
                        gr.Examples([[e] for e in EXAMPLES], inputs=[prompt], label="Examples")
                    with gr.Column(scale=6, min_width=320):
                        image = gr.Image(label="Image", type="pil", format="png", height=420, interactive=False,
                                         elem_id="result", elem_classes="pixelated")
                        info_md = gr.Markdown("Type a prompt and press **Generate** (or Enter). The preview "
                                              "sharpens scale by scale.", elem_id="gen-info")
                        images = gr.Gallery(label="Images", columns=4, rows=1, height=200, format="png", visible=False,
                                            elem_classes="pixelated", object_fit="contain")
                        video = gr.Video(label="Scale animation", autoplay=True, loop=True, elem_id="scale-video",
                                         elem_classes="pixelated", height=320)
                        with gr.Accordion("Every scale", open=True):
                            scales = gr.Gallery(show_label=False, columns=5, rows=1, height=190, format="png",
                                                elem_classes="pixelated", object_fit="contain")
                        downloads = gr.File(label="Downloads: PNG (prompt, seed and settings in its metadata), "
                                                  "GIF, MP4", file_count="multiple", interactive=False)
                        with gr.Accordion("Settings (JSON)", open=False):
                            settings_json = gr.JSON(show_label=False)

            # ---------------------------------------------------------------------------------- Bit flips
            with gr.Tab("Bit flips", id="flips"):
                gr.Markdown(FLIP_NOTE)
                gr.Markdown("Uses the prompt, seed and settings of the **Generate** tab.", elem_id="model-line")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        flip_share = gr.Slider(*FLIP_SHARE[:2], value=D["flip_share"], step=FLIP_SHARE[2],
                                               label="Share of bits to flip")
                        flip_scales = gr.CheckboxGroup(K0, value=D["flip_scales"], label="Flip at scales (h×w)")
                        inspect = gr.Dropdown(K0, value=D["inspect_scale"], label="Show the bit planes of scale")
                        flip_seed = gr.Number(label="Flip seed (which bits)", value=D["flip_seed"], precision=0)
                        flip_btn = gr.Button("Compare clean and flipped", variant="primary", elem_id="flip-btn")
                        flip_md = gr.Markdown()
                    with gr.Column(scale=6, min_width=320):
                        flip_video = gr.Video(label="Clean vs flipped, scale by scale", autoplay=True, loop=True,
                                              elem_classes="pixelated", height=320)
                        flip_pairs = gr.Gallery(label="Scale by scale (clean | flipped)", columns=3, height=330,
                                                format="png", elem_classes="pixelated", object_fit="contain")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        gr.Markdown("**Bit planes of the flipped run** at the chosen scale: one tile per bit, white 1, "
                                    "black 0; flipped bits in red (bright: now 1, dark: now 0).")
                        planes_img = gr.Image(show_label=False, type="pil", format="png", interactive=False,
                                              elem_classes="pixelated", height=260)
                    with gr.Column(scale=6, min_width=320):
                        gr.Markdown("**Difference clean vs flipped** after each scale (black: equal, white: far "
                                    "apart). Scales before the first flip are identical.")
                        diff_gallery = gr.Gallery(show_label=False, columns=5, rows=1, height=200, format="png",
                                                  elem_classes="pixelated", object_fit="contain")

            # ---------------------------------------------------------------------------------- Tokenizer
            with gr.Tab("Tokenizer", id="tokenizer"):
                gr.Markdown(TOKENIZER_NOTE)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        upload = upload_image(label="Image", sources=["upload", "clipboard"], height=260,
                                              elem_id="upload")
                        tok_budget = gr.Radio(studio.budget_choices(D["h_div_w"]), value=D["budget"],
                                              label="Resolution")
                        tok_share = gr.Slider(0.0, 1.0, value=0.2, step=0.01, label="Share of bits to flip (0: none)")
                        tok_scale = gr.Dropdown(K0, value=len(K0) // 2, label="Flip at scale")
                        tok_seed = gr.Number(label="Flip seed", value=0, precision=0)
                        tok_btn = gr.Button("Tokenize", variant="primary", elem_id="tokenize-btn")
                        tok_md = gr.Markdown(elem_id="tok-info")
                    with gr.Column(scale=6, min_width=320):
                        recon_gallery = gr.Gallery(label="Reconstruction after each scale", columns=5, height=230,
                                                   format="png", elem_classes="pixelated", object_fit="contain")
                        flip_effect = gr.Gallery(label="Effect of the flip", columns=4, rows=1, height=230,
                                                 format="png", elem_classes="pixelated", object_fit="contain")
                        gr.Markdown("**Bit planes of the flipped scale** (flipped bits in red)")
                        tok_planes = gr.Image(show_label=False, type="pil", format="png", interactive=False,
                                              elem_classes="pixelated", height=220)
                        with gr.Accordion("Bit maps of every scale", open=False):
                            bit_gallery = gr.Gallery(show_label=False, columns=3, height=320, format="png",
                                                     elem_classes="pixelated", object_fit="contain")
                gr.Markdown("### Variations\nKeep the first scales of the uploaded image (its layout and colours) "
                            "and let the model draw the finer scales from a prompt.")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4, min_width=300):
                        var_prompt = gr.Textbox(EXAMPLES[0], label="Prompt", lines=1)
                        var_keep = gr.Slider(0, len(K0), value=min(2, len(K0)), step=1, label="Scales to keep")
                        var_seed = gr.Number(label="Seed", value=0, precision=0)
                        var_btn = gr.Button("Make a variation", variant="primary")
                    with gr.Column(scale=6, min_width=320):
                        var_video = gr.Video(label="Uploaded vs variation", autoplay=True, loop=True,
                                             elem_classes="pixelated", height=300)
                        var_image = gr.Image(label="Variation", type="filepath", interactive=False, height=256,
                                             elem_classes="pixelated")

        gr.Markdown(RESPONSIBLE_USE + "  \nProgrammatic use: see *Use via API* below (endpoints /generate, /flip, "
                    "/tokenize, /variation).", elem_id="footer")

        # hidden outputs of the API endpoints: plain files and one JSON dict (their labels name the return values)
        with gr.Column(visible=False):
            api_out = {n: gr.File(label=n, file_count="multiple" if n.endswith("pngs") else "single") for n in (
                "image_pngs", "animation_mp4", "animation_gif", "clean_png", "flipped_png", "side_by_side_mp4",
                "bit_planes_png", "reconstruction_png", "scale_pngs", "flipped_kept_png", "flipped_requantized_png",
                "variation_png")}
            api_json = gr.JSON(label="info")

            def api_files(*names):
                return [api_out[n] for n in names]

            autorun = gr.Checkbox(value=False, label="autorun")

        gen_inputs = [prompt, negative, seed, randomize, guidance, temperature, top_p, greedy, ratio, budget,
                      num_images]
        gen_outputs = [image, images, scales, video, downloads, info_md, settings_json, seed]
        flip_inputs = [prompt, negative, seed, guidance, temperature, top_p, greedy, ratio, budget, flip_share,
                       flip_scales, inspect, flip_seed]
        url_inputs = [prompt, negative, seed, guidance, temperature, top_p, greedy, ratio, budget, num_images,
                      flip_share, flip_scales, inspect, flip_seed]  # the order of QUERY_KEYS

        # -- generate, streamed ----------------------------------------------------------------------------------
        def ui_generate(prompt_, negative_, seed_, randomize_, guidance_, temperature_, top_p_, greedy_, ratio_,
                        budget_, n_, progress=gr.Progress()):
            with user_errors():
                n = studio.check_count(n_)
                for kind, value in studio.generate_iter(prompt_, negative_, seed_, randomize_, guidance_,
                                                        temperature_, top_p_, greedy_, ratio_, budget_, n):
                    if kind == "seed":
                        yield {seed: value, images: gr.Gallery(value=None, visible=False), scales: None, video: None,
                               downloads: None, info_md: f"Seed **{value}** · starting…"}
                    elif kind == "scale":
                        i, run = value
                        k, K = len(run.previews), len(run.schedule)
                        progress((i * K + k) / (n * K), desc=f"image {i + 1}/{n} · scale {k}/{K}")
                        yield {image: run.image,
                               info_md: f"Image {i + 1}/{n} · scale {k}/{K} ({_hw(run.schedule[k - 1])}) · "
                                        f"{run.seconds:.2f} s"}
                    else:
                        r = value
                        if r["info"]["prompt_truncated"]:
                            gr.Warning("The prompt is longer than the text encoder reads; only its beginning was used.")
                        first = r["runs"][0]
                        W, H = first.image.size
                        seeds = ", ".join(str(s) for s in r["info"]["seeds"])
                        yield {image: r["pngs"][0],
                               images: gr.Gallery(visible=n > 1, value=[
                                   (p, f"seed {s}") for p, s in zip(r["pngs"], r["info"]["seeds"])]),
                               scales: r["frames"], video: r["mp4"], downloads: r["pngs"] + [r["gif"], r["mp4"]],
                               info_md: f"Seed{'s' if n > 1 else ''} **{seeds}** · {W}×{H} px · "
                                        f"{len(first.schedule)} scales ({_hw(first.schedule[0])} → "
                                        f"{_hw(first.schedule[-1])}) · {sum(x.seconds for x in r['runs']):.2f} s",
                               settings_json: r["info"]}

        gen_event = gr.on([run_btn.click, prompt.submit], ui_generate, gen_inputs, gen_outputs,
                          api_visibility="private", show_progress="minimal", **model_events)
        stop_btn.click(None, cancels=[gen_event])

        # -- bit flips --------------------------------------------------------------------------------------------
        def ui_flip(*args):
            with user_errors():
                r = studio.flip(*args)
            rows = "\n".join(
                f"| {row['scale'] + 1} | {_hw(row['grid'])} | {row['flipped_bits']} / {row['bits']} | "
                f"{row['mean_abs_diff']:.1f} |" for row in r["info"]["scales"])
            md = ("| scale | grid | bits flipped | mean abs. difference (0–255) |\n|---|---|---|---|\n" + rows)
            return (r["mp4"], r["pairs"], r["planes"], r["diff_frames"], md)

        gr.on([flip_btn.click], ui_flip, flip_inputs, [flip_video, flip_pairs, planes_img, diff_gallery, flip_md],
              api_visibility="private", **model_events)

        # -- tokenizer and variations --------------------------------------------------------------------------
        def ui_tokenize(image_, budget_, share_, scale_, seed_):
            with user_errors():
                r = studio.tokenize(image_, budget_, share_, scale_, seed_)
            info = r["info"]
            md = f"{info['size'][0]}×{info['size'][1]} px · {len(r['hws'])} scales · reconstruction PSNR " \
                 f"{info['psnr_reconstruction']:.1f} dB"
            effect = [(_enlarge(r["input"]), "input"), (_enlarge(r["recon"][-1]), "reconstruction")]
            if r["kept"] is not None:
                effect += [(_enlarge(r["kept"]), "flipped, later kept"),
                           (_enlarge(r["requantized"]), "flipped, re-quantized")]
                md += (f"  \n{info['flipped_bits']} bits flipped at scale {r['scale'] + 1} "
                       f"({_hw(r['hws'][r['scale']])}). PSNR to the reconstruction: later scales kept "
                       f"{info['psnr_flipped_later_kept']:.1f} dB, re-quantized after the flip "
                       f"{info['psnr_flipped_later_requantized']:.1f} dB.")
            bitmaps = [(b, f"scale {k + 1}: {_hw(hw)}") for k, (b, hw) in enumerate(zip(r["bitmaps"], r["hws"]))]
            return r["recon_frames"], effect, r["planes"], bitmaps, md

        gr.on([tok_btn.click], ui_tokenize, [upload, tok_budget, tok_share, tok_scale, tok_seed],
              [recon_gallery, flip_effect, tok_planes, bit_gallery, tok_md], api_visibility="private", **model_events)

        def ui_variation(image_, prompt_, keep_, seed_, budget_):
            with user_errors():
                r = studio.variation(image_, prompt_, keep_, seed_, budget_)
            return r["mp4"], r["png"]

        gr.on([var_btn.click, var_prompt.submit], ui_variation, [upload, var_prompt, var_keep, var_seed, tok_budget],
              [var_video, var_image], api_visibility="private", **model_events)

        # -- choices that depend on the aspect ratio and resolution ---------------------------------------------
        # A ratio changes the pixel labels of the resolutions; both change which scales exist. Each handler only
        # writes components that do not trigger it, so updates cannot chase each other in a loop.
        quiet = dict(queue=False, api_visibility="private", show_progress="hidden")

        def scale_updates(r, budget_, selected, single):
            choices = studio.scale_choices(r, budget_)
            K = len(choices)
            group = gr.CheckboxGroup(choices=choices, value=[k for k in (selected or []) if k < K])
            return group, gr.Dropdown(choices=choices, value=single if single is not None and single < K else K // 2)

        ratio.change(lambda r, b: gr.Radio(choices=studio.budget_choices(r), value=b), [ratio, budget], [budget],
                     **quiet)
        gr.on([ratio.change, budget.change], lambda r, b, sel, one: scale_updates(r, b, sel, one),
              [ratio, budget, flip_scales, inspect], [flip_scales, inspect], **quiet)

        def image_ratio(image_):
            try:
                w, h = studio.check_image_size(image_)
            except InvalidInput:
                return studio.default_ratio()
            return h / w

        upload.change(lambda im, b: gr.Radio(choices=studio.budget_choices(image_ratio(im)), value=b),
                      [upload, tok_budget], [tok_budget], **quiet)

        def tok_scale_updates(image_, budget_, scale_, keep_):
            _, one = scale_updates(image_ratio(image_), budget_, [], scale_)
            K = len(one.choices)
            return one, gr.Slider(maximum=K, value=min(keep_, K))

        gr.on([upload.change, tok_budget.change], tok_scale_updates, [upload, tok_budget, tok_scale, var_keep],
              [tok_scale, var_keep], **quiet)

        # -- share links: restore on load (and regenerate), keep the URL in step with the settings -----------------
        def restore(request: gr.Request):
            """Settings named in the link; everything else is left as the visitor may already have set it."""
            query = dict(request.query_params) if request else {}
            s = studio.settings_from_query(query)
            if s["ignored"]:
                gr.Warning("Ignored link settings this model does not support: " + ", ".join(s["ignored"]))
            given = {QUERY_KEYS[k] for k in query if k in QUERY_KEYS and k not in s["ignored"]}

            def pick(name):
                return s[name] if name in given else gr.skip()

            grid = bool(given & {"h_div_w", "budget", "flip_scales", "inspect_scale"})
            choices = studio.scale_choices(s["h_div_w"], s["budget"])
            if grid:  # choices and values together, so a value is never outside the choices shown
                budget_, flips_, inspect_ = (
                    gr.Radio(choices=studio.budget_choices(s["h_div_w"]), value=s["budget"]),
                    gr.CheckboxGroup(choices=choices, value=s["flip_scales"]),
                    gr.Dropdown(choices=choices, value=s["inspect_scale"]))
            else:
                budget_ = flips_ = inspect_ = gr.skip()
            return (pick("prompt"), pick("negative_prompt"), pick("seed"),
                    False if "seed" in given else gr.skip(),  # a link's seed is used as is
                    pick("guidance"), pick("temperature"), pick("top_p"), pick("greedy"), pick("h_div_w"), budget_,
                    pick("num_images"), pick("flip_share"), flips_, inspect_, pick("flip_seed"), s["autorun"])

        restore_outputs = [prompt, negative, seed, randomize, guidance, temperature, top_p, greedy, ratio, budget,
                           num_images, flip_share, flip_scales, inspect, flip_seed, autorun]

        def ui_autorun(run_, prompt_, negative_, seed_, randomize_, guidance_, temperature_, top_p_, greedy_,
                       ratio_, budget_, n_, progress=gr.Progress()):
            if not run_:  # a plain visit: nothing to regenerate
                yield {c: gr.skip() for c in gen_outputs}
                return
            yield from ui_generate(prompt_, negative_, seed_, randomize_, guidance_, temperature_, top_p_, greedy_,
                                   ratio_, budget_, n_, progress=progress)

        restored = demo.load(restore, None, restore_outputs, **quiet)
        auto_event = restored.then(ui_autorun, [autorun] + gen_inputs, gen_outputs, api_visibility="private",
                                   show_progress="minimal", **model_events)
        stop_btn.click(None, cancels=[auto_event])
        # The load event reads the address bar when it fires: writing settings there before that would make an
        # early edit look like a share link, so the URL follows the settings only once the link was read.
        restored.then(None, js="() => { window.__infinityLinkRead = true; }")
        gr.on([c.change for c in url_inputs], None, url_inputs, None,
              js=_url_js({r: label for label, r in studio.ratio_choices()}))
        copy_btn.click(None, None, [link], js=_copy_js(share_base))

        # -- named API endpoints: plain values (file paths and a JSON dict) --------------------------------------
        def api_generate(prompt: str, negative_prompt: str, seed: int, randomize_seed: bool, guidance: float,
                         temperature: float, top_p: float, greedy: bool, aspect_ratio: float, resolution: str,
                         num_images: int):
            """Generate num_images images (seeds seed, seed+1, …). Returns the PNGs (prompt, seed and settings in
            their metadata), the scale animation as MP4 and GIF (of the first image), and a JSON dict with the seed
            used and every setting."""
            with user_errors():
                r = studio.generate(prompt, negative_prompt, seed, randomize_seed, guidance, temperature, top_p,
                                    greedy, aspect_ratio, resolution, num_images)
            return r["pngs"], r["mp4"], r["gif"], r["info"]

        gr.on([], api_generate, gen_inputs, api_files("image_pngs", "animation_mp4", "animation_gif") + [api_json],
              api_name="generate", **model_events)

        def api_flip(prompt: str, negative_prompt: str, seed: int, guidance: float, temperature: float,
                     top_p: float, greedy: bool, aspect_ratio: float, resolution: str, flip_share: float,
                     flip_scales: list, inspect_scale: int, flip_seed: int):
            """Clean and bit-flipped run from one seed (flip_scales: 0-based scale indices). Returns the clean PNG,
            the flipped PNG, the side-by-side MP4, the bit planes of inspect_scale (flipped bits in red) and a JSON
            dict with, per scale, the flipped bit count and the mean absolute difference to the clean run."""
            with user_errors():
                r = studio.flip(prompt, negative_prompt, seed, guidance, temperature, top_p, greedy, aspect_ratio,
                                resolution, flip_share, flip_scales, inspect_scale, flip_seed)
            return r["clean_png"], r["flipped_png"], r["mp4"], r["planes_png"], r["info"]

        gr.on([], api_flip, flip_inputs,
              api_files("clean_png", "flipped_png", "side_by_side_mp4", "bit_planes_png") + [api_json],
              api_name="flip", **model_events)

        def api_tokenize(image: str, resolution: str, flip_share: float, flip_scale: int, flip_seed: int):
            """Tokenize an image. Returns the reconstruction PNG, the per-scale reconstructions, the image flipped
            at flip_scale with later scales kept and with later scales re-quantized (None when flip_share is 0),
            and a JSON dict (sizes, scales, PSNRs)."""
            with user_errors():
                r = studio.tokenize(image, resolution, flip_share, flip_scale, flip_seed)
            return r["recon_png"], r["scale_pngs"], r["kept_png"], r["requantized_png"], r["info"]

        gr.on([], api_tokenize, [upload, tok_budget, tok_share, tok_scale, tok_seed],
              api_files("reconstruction_png", "scale_pngs", "flipped_kept_png", "flipped_requantized_png") + [api_json],
              api_name="tokenize", **model_events)

        def api_variation(image: str, prompt: str, keep_scales: int, seed: int, resolution: str):
            """Keep the first keep_scales scales of the image's bits, generate the rest from prompt. Returns the PNG,
            the side-by-side MP4 and a JSON dict."""
            with user_errors():
                r = studio.variation(image, prompt, keep_scales, seed, resolution)
            return r["png"], r["mp4"], r["info"]

        gr.on([], api_variation, [upload, var_prompt, var_keep, var_seed, tok_budget],
              api_files("variation_png", "side_by_side_mp4") + [api_json], api_name="variation", **model_events)

    demo.studio = studio  # the tests (and anyone scripting the page) reach the plain methods here
    demo.queue(default_concurrency_limit=1, max_size=20)
    return demo


# ----------------------------------------------------------------------------------------------------------------
# launching
# ----------------------------------------------------------------------------------------------------------------
def default_output_root() -> Path:
    return Path(os.environ.get("INFINITY_OUTPUT_DIR") or HERE / "outputs")


def launch_kwargs(output_root: Optional[os.PathLike] = None) -> dict:
    """What `demo.launch` needs besides host and port: the look, and the only folder files may be served from."""
    root = Path(output_root) if output_root else default_output_root()
    root.mkdir(parents=True, exist_ok=True)
    return dict(theme=gr.themes.Soft(primary_hue="indigo"), css=CSS, allowed_paths=[str(root.resolve())],
                max_file_size="20mb")


def load_pipeline(source: Optional[str] = None, int8: bool = False) -> InfinityPipeline:
    """The bundled model (on CPU) by default. The official 2B is loaded only when asked for and a GPU is present:
    on a CPU it would take minutes per image, so the bundled model is served instead (with a warning). `int8`: on
    CPU, int8 linear layers (faster for large models; close to, not equal to, float32)."""
    if source in (None, "", "bundled", "small"):
        return InfinityPipeline.from_pretrained(device="cpu", int8=int8)
    official = str(source).rstrip("/").lower() == OFFICIAL_REPO.lower()
    if official and not torch.cuda.is_available():
        log.warning("%s needs a GPU and none is present: serving the bundled small model instead", source)
        return InfinityPipeline.from_pretrained(device="cpu", int8=int8)
    on_cpu = not torch.cuda.is_available()
    if int8 and not on_cpu:
        log.warning("--int8 applies to CPUs only; on the GPU the model runs in bf16")
    return InfinityPipeline.from_pretrained(source, dtype=torch.bfloat16 if official else None, int8=int8 and on_cpu)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=TITLE)
    ap.add_argument("--model", default=env("INFINITY_MODEL"),
                    help=f"a model folder or hub id (default: the bundled small model; {OFFICIAL_REPO} needs a GPU)")
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
    pipe = load_pipeline(args.model, int8=args.int8)
    demo = build_demo(pipe, output_root=args.outputs)
    demo.queue(default_concurrency_limit=max(1, args.concurrency), max_size=max(1, args.max_queue))
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs(args.outputs))


if __name__ == "__main__":
    main()
