"""What both training stages share: the bundled model's shape, data mixing, checkpoints, logging."""
from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .. import schedules
from ..config import ModelConfig, model_preset
from ..io import load_file
from ..sampling import flip_bits

log = logging.getLogger("infinity.train")

DEFAULT_PRESET = "small-v2"  # what the training commands build unless --preset says otherwise


def small_model_config(preset: str = DEFAULT_PRESET) -> ModelConfig:
    """A bundled model's whole config (presets live in infinity/config.py)."""
    return model_preset(preset)


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
from ..viz import from_pil as to_tensor  # noqa: E402  (PIL → [−1, 1], the official arithmetic)


def is_small(cfg: ModelConfig, budget: str) -> bool:
    return cfg.budgets[budget] == min(cfg.budgets.values())


def batch_for(cfg: ModelConfig, budget: str, batch_size: int) -> int:
    """`batch_size` images at the smallest budget; larger budgets a quarter per 2 more scales (121 → 521
    tokens: about the same tokens per step)."""
    extra = (cfg.budgets[budget] - min(cfg.budgets.values())) // 2
    return max(1, batch_size // 4**extra)


def pixel_hw(cfg: ModelConfig, h_div_w: float, budget: str) -> tuple[int, int]:
    sched = schedules.scale_schedule(h_div_w, budget, cfg.budgets)
    return schedules.pixel_size(sched, cfg.tokenizer.token_stride)


class Mixture:
    """Batches drawn from several sources at one (aspect ratio, budget) per batch.

    Sources are callables `(index, h, w) -> (PIL image, caption)`; `weights` sets how often each is used;
    `budget_weights` how often each budget. Deterministic given the seed.
    """

    def __init__(self, cfg: ModelConfig, sources: dict, weights: dict, budget_weights: dict, seed: int = 0):
        self.cfg, self.sources, self.seed = cfg, sources, seed
        self.names = list(sources)
        self.weights = [weights[n] for n in self.names]
        self.budgets = list(budget_weights)
        self.bweights = [budget_weights[b] for b in self.budgets]

    def batches(self, batch_size: int, start_step: int = 0) -> Iterator[tuple[int, torch.Tensor, list[str], float, str]]:
        step = start_step
        while True:
            r = random.Random(f"{self.seed}/{step}")
            ratio = r.choice(self.cfg.h_div_w)
            budget = r.choices(self.budgets, self.bweights)[0]
            h, w = pixel_hw(self.cfg, ratio, budget)
            imgs, caps = [], []
            for _ in range(batch_for(self.cfg, budget, batch_size)):
                src = r.choices(self.names, self.weights)[0]
                im, cap = self.sources[src](r.randrange(1 << 30), h, w)
                imgs.append(im)
                caps.append(cap)
            yield step, to_tensor(imgs), caps, ratio, budget
            step += 1


def default_sources(emoji: bool = True, folder: Optional[str] = None, use_scenes: bool = True) -> dict:
    """Scenes (train split), curated emoji and optionally a folder of your own images."""
    from ..data import scenes

    def scene(i, h, w):
        r = random.Random(f"scene/{i}")
        sc = scenes.sample_scene(r, "train")
        return scenes.render_scene(sc, w, h), scenes.caption_scene(sc, r)

    out = {"scenes": scene} if use_scenes else {}
    if emoji:
        from ..data.emoji import EmojiDataset

        ds = {}

        def emo(i, h, w):
            if (h, w) not in ds:
                ds[(h, w)] = EmojiDataset(size=(h, w))
            d = ds[(h, w)]
            d.set_epoch(i)
            item = d[i % len(d)]
            return item["image"], item["caption"]

        out["emoji"] = emo
    if folder:
        from ..data.folder import ImageFolderDataset

        fds = {}

        def own(i, h, w):
            if (h, w) not in fds:
                fds[(h, w)] = ImageFolderDataset(folder, size=(h, w))
            d = fds[(h, w)]
            item = d[i % len(d)]
            return item["image"], item["caption"]

        out["folder"] = own
    if not out:
        raise ValueError("no data: pass --folder, or keep the scenes or the emoji")
    return out


# ----------------------------------------------------------------------------------------------------------------
# checkpoints: plain dicts of tensors and numbers, loadable with weights_only=True
# ----------------------------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, **state) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: an interrupted save never leaves a broken checkpoint


def load_checkpoint(path: Path) -> Optional[dict]:
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def resume(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, Optional[dict]]:
    """Continue from `out/last.pt` when it exists: (step to run next, the saved state)."""
    state = load_checkpoint(out / "last.pt")
    if not state:
        return 0, None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    log.info("resumed at step %d", int(state["step"]))
    return int(state["step"]), state


def setup_logging(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(out / "train.log")])


