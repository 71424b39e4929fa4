"""`InfinityPipeline`: prompt → image, exposing every scale.

    pipe = InfinityPipeline.from_pretrained()          # the small model shipped in assets/, offline
    out = pipe("a red circle on a blue background", seed=0)
    out.images[0].save("x.png")

`__call__` reads as numbered steps: check inputs, encode the prompt, prepare the schedule, sample the scales,
decode. `stream` yields each scale as it is produced (for live previews).
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import torch
from PIL import Image

from . import schedules
from .config import ModelConfig, ScaleState, TextCondition
from .io import CheckpointError, hub_download, load_file, save_safetensors
from .sampling import FlipSpec, iter_scales
from .tokenizer import BitwiseTokenizer, build_tokenizer
from .transformer import InfinityTransformer, build_transformer
from .viz import to_pil

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "infinity-small"
OFFICIAL_REPO = "FoundationVision/Infinity"
OFFICIAL_FILES = {"transformer": "infinity_2b_reg.pth", "tokenizer": "infinity_vae_d32reg.pth"}


@dataclass
class Prepared:
    """A checked request: text condition, schedule, sampler keywords, the settings to record."""

    cond: TextCondition
    schedule: list[tuple[int, int]]
    kwargs: dict
    settings: dict
    truncated: list[bool]
    seconds: float
    seeds: tuple[int, int]  # sampling seed, bit-flip seed


@dataclass
class GenerationOutput:
    """Images (PIL RGB), the seed used, per-scale states and timings (seconds)."""

    images: list[Image.Image]
    seed: int
    states: list[ScaleState]
    schedule: list[tuple[int, int]]
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    truncated: list[bool] = field(default_factory=list)


class InfinityPipeline:
    def __init__(self, tokenizer: BitwiseTokenizer, transformer: InfinityTransformer, text_encoder,
                 config: Optional[ModelConfig] = None, compute_dtype: torch.dtype = torch.float32):
        self.tokenizer, self.transformer, self.text_encoder = tokenizer, transformer, text_encoder
        self.config = config or ModelConfig(name="custom", tokenizer=tokenizer.cfg, transformer=transformer.cfg)
        self.compute_dtype = compute_dtype  # bf16/fp16: blocks in that dtype under autocast, the rest float32

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: Union[str, Path, None] = None, device=None, dtype: Optional[torch.dtype] = None,
                        text_encoder: Optional[str] = None, int8: bool = False) -> "InfinityPipeline":
        """No source: the small model in assets/ (offline). A folder with `config.json` (our format, see
        `save_pretrained`), a folder with the official files (`infinity_2b_reg.pth`, `infinity_vae_d32reg.pth`,
        optionally `flan-t5-xl/`), or the hub id `FoundationVision/Infinity` (downloaded; clear error offline).
        `int8`: CPU only, the blocks' linear layers in int8 (faster, close to but not equal to float32)."""
        from .text import load_text_encoder

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        folder = Path(source) if source is not None else ASSETS
        if source is None and not (folder / "config.json").is_file():
            raise CheckpointError(f"the bundled model is missing from {folder}: train it with "
                                  "`python -m infinity.train.transformer` (README) or pass a source")
        if (folder / "config.json").is_file():
            cfg = ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
            tok = build_tokenizer(cfg.tokenizer, device="meta", weights=load_file(folder / "tokenizer.safetensors"))
            tf = build_transformer(cfg.transformer, device="meta", weights=load_file(folder / "transformer.safetensors"))
            te = load_text_encoder(text_encoder or cfg.text_encoder, device=device)
        else:
            cfg = ModelConfig.from_dict(_official_2b_config())
            files = {k: folder / f for k, f in OFFICIAL_FILES.items()}
            if not folder.is_dir():
                if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
                    raise CheckpointError(f"model folder not found: {source}")
                files = {k: hub_download(str(source), f) for k, f in OFFICIAL_FILES.items()}
            tok = build_tokenizer("vae-d32", device="meta", weights=files["tokenizer"])
            tf = build_transformer("infinity-2b", device="meta", weights=files["transformer"])
            t5 = folder / "flan-t5-xl"
            te = load_text_encoder(text_encoder or (str(t5) if t5.is_dir() else "google/flan-t5-xl"), device=device)
        # reduced precision as the official code: the blocks in `dtype` and autocast, everything else float32
        tok, tf = tok.to(device), tf.to(device)
        if dtype is not None and dtype != torch.float32:
            tf.block_chunks.to(dtype)
        if int8:
            from .transformer.int8 import quantize_int8

            quantize_int8(tf)
        return cls(tok.eval(), tf.eval(), te, cfg, compute_dtype=dtype or torch.float32)

    def save_pretrained(self, folder: Union[str, Path], half: bool = True) -> None:
        """Safetensors weights (fp16 by default) plus `config.json`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cast = (lambda t: t.half() if half and t.is_floating_point() else t)
        for name, m in (("tokenizer", self.tokenizer), ("transformer", self.transformer)):
            save_safetensors({k: cast(v.detach().cpu()) for k, v in m.state_dict().items()}, folder / f"{name}.safetensors")
        (folder / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))

    # -- what the model supports ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.transformer.pos_start.device

    def aspect_ratios(self) -> list[float]:
        return list(self.config.h_div_w) or schedules.templates()

    def budgets(self) -> list[str]:
        return list(self.config.budgets)

    def schedule(self, h_div_w: float = 1.0, budget: Optional[str] = None) -> list[tuple[int, int]]:
        """Token-grid schedule for the nearest supported aspect ratio at a supported budget."""
        budget = budget or self.config.default_budget
        if budget not in self.config.budgets:
            raise ValueError(f"unknown pixel budget {budget!r}; this model supports {self.budgets()}")
        t = schedules.nearest_template(h_div_w, self.aspect_ratios())
        return schedules.scale_schedule(t, budget, self.config.budgets)

    def pixel_size(self, h_div_w: float = 1.0, budget: Optional[str] = None) -> tuple[int, int]:
        return schedules.pixel_size(self.schedule(h_div_w, budget), self.config.tokenizer.token_stride)

    # -- generation -----------------------------------------------------------------------------------------------
    def encode_prompt(self, prompts: Sequence[str]) -> tuple[TextCondition, list[bool]]:
        cond, truncated = self.text_encoder.encode(list(prompts), return_truncated=True)
        return cond, truncated

    def prepare(self, prompt: Union[str, Sequence[str]], seed: int = 0, *, negative_prompt: Optional[str] = None,
                guidance=None, temperature=None, top_p: Optional[float] = None, greedy: bool = False,
                h_div_w: float = 1.0, budget: Optional[str] = None, flip_share: float = 0.0,
                flip_scales: Sequence[int] = (), flip_seed: Optional[int] = None,
                forced_bits: Sequence[torch.Tensor] = ()) -> "Prepared":
        """Steps 1–3: check inputs, encode the prompt (once), prepare the schedule and the generators."""
        from .validation import check_generation, clean_prompt

        t0 = time.perf_counter()
        prompts, d = check_generation(self, prompt, seed, guidance, temperature, top_p, flip_share, flip_scales,
                                      h_div_w, budget)
        negative_prompt = clean_prompt(negative_prompt, "negative prompt", allow_empty=True) or None
        template = schedules.nearest_template(h_div_w, self.aspect_ratios())
        budget = budget or self.config.default_budget
        sched = self.schedule(template, budget)
        cond, truncated = self.encode_prompt(prompts)
        neg = self.encode_prompt([negative_prompt])[0] if negative_prompt else None
        kwargs = dict(h_div_w=template, negative=neg, guidance=d["guidance"], temperature=d["temperature"],
                      top_p=d["top_p"], greedy=greedy, flips=FlipSpec(d["flip_share"], tuple(flip_scales)),
                      forced_bits=forced_bits, patchify=self.config.tokenizer.spatial_patchify,
                      autocast_dtype=self.compute_dtype if self.compute_dtype != torch.float32 else None)
        seeds = (seed, flip_seed if flip_seed is not None else seed + 1)
        settings = dict(prompt=prompts[0] if isinstance(prompt, str) else prompts, negative_prompt=negative_prompt,
                        seed=seed, guidance=d["guidance"], temperature=d["temperature"], top_p=d["top_p"],
                        greedy=greedy, h_div_w=template, budget=budget, flip_share=d["flip_share"],
                        flip_scales=list(flip_scales), model=self.config.name)
        return Prepared(cond, sched, kwargs, settings, truncated, time.perf_counter() - t0, seeds)

    def stream(self, prompt, seed: int = 0, **kw) -> Iterator[ScaleState]:
        """Yield each scale's state as it is sampled (live previews). Arguments as for `__call__`."""
        p = kw.pop("prepared", None) or self.prepare(prompt, seed, **kw)
        # fresh generators per run: streaming the same prepared request twice gives the same image
        gen = torch.Generator(self.device).manual_seed(p.seeds[0])
        fgen = torch.Generator(self.device).manual_seed(p.seeds[1])
        return iter_scales(self.transformer, p.cond, p.schedule, generator=gen, flip_generator=fgen, **p.kwargs)

    @torch.no_grad()
    def __call__(self, prompt: Union[str, Sequence[str]], seed: int = 0, *, callback=None, **kw) -> GenerationOutput:
        """Generate one image per prompt.

        Keywords: negative_prompt; guidance / temperature: scalar or one value per scale (model defaults when
        None); top_p: nucleus filter on each bit (0 = off); greedy: argmax per bit; h_div_w: aspect ratio
        (nearest supported template); budget: a pixel budget the model declares; flip_share / flip_scales:
        deliberately flip that share of the sampled bits at those scales (self-correction demo, paper §3.3);
        flip_seed; forced_bits: keep an image's first scales (variations); callback(state) after each scale.
        """
        t0 = time.perf_counter()
        p = self.prepare(prompt, seed, **kw)  # 1.–3. check inputs, encode prompt, prepare schedule
        states = []
        for st in self.stream(prompt, seed, prepared=p):  # 4. sample scales
            states.append(st)
            if callback is not None:
                callback(st)
        t_sample = time.perf_counter() - t0 - p.seconds
        images = self.decode(states[-1].codes_sum)  # 5. decode
        timings = {"prepare": p.seconds, "sampling": t_sample, "decode": time.perf_counter() - t0 - p.seconds - t_sample,
                   "scales": [s.seconds for s in states], "total": time.perf_counter() - t0}
        return GenerationOutput(images, seed, states, p.schedule, timings, p.settings, p.truncated)

    @torch.no_grad()
    def decode(self, codes_sum: torch.Tensor, grid: Optional[tuple[int, int]] = None) -> list[Image.Image]:
        """Running code sum → PIL RGB images (decode any scale's sum for its preview; a smaller `grid` gives a
        cheaper, smaller preview, see `preview_grid`)."""
        return to_pil(self.tokenizer.codes_to_image(codes_sum, grid).float().cpu())

    @torch.no_grad()
    def encode_image(self, image: Image.Image, h_div_w: Optional[float] = None, budget: Optional[str] = None,
                     flip=None):
        """An image → (resized image, per-scale pyramid) at the nearest supported size (tokenizer tab,
        variations). `flip(scale, bits) -> bits` re-quantizes later scales around flipped bits (paper §3.3)."""
        from .data.folder import resize_cover_crop
        from .viz import from_pil as to_tensor

        r = h_div_w or image.height / image.width
        sched = self.schedule(r, budget)
        H, W = schedules.pixel_size(sched, self.config.tokenizer.token_stride)
        img = resize_cover_crop(image.convert("RGB"), H, W)
        vae_sched = schedules.patchify_schedule(sched) if self.config.tokenizer.spatial_patchify else sched
        feats = self.tokenizer.image_to_features(to_tensor([img]).to(self.device, self._dtype()))
        pyr = self.tokenizer.features_to_bits(feats, vae_sched, flip=flip)
        return img, pyr

    def _dtype(self):
        return next(self.tokenizer.parameters()).dtype


