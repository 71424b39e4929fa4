"""Sampling scale by scale: guidance, temperature, greedy / top-p over bits, bit flips, forced scales.

Plain functions that receive the models. Randomness comes only from caller-given generators: one for sampling,
another for bit flips, so a clean and a flipped run from the same seed share their sampling draws and differ only
by the flips and their consequences (paper §3.3, self-correction).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import torch

from .config import ScaleState, TextCondition
from .tokenizer import quantizer as Q

PerScale = Union[float, Sequence[float]]


def per_scale(value: PerScale, n: int, name: str) -> list[float]:
    """Broadcast a scalar to every scale, or check a per-scale list."""
    if isinstance(value, (int, float)):
        return [float(value)] * n
    vals = [float(v) for v in value]
    if len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} values but the schedule has {n} scales")
    return vals


@dataclass(frozen=True)
class FlipSpec:
    """Flip `share` of the sampled bits at `scales` (indices into the schedule); draws from its own generator."""

    share: float = 0.0
    scales: tuple[int, ...] = ()

    def active(self, s: int) -> bool:
        return self.share > 0 and s in self.scales


def flip_bits(bits: torch.Tensor, share: float, generator: Optional[torch.Generator] = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each bit with probability `share` (one uniform draw per bit from `generator`, on the generator's device,
    so a CPU generator draws the same bits for CUDA tensors). Returns (flipped bits, mask of the flipped positions,
    on the bits' device). The one rule for deliberate bit errors: the sampler's self-correction demo, the app's
    tokenizer view and training's bitwise self-correction all call it (paper §3.3)."""
    device = generator.device if generator is not None else bits.device
    mask = (torch.rand(bits.shape, generator=generator, device=device) < share).to(bits.device)
    return bits ^ mask.to(bits.dtype), mask


def sample_bits(logits_BLd2: torch.Tensor, top_p: float = 0.0, greedy: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Bits from per-bit logit pairs (…, 2) → (…) uint8.

    Greedy takes the larger logit (what the official top-k of 1 does). Otherwise one multinomial draw per bit
    from the softmax, as the official sampler does, after the nucleus filter: with only two classes, top-p drops
    the minority bit when its probability is ≤ 1 − top_p. A top-k above 1 would keep both classes, so it is not
    offered: it cannot change anything.
    """
    if greedy:
        return (logits_BLd2[..., 1] > logits_BLd2[..., 0]).to(torch.uint8)
    logits = logits_BLd2.float()
    if top_p > 0:
        probs = logits.softmax(-1)
        drop = (probs <= 1 - top_p) & (probs < probs.amax(-1, keepdim=True))  # never the larger one
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(-1).reshape(-1, 2)
    draw = torch.multinomial(probs, 1, replacement=True, generator=generator)
    return draw.view(logits_BLd2.shape[:-1]).to(torch.uint8)


@torch.no_grad()
def iter_scales(
    transformer,
    cond: TextCondition,
    schedule: Sequence[tuple[int, int]],
    *,
    h_div_w: Optional[float] = None,
    negative: Optional[TextCondition] = None,
    guidance: PerScale = 3.0,
    temperature: PerScale = 1.0,
    top_p: float = 0.0,
    greedy: bool = False,
    generator: Optional[torch.Generator] = None,
    flips: FlipSpec = FlipSpec(),
    flip_generator: Optional[torch.Generator] = None,
    forced_bits: Sequence[torch.Tensor] = (),
    patchify: bool = False,
    autocast_dtype: Optional[torch.dtype] = None,
) -> Iterator[ScaleState]:
    """Yield each scale's state as soon as it is sampled (previews can stream).

    `schedule` is on the transformer's token grid; with `patchify` the bits are handed out on the VAE grid (2×).
    `forced_bits[s]` (VAE grid) replaces the sampled bits of the first len(forced_bits) scales: variations of an
    image keep its coarse layout (the draws still happen, so the generator advances as in a free run).
    `autocast_dtype` (e.g. bfloat16 on a GPU) runs the transformer under autocast, as the official code does.
    """
    K = len(schedule)
    cfgs, taus = per_scale(guidance, K, "guidance"), per_scale(temperature, K, "temperature")
    if any(t <= 0 for t in taus):
        raise ValueError("temperature must be > 0")
    B = cond.batch_size
    dev = transformer.pos_start.device
    cond = cond.to(dev)
    use_cfg = any(c != 1.0 for c in cfgs)  # guidance 1 everywhere: no unconditional half at all
    if use_cfg:
        uncond = transformer.null_condition(cond) if negative is None else _repeat(negative.to(dev), B)
        cond = TextCondition.cat([cond, uncond])
    amp = torch.autocast(dev.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    with amp:
        ctx = transformer.encode_text(cond)
    cos_sin = transformer.rope(schedule, h_div_w).to(dev)
    vae_sched = [(2 * h, 2 * w) for h, w in schedule] if patchify else list(schedule)
    full = vae_sched[-1]
    d = transformer.cfg.d_vae // (4 if patchify else 1)
    codes_sum = torch.zeros(B, d, *full, device=dev)
    caches = transformer.new_cache()
    # the caches keep every scale but the last: nothing after it reads its keys and values
    total, offset = sum(h * w for h, w in schedule[:-1]), 0
    x = transformer.start_tokens(ctx)
    for s, (h, w) in enumerate(schedule):
        t0 = time.perf_counter()
        with amp:
            logits = transformer.step(ctx, x, s, cos_sin[:, offset : offset + h * w], caches, total)
        offset += h * w
        logits = logits.mul(1.0 / taus[s]).view(-1, h, w, transformer.cfg.d_vae, 2)
        if use_cfg:
            c, u = logits[:B], logits[B:]
            logits = c if cfgs[s] == 1.0 else cfgs[s] * c + (1 - cfgs[s]) * u
        bits = sample_bits(logits, top_p, greedy, generator)
        if patchify:
            bits = Q.bits_unpatchify(bits)
        if s < len(forced_bits):
            bits = forced_bits[s].to(bits)
        flip_mask = None
        if flips.active(s):
            bits, flip_mask = flip_bits(bits, flips.share, flip_generator)
        codes_sum = Q.accumulate(codes_sum, bits)
        if s + 1 < K:
            nxt = Q.resize_linear(codes_sum, vae_sched[s + 1])
            nxt = Q.patchify(nxt) if patchify else nxt
            with amp:
                x = transformer.word_embed(nxt.flatten(2).transpose(1, 2).to(transformer.word_embed.weight.dtype))
            x = torch.cat([x, x]) if use_cfg else x
        yield ScaleState(s, tuple(bits.shape[1:3]), bits, codes_sum, flip_mask, time.perf_counter() - t0)


def _repeat(c: TextCondition, B: int) -> TextCondition:
    if c.batch_size == B:
        return c
    if c.batch_size != 1:
        raise ValueError(f"negative prompt batch {c.batch_size} does not match {B} prompts")
    return TextCondition(c.features.expand(B, -1, -1), c.mask.expand(B, -1))


@torch.no_grad()
def generate(transformer, cond: TextCondition, schedule, **kw) -> list[ScaleState]:
    """Run every scale; returns the per-scale states (the last one's `codes_sum` is what the decoder reads)."""
    return list(iter_scales(transformer, cond, schedule, **kw))
