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


def check_generation(pipe, prompt, seed, guidance, temperature, top_p, flip_share, flip_scales, h_div_w,
                     budget: Optional[str]) -> tuple[list[str], dict]:
    """Validate one request against what the model supports; returns (clean prompts, resolved settings)."""
    prompts = [prompt] if isinstance(prompt, str) or prompt is None else list(prompt)
    if not prompts:
        raise InvalidInput("no prompt given")
    prompts = [clean_prompt(p) for p in prompts]
    check_seed(seed)
    ratio = _number(h_div_w, "aspect ratio (h/w)", 0.0, 100.0, lo_open=True)
    if budget is not None and budget not in pipe.config.budgets:
        raise InvalidInput(f"unknown resolution {budget!r}; this model supports {list(pipe.config.budgets)}")
    n = len(pipe.schedule(ratio, budget))
    defaults = pipe.config.defaults
    out = {
        "guidance": _per_scale(defaults.get("guidance", 3.0) if guidance is None else guidance, "guidance", n, 0.0,
                               MAX_GUIDANCE),
        "temperature": _per_scale(defaults.get("temperature", 1.0) if temperature is None else temperature,
                                  "temperature", n, 0.0, MAX_TEMPERATURE, lo_open=True),
        "top_p": _number(defaults.get("top_p", 0.0) if top_p is None else top_p, "top-p", 0.0, 1.0),
        "flip_share": _number(flip_share, "bit-flip share", 0.0, 1.0),
    }
    scales = list(flip_scales or ())
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < n:
            raise InvalidInput(f"flip scale {s!r} does not exist: this schedule has scales 0 to {n - 1}")
    return prompts, out


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