def preview_grid(scale_hw: Sequence[int], final_hw: Sequence[int], latent_hw: Optional[Sequence[int]] = None,
                 factor: int = 2) -> tuple[int, int]:
    """Latent grid at which to decode the preview after a scale of size `scale_hw` (of a schedule ending at
    `final_hw`; `latent_hw` is the tokenizer's grid when it differs, e.g. 2× under spatial patchify).

    After scale k the running sum holds nothing finer than that scale's grid (upsampled), so decoding it at
    `factor`× that grid shows all there is at a fraction of a full decode's cost (∝ area: at 1024² the 13
    previews of a generation cost about 0.42 of 13 full decodes). The last scale is always decoded in full."""
    latent_hw = final_hw if latent_hw is None else latent_hw
    return tuple(min(int(L), factor * int(s) * int(L) // int(f)) for s, f, L in zip(scale_hw, final_hw, latent_hw))


def _official_2b_config() -> dict:
    from .config import TOKENIZER_PRESETS, TRANSFORMER_PRESETS

    cfg = ModelConfig(name="infinity-2b", tokenizer=TOKENIZER_PRESETS["vae-d32"],
                      transformer=TRANSFORMER_PRESETS["infinity-2b"], default_budget="1M",
                      defaults={"guidance": 3.0, "temperature": 0.5, "top_p": 0.97})
    return cfg.to_dict()
