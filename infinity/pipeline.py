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
from .config import MODEL_PRESETS, ModelConfig, ScaleState, TextCondition
from .io import CheckpointError, hub_download, load_file, save_safetensors
from .sampling import FlipSpec, iter_scales
from .tokenizer import BitwiseTokenizer, build_tokenizer
from .transformer import InfinityTransformer, build_transformer
from .images import from_pil, resize_cover_crop, to_pil

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "infinity-small"
from .loading import OFFICIAL_FILES, OFFICIAL_REPO, OFFICIAL_VARIANTS  # noqa: E402,F401 (re-exported)


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
    generator: Optional[torch.Generator] = None  # the caller's, used instead of a fresh one seeded with `seed`


@dataclass
class StreamStep(ScaleState):
    """A `ScaleState` as `stream` yields it, plus its decoded preview when asked for (`previews`, one RGB image
    per prompt), the schedule it belongs to and the seconds since the request started."""

    previews: list[Image.Image] = field(default_factory=list)
    schedule: list[tuple[int, int]] = field(default_factory=list)
    elapsed: float = 0.0


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
                        text_encoder=None, int8: bool = False, *, variant: Optional[str] = None, config=None,
                        text_encoder_device: Optional[str] = None, offload_text_encoder: bool = False,
                        offload_blocks: bool = False, packed: Optional[bool] = None) -> "InfinityPipeline":
        """Load a whole model.

        `source`: None → the small model in assets/ (offline); a folder with `config.json` (our format, see
        `save_pretrained`); a folder with official files (`infinity_2b_reg.pth` + `infinity_vae_d32reg.pth`,
        `infinity_8b_weights/` or `infinity_8b_512x512_weights/` + `infinity_vae_d56_f8_14_patchify.pth`,
        optionally `flan-t5-xl/`); the hub id `FoundationVision/Infinity` (downloaded; clear error offline); or a
        variant name (`infinity-2b`, `infinity-8b`, `infinity-8b-512`, short `2b`/`8b`/`8b-512`) for that variant
        from the hub. `variant` picks among the official models explicitly; without it the hub id means 2B and a
        folder means the variant whose files it holds (2B first when it holds several). Each variant comes with
        its VAE, pixel budgets, sampling defaults and T5 (`infinity.loading`). `config` (a ModelConfig or preset
        name) overrides the variant's.

        `dtype` (e.g. torch.bfloat16 on a GPU): the blocks in that dtype under autocast, the rest float32, as the
        official code. `int8`: CPU only, the blocks' linear layers in int8 (faster, close to float32).
        `packed`: CPU float32 only, the blocks' linear layers with weights reordered once for oneDNN (faster;
        logits within ~1e-6 of the default, inference only: `transformer/packed.py`). None (the default) packs
        the official architectures loaded for float32 on a CPU without int8 or block offloading, and nothing
        else (`loading.packs_by_default`); False never packs (to train or save the weights).
        Memory: `text_encoder_device="cpu"` runs T5 on the CPU; `offload_text_encoder` keeps T5 in host memory
        and copies it to the device for each prompt; `offload_blocks` keeps the transformer blocks in host memory
        and copies each to the device just before it runs. Outputs are identical in every memory mode."""
        from .loading import MemoryPlan, load_parts, load_text, resolve

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        memory = MemoryPlan(text_encoder_device, offload_text_encoder, offload_blocks)
        if int8 and (offload_blocks or device.type != "cpu"):
            from .validation import InvalidInput

            raise InvalidInput("int8 inference is for CPUs, without block offloading; on a GPU use bf16")
        if packed and (int8 or offload_blocks or device.type != "cpu" or dtype not in (None, torch.float32)):
            from .validation import InvalidInput

            raise InvalidInput("packed linear layers are for float32 on a CPU, without int8 or block offloading")
        resolved = resolve(source, variant, bundled=ASSETS)
        tok, tf, cfg = load_parts(resolved, device, dtype, memory, int8=int8, config=config, packed=packed)
        te = load_text(resolved, cfg, device, text_encoder, memory)
        return cls(tok, tf, te, cfg, compute_dtype=dtype or torch.float32)

    def save_pretrained(self, folder: Union[str, Path], half: bool = True) -> None:
        """Safetensors weights (fp16 by default; files over 9 MB sharded with an index, `io.save_component`) plus
        `config.json`. Refused for packed or int8 models: their block weights are no longer plain tensors."""
        from .io import save_component
        from .validation import InvalidInput

        for mode, flag in (("packed", "packed=False / --no-packed"), ("int8", "int8=False")):
            if getattr(self.transformer, mode, False):
                raise InvalidInput(f"this model was loaded {mode} (inference only: its block weights were "
                                   f"reordered for the CPU kernels); load it with {flag} to save or train it")

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cast = (lambda t: t.half() if half and t.is_floating_point() else t)
        for name, m in (("tokenizer", self.tokenizer), ("transformer", self.transformer)):
            save_component({k: cast(v.detach().cpu()) for k, v in m.state_dict().items()}, folder, name)
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
        from .validation import check_budget

        budget = check_budget(budget or self.config.default_budget, self.budgets())
        t = schedules.nearest_template(h_div_w, self.aspect_ratios())
        return schedules.scale_schedule(t, budget, self.config.budgets)

    def pixel_size(self, h_div_w: float = 1.0, budget: Optional[str] = None) -> tuple[int, int]:
        return schedules.pixel_size(self.schedule(h_div_w, budget), self.config.tokenizer.token_stride)

    # -- generation -----------------------------------------------------------------------------------------------
    def encode_prompt(self, prompts: Sequence[str]) -> tuple[TextCondition, list[bool]]:
        cond, truncated = self.text_encoder.encode(list(prompts), return_truncated=True)
        return cond, truncated

    def check_inputs(self, prompt: Union[str, Sequence[str]], seed: int = 0, *,
                     negative_prompt: Optional[str] = None, guidance=None, temperature=None,
                     top_p: Optional[float] = None, greedy: bool = False, h_div_w: float = 1.0,
                     budget: Optional[str] = None, flip_share: float = 0.0, flip_scales: Sequence[int] = (),
                     flip_seed: Optional[int] = None, num_images: int = 1) -> tuple[list[str], dict]:
        """Judge a request before any work is done (diffusers' `check_inputs`): returns (clean prompts, resolved
        settings) or raises `InvalidInput` with one sentence. The only check on the way from the app, the API, the
        CLI or Python to the sampler; `num_images` (seeds seed … seed+n−1) is for callers that loop over seeds."""
        from .validation import check_request

        prompts, d = check_request(self.config, prompt, seed, negative_prompt=negative_prompt, guidance=guidance,
                                   temperature=temperature, top_p=top_p, greedy=greedy, h_div_w=h_div_w,
                                   budget=budget, flip_share=flip_share, flip_scales=flip_scales,
                                   flip_seed=flip_seed, num_images=num_images)
        return prompts, d

    def prepare(self, prompt: Union[str, Sequence[str]], seed: int = 0, *, forced_bits: Sequence[torch.Tensor] = (),
                generator: Optional[torch.Generator] = None, **kw) -> Prepared:
        """Steps 1–3: check inputs, encode the prompt (once), prepare the schedule. Keywords as `check_inputs`."""
        t0 = time.perf_counter()
        prompts, d = self.check_inputs(prompt, seed, **kw)
        template = schedules.nearest_template(d["h_div_w"], self.aspect_ratios())
        sched = self.schedule(template, d["budget"])
        cond, truncated = self.encode_prompt(prompts)
        neg = self.encode_prompt([d["negative_prompt"]])[0] if d["negative_prompt"] else None
        kwargs = dict(h_div_w=template, negative=neg, guidance=d["guidance"], temperature=d["temperature"],
                      top_p=d["top_p"], greedy=d["greedy"], flips=FlipSpec(d["flip_share"], tuple(d["flip_scales"])),
                      forced_bits=forced_bits, patchify=self.config.tokenizer.spatial_patchify,
                      autocast_dtype=self.compute_dtype if self.compute_dtype != torch.float32 else None)
        settings = dict(prompt=prompts[0] if isinstance(prompt, str) else prompts,
                        negative_prompt=d["negative_prompt"], seed=d["seed"], guidance=d["guidance"],
                        temperature=d["temperature"], top_p=d["top_p"], greedy=d["greedy"], h_div_w=template,
                        budget=d["budget"], flip_share=d["flip_share"], flip_scales=d["flip_scales"],
                        model=self.config.name)
        return Prepared(cond, sched, kwargs, settings, truncated, time.perf_counter() - t0,
                        (d["seed"], d["flip_seed"]), generator)

    def stream(self, prompt: Union[str, Sequence[str], None] = None, seed: int = 0, *,
               previews: Union[bool, str] = False, prepared: Optional[Prepared] = None, **kw) -> Iterator[StreamStep]:
        """Yield each scale as it is sampled: the one loop behind `__call__`, the app's live view and the CLI.

        `previews`: False (none), True (decoded at `preview_grid`: everything the running sum holds, at a fraction
        of the cost; the last scale in full) or "full". Other keywords as `__call__`, or a `prepared` request."""
        t0 = time.perf_counter()
        p = prepared or self.prepare(prompt, seed, **kw)
        # fresh generators per run: streaming the same prepared request twice gives the same image
        gen = p.generator or torch.Generator(self.device).manual_seed(p.seeds[0])
        fgen = torch.Generator(self.device).manual_seed(p.seeds[1])
        final = p.schedule[-1]
        for st in iter_scales(self.transformer, p.cond, p.schedule, generator=gen, flip_generator=fgen, **p.kwargs):
            shown = []
            if previews:
                grid = None if previews == "full" else preview_grid(p.schedule[st.index], final,
                                                                    st.codes_sum.shape[-2:])
                shown = self.decode(st.codes_sum, grid)
            yield StreamStep(**vars(st), previews=shown, schedule=p.schedule,
                             elapsed=p.seconds * (prepared is None) + time.perf_counter() - t0)

    @torch.no_grad()
    def __call__(self, prompt: Union[str, Sequence[str]], seed: int = 0, *, negative_prompt: Optional[str] = None,
                 guidance=None, temperature=None, top_p: Optional[float] = None, greedy: bool = False,
                 h_div_w: float = 1.0, budget: Optional[str] = None, flip_share: float = 0.0,
                 flip_scales: Sequence[int] = (), flip_seed: Optional[int] = None,
                 forced_bits: Sequence[torch.Tensor] = (), generator: Optional[torch.Generator] = None,
                 callback=None) -> GenerationOutput:
        """Generate one image per prompt (a list of prompts makes a batch).

        Args:
            prompt: text, or a list of texts.
            seed: seeds the sampling generator (0 … 2³¹−1); ignored for sampling when `generator` is given.
            negative_prompt: replaces the empty condition on the unguided side of classifier-free guidance.
            guidance: CFG scale, one number or one per scale (model default when None; 1 = no guidance).
            temperature: > 0, one number or one per scale (model default when None).
            top_p: nucleus filter on each bit, 0 = off (model default when None).
            greedy: take the more likely value of every bit (the official top-k of 1).
            h_div_w: aspect ratio height / width; the nearest template the model supports is used.
            budget: a pixel budget the model declares (`pipe.budgets()`), default `config.default_budget`.
            flip_share: share of sampled bits to flip on purpose at `flip_scales` (self-correction, paper §3.3).
            flip_scales: 0-based scale indices to flip bits at (required when flip_share > 0).
            flip_seed: seeds the flip generator (default seed + 1), separate from sampling's draws.
            forced_bits: per-scale bits (VAE grid) that replace the first scales: variations of an image.
            generator: a `torch.Generator` on the pipeline's device for the sampling draws (diffusers' habit).
            callback: called with each scale's state as it is produced.

        Steps: 1.–3. check inputs, encode the prompt, prepare the schedule (`prepare`); 4. sample the scales
        (`stream`); 5. decode. Bad input raises `InvalidInput` before any sampling.
        """
        t0 = time.perf_counter()
        p = self.prepare(prompt, seed, negative_prompt=negative_prompt, guidance=guidance, temperature=temperature,
                         top_p=top_p, greedy=greedy, h_div_w=h_div_w, budget=budget, flip_share=flip_share,
                         flip_scales=flip_scales, flip_seed=flip_seed, forced_bits=forced_bits, generator=generator)
        states = []
        for st in self.stream(prepared=p):  # 4. sample scales
            states.append(st)
            if callback is not None:
                callback(st)
        t_sample = time.perf_counter() - t0 - p.seconds
        images = self.decode(states[-1].codes_sum)  # 5. decode
        timings = {"prepare": p.seconds, "sampling": t_sample, "decode": time.perf_counter() - t0 - p.seconds - t_sample,
                   "scales": [s.seconds for s in states], "total": time.perf_counter() - t0}
        return GenerationOutput(images, p.seeds[0], states, p.schedule, timings, p.settings, p.truncated)

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
        r = h_div_w or image.height / image.width
        sched = self.schedule(r, budget)
        H, W = schedules.pixel_size(sched, self.config.tokenizer.token_stride)
        img = resize_cover_crop(image.convert("RGB"), H, W)
        vae_sched = schedules.patchify_schedule(sched) if self.config.tokenizer.spatial_patchify else sched
        feats = self.tokenizer.image_to_features(from_pil([img]).to(self.device, self._dtype()))
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
