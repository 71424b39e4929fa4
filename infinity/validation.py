"""Input validation in one place, for the library, the CLI and the app: each bad value gets one clear sentence."""
from __future__ import annotations

import math
import os
import unicodedata
import warnings
from typing import Any, Optional, Sequence

MAX_SEED = 2**31 - 1
MAX_GUIDANCE = 30.0
MAX_TEMPERATURE = 10.0
MAX_PROMPT_CHARS = 20_000  # longer input is cut before tokenizing (the encoder keeps far fewer tokens anyway)
MAX_IMAGE_PIXELS = 40_000_000  # uploads are resized to the model's grid; 40 MP (≈ 120 MB decoded) is plenty


class InvalidInput(ValueError):
    """A user-facing input error; the message is meant to be shown as is."""


def clean_prompt(text: Any, what: str = "prompt", allow_empty: bool = False) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be text, got {type(text).__name__}")
    text = text[:MAX_PROMPT_CHARS]
    # control, surrogate and private-use characters carry no meaning for the encoder: drop them (format
    # characters stay: the zero-width joiner holds emoji sequences together)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs", "Co") else ch for ch in text)
    text = " ".join(text.split())
    if not text and not allow_empty:
        raise InvalidInput(f"the {what} is empty: describe the image you want")
    return text