class Timer:
    def __init__(self, minutes: Optional[float]):
        self.start = time.time()
        self.deadline = self.start + minutes * 60 if minutes else None

    def expired(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    def fraction(self) -> float:
        """Share of the stage's minutes spent (0 without a limit)."""
        if self.deadline is None:
            return 0.0
        return min(1.0, (time.time() - self.start) / (self.deadline - self.start))


def warm_start(model: torch.nn.Module, folder: Path, filename: str = "transformer.safetensors") -> None:
    """Start from another model's weights (fresh optimizer and LR schedule): fine-tuning the bundled model on your
    own data, continuing after the tokenizer was refined, or sharpening a decoder. `folder` is a model folder
    (`filename` inside it) or the file itself. The shapes must match exactly (fp16 files are cast on copy), except
    that a transformer may be deeper than the source: see `grow_depth`."""
    path = Path(folder)
    path = path / filename if path.is_dir() else path
    state = load_file(path)
    if hasattr(model, "blocks") and _depth(state) not in (None, len(model.blocks)):
        state = grow_depth(state, model)
    model.load_state_dict(state, strict=True)
    log.info("initialised from %s", path)


def _depth(state: dict) -> Optional[int]:
    idx = {int(k.split(".")[3]) for k in state if k.startswith("block_chunks.0.module.")}
    return max(idx) + 1 if idx else None


def grow_depth(state: dict, model: torch.nn.Module) -> dict:
    """A shallower transformer's weights for a deeper one that computes the same function at first.

    Source block i goes to position round(i·D/d); every other block starts as a copy of the source block before it
    with its three residual outputs (self-attention, cross-attention, FFN projections) zeroed, so it adds nothing
    until training moves them (zero-initialised residual branches). Only one chunk (block_chunks=1) is handled."""
    d, D = _depth(state), len(model.blocks)
    if D < d or model.cfg.block_chunks != 1:
        raise ValueError(f"can grow a 1-chunk transformer from {d} to more blocks, not to {D}")
    prefix = "block_chunks.0.module."
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    placed = {round(i * D / d): i for i in range(d)}
    src = 0
    for j in range(D):
        fresh = j not in placed
        src = placed.get(j, src)
        for k, v in state.items():
            if k.startswith(f"{prefix}{src}."):
                name = k[len(f"{prefix}{src}."):]
                zero = fresh and name.startswith(_RESIDUAL_OUT)
                out[f"{prefix}{j}.{name}"] = torch.zeros_like(v) if zero else v.clone()
    return out


_RESIDUAL_OUT = ("sa.proj.", "ca.proj.", "ffn.fc2.")


def flip_fn(strength: float, gen: torch.Generator, n_scales: int):
    """Bitwise self-correction: per scale a share p ~ U{0, .01, …, strength}, each bit flips with probability p."""
    if strength <= 0:
        return None
    steps = int(round(strength * 100))
    ps = torch.randint(0, steps + 1, (n_scales,), generator=gen).float() / 100

    def flip(s, bits):
        if ps[s] == 0:  # no draws at all: a scale left clean does not advance the generator
            return bits
        return flip_bits(bits, ps[s], gen)[0]  # a CPU generator draws the same bits on any device

    return flip


def parse_budget_weights(text: Optional[str], cfg: ModelConfig) -> dict:
    """'0.016M=0.85,0.004M=0.15' → {budget: weight}; None → every budget weighted by its share of training
    images at the default (the smallest budget 1, larger ones 1/4 per two more scales)."""
    if not text:
        return {b: 1.0 / 4 ** ((n - min(cfg.budgets.values())) // 2) for b, n in cfg.budgets.items()}
    out = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        if name.strip() not in cfg.budgets:
            raise ValueError(f"unknown budget {name.strip()!r}; this model has {sorted(cfg.budgets)}")
        out[name.strip()] = float(w)
    return {b: out.get(b, 0.0) for b in cfg.budgets}


def add_preset_argument(p) -> None:
    from ..config import MODEL_PRESETS

    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(k for k in MODEL_PRESETS if k.startswith("small")),
                   help="whole-model preset from infinity/config.py (architecture, budgets, default resolution)")


def compile_blocks(model: torch.nn.Module) -> None:
    """torch.compile each transformer block's forward for training (bench/train_throughput.py: ~25 % more images/s
    on two CPU cores). Static shapes: every (ratio, budget) bucket is one shape, compiled once; the blocks share one
    code object, so a new shape costs one block's compilation, not the model's."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for b in model.blocks:
        b.forward = torch.compile(b.forward, dynamic=False)


def cosine_lr(step: int, total: int, base: float, warmup: int, spent: float = 0.0) -> float:
    """Linear warm-up over `warmup` steps, then a cosine to 0.1 × `base` that ends at step `total` or when
    `spent` (the share of a time limit used) reaches 1, whichever comes first: a stage limited by minutes on a
    machine of unknown speed still ends its cosine."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, max((step - warmup) / max(1, total - warmup), spent))
    return float(base * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p))))  # a Python float: checkpoints stay weights_only-loadable
