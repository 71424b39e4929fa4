"""Image conversions every layer needs: PIL ↔ tensor in the official arithmetic, resize-to-cover and centre crop,
and the two pixel-difference measures the app and the benches report (PSNR, mean absolute difference).

A low module (torch, numpy, PIL only) so that the pipeline, viz and the app share one copy of each rule instead of
importing `viz` or `data` sideways for them.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image


def from_pil(images: Sequence[Image.Image]) -> torch.Tensor:
    """RGB PIL images of one size → (B, 3, H, W) in [-1, 1] with the official arithmetic (u8/255, then x + x − 1,
    bit for bit), the tokenizer's input."""
    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
    t = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
    return t + t - 1


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Decoder output (B, 3, H, W) in [-1, 1] (or one (3, H, W) image) -> list of RGB PIL images.

    Pixels are (x + 1) / 2 * 255 rounded to the nearest integer and clamped to [0, 255]. The official code truncates
    instead (`.to(torch.uint8)` after scaling), which darkens every pixel by half a level on average; rounding is
    the unbiased choice, and the two never differ by more than one level.
    """
    x = torch.as_tensor(images).detach().to("cpu", torch.float32)
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 3, H, W) images, got shape {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    arr = x.permute(0, 2, 3, 1).contiguous().numpy()
    return [Image.fromarray(a, "RGB") for a in arr]


def resize_cover_crop(img: Image.Image, height: int, width: int) -> Image.Image:
    """Scale so the image covers ``height x width`` (LANCZOS), then crop the centre."""
    img = img.convert("RGB")
    scale = max(height / img.height, width / img.width)
    nw, nh = max(width, round(img.width * scale)), max(height, round(img.height * scale))
    img = img.resize((nw, nh), Image.LANCZOS)
    left, top = (nw - width) // 2, (nh - height) // 2
    return img.crop((left, top, left + width, top + height))


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, np.float32)


def _mse(a, b) -> float:
    if isinstance(a, torch.Tensor):  # tensors stay where they are (a training batch on the GPU is not copied)
        return float((a.detach().float() - b.detach().float()).pow(2).mean())
    return float(((_pixels(a) - _pixels(b)) ** 2).mean())


def psnr(a, b, peak: float = 255.0) -> float:
    """PSNR in dB between two images of one size: PIL images or uint8-range arrays (peak 255), or tensors with
    `peak` their value range (2 for images in [−1, 1], as the tokenizer's training logs it); inf when equal."""
    mse = _mse(a, b)
    return float("inf") if mse == 0 else 10 * math.log10(peak ** 2 / mse)


def mean_abs_diff(a, b) -> float:
    """Mean absolute difference in grey levels (0–255) between two images of one size."""
    return float(np.abs(_pixels(a) - _pixels(b)).mean())