def _number(value: Any, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number, got {value!r}") from None
    if math.isnan(v) or math.isinf(v):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    if v < lo or v > hi or (lo_open and v == lo):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise InvalidInput(f"{name} must be in {bound}, got {v:g}")
    return v


def _per_scale(value: Any, name: str, n: int, lo: float, hi: float, lo_open: bool = False):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise InvalidInput(f"{name} has {len(value)} values but the schedule has {n} scales")
        return [_number(v, name, lo, hi, lo_open) for v in value]
    return _number(value, name, lo, hi, lo_open)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or (isinstance(seed, float) and not seed.is_integer()):
        raise InvalidInput(f"seed must be a whole number between 0 and {MAX_SEED}, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    return seed


MAX_IMAGES = 4  # images per app request: each is generated on its own, so image i equals seed + i alone


def check_whole(value: Any, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; floats that are whole (a slider's 2.0) count, booleans and text do not."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if isinstance(value, bool) or not x.is_integer() or not lo <= x <= hi:
        shown = f"{x:g}" if x == x and not isinstance(value, bool) else repr(value)  # 10.0 from a page reads 10
        raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}, got {shown}")
    return int(x)


def check_budget(budget: Any, budgets: Sequence[str]) -> str:
    if budget not in budgets:
        raise InvalidInput(f"unknown resolution {budget!r}; this model supports {list(budgets)}")
    return budget


def check_ratio(h_div_w: Any) -> float:
    return _number(h_div_w, "aspect ratio (h/w)", 0.0, 100.0, lo_open=True)


def check_share(share: Any, name: str = "bit-flip share") -> float:
    return _number(0.0 if share is None else share, name, 0.0, 1.0)


def check_scale(scale: Any, n: int, name: str = "scale") -> int:
    """A 0-based scale index of a schedule with n scales."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not float(scale).is_integer() \
            or not 0 <= scale < n:
        raise InvalidInput(f"{name} {scale!r} does not exist: this schedule has scales 0 to {n - 1}")
    return int(scale)


def check_seeds(seed: Any, num_images: Any = 1) -> tuple[int, int]:
    """(seed, count) for images seeded seed, seed + 1, …; all of them must be valid seeds."""
    seed, n = check_seed(seed), check_whole(num_images, "number of images", 1, MAX_IMAGES)
    if seed + n - 1 > MAX_SEED:
        raise InvalidInput(f"seeds run from {seed} to {seed + n - 1}, past the largest seed {MAX_SEED}")
    return seed, n


def check_request(config, prompt, seed: Any = 0, *, negative_prompt: Any = None, guidance: Any = None,
                  temperature: Any = None, top_p: Any = None, greedy: Any = False, h_div_w: Any = 1.0,
                  budget: Optional[str] = None, flip_share: Any = 0.0, flip_scales: Sequence = (),
                  flip_seed: Any = None, num_images: Any = 1) -> tuple[list[str], dict]:
    """Validate one generation request against what the model (`config`, a ModelConfig) supports; returns (clean
    prompts, resolved settings). `InfinityPipeline.check_inputs` is this on its own config; the CLI calls it before
    loading a model so bad input fails at once."""
    from .schedules import num_scales

    prompts = [prompt] if isinstance(prompt, str) or prompt is None else list(prompt)
    if not prompts:
        raise InvalidInput("no prompt given")
    prompts = [clean_prompt(p) for p in prompts]
    seed, n_images = check_seeds(seed, num_images)
    budget = check_budget(config.default_budget if budget is None else budget, list(config.budgets))
    n = num_scales(budget, config.budgets)
    defaults = config.defaults
    out = {
        "seed": seed, "num_images": n_images, "h_div_w": check_ratio(h_div_w), "budget": budget,
        "negative_prompt": clean_prompt(negative_prompt, "negative prompt", allow_empty=True) or None,
        "greedy": bool(greedy), "flip_seed": seed + 1 if flip_seed is None else check_seed(flip_seed),
        "guidance": _per_scale(defaults.get("guidance", 3.0) if guidance is None else guidance, "guidance", n, 0.0,
                               MAX_GUIDANCE),
        "temperature": _per_scale(defaults.get("temperature", 1.0) if temperature is None else temperature,
                                  "temperature", n, 0.0, MAX_TEMPERATURE, lo_open=True),
        "top_p": _number(defaults.get("top_p", 0.0) if top_p is None else top_p, "top-p", 0.0, 1.0),
        "flip_share": check_share(flip_share),
        "flip_scales": sorted({check_scale(s, n, "flip scale") for s in (flip_scales or ())}),
    }
    if out["flip_share"] > 0:
        require_flip_scales(out["flip_scales"])
    return prompts, out


def require_flip_scales(scales: Sequence) -> None:
    """Flipping bits needs somewhere to flip them (the library with a share > 0, the app's Bit flips always)."""
    if not scales:
        raise InvalidInput("choose at least one scale to flip bits at")


def check_choice(value: Any, allowed: Sequence, name: str):
    if value not in allowed:
        raise InvalidInput(f"unknown {name} {value!r}; choose one of {list(allowed)}")
    return value


def open_image(image: Any, max_pixels: int = MAX_IMAGE_PIXELS):
    """An RGB PIL image from an upload (a PIL image or the path of a file the server itself saved), with a clear
    message for what is not an image, is truncated or corrupt, or is too large to decode safely. The size comes
    from the header before any pixel is decoded, so a small file that claims a huge image (a decompression bomb)
    costs nothing."""
    from PIL import Image, UnidentifiedImageError

    if image is None:
        raise InvalidInput("upload an image first")
    if isinstance(image, (str, os.PathLike)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(image) as f:
                    _check_pixels(f.size, max_pixels)
                    f.load()
                    im = f.convert("RGB")  # a copy: the file is closed on leaving
        except InvalidInput:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidInput(f"the image is too large: at most {max_pixels / 1e6:.0f} megapixels") from None
        except UnidentifiedImageError:
            raise InvalidInput("the upload is not an image Pillow can read (PNG, JPEG, WebP, …)") from None
        except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
            raise InvalidInput(f"the image file is damaged or truncated ({e})") from None
    elif isinstance(image, Image.Image):
        im = image
        _check_pixels(im.size, max_pixels)
    else:
        raise InvalidInput("the upload is not an image")
    if im.width < 1 or im.height < 1:
        raise InvalidInput("the image is empty")
    return im if im.mode == "RGB" else im.convert("RGB")


def _check_pixels(size, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise InvalidInput(f"the image is too large ({w}×{h}): at most {max_pixels / 1e6:.0f} megapixels")
