"""The Infinity transformer: next-scale prediction with a bitwise head (paper §3.2).

Two entry points share every layer: `forward` (teacher forcing over all scales with a block-causal mask, for
training and parity) and `step` (one scale at inference, attending to the cached keys/values of earlier scales).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import schedules
from ..config import TRANSFORMER_PRESETS, TextCondition, TransformerConfig, resolve_preset
from ..io import CheckpointError, build_module, load_file, load_strict, load_strict_sharded
from .layers import AttentivePool, Block, KVCache, RMSNorm
from .rope import rope_cos_sin

HW = tuple[int, int]


@dataclass
class TextContext:
    """What the text contributes, computed once per generation: the pooled condition (start token and adaptive
    norms), the shared AdaLN vectors, each block's projected keys/values, and the padding mask."""

    cond_BD: torch.Tensor
    ada_B16C: torch.Tensor
    head_ss: torch.Tensor  # (B, 1, 2, C): scale and shift of the head's adaptive norm
    block_kv: list
    mask_B11T: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.cond_BD.shape[0]


class _Chunk(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.module = nn.ModuleList(blocks)


class InfinityTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        C, Ct = cfg.embed_dim, cfg.text_channels
        # learned null text for classifier-free guidance (paper §3.2; trunc-normal 1.2/√Ct as the official init)
        self.cfg_uncond = nn.Parameter(torch.empty(cfg.text_maxlen, Ct))
        self.pos_start = nn.Parameter(torch.empty(1, 1, C))
        self.text_norm = RMSNorm(Ct, eps=cfg.norm_eps)
        self.text_proj_for_sos = AttentivePool(Ct, C, cfg.pool_heads)
        self.text_proj_for_ca = nn.Sequential(nn.Linear(Ct, C), nn.GELU(approximate="tanh"), nn.Linear(C, C))
        self.lvl_embed = nn.Embedding(cfg.num_levels, C)
        self.word_embed = nn.Linear(cfg.d_vae, C)
        self.shared_ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.head_nm = nn.Module()
        self.head_nm.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))
        self.head = nn.Linear(C, 2 * cfg.d_vae)  # bitwise classifier: 2 logits per bit
        n = cfg.blocks_per_chunk
        blocks = [Block(C, C, cfg.num_heads, cfg.ffn_hidden, cfg.norm_eps) for _ in range(cfg.depth)]
        self.block_chunks = nn.ModuleList(_Chunk(blocks[i : i + n]) for i in range(0, cfg.depth, n))
        if not self.pos_start.is_meta:
            self.init_weights(seed)

    @property
    def blocks(self) -> list[Block]:
        return [b for chunk in self.block_chunks for b in chunk.module]

    def init_weights(self, seed: int = 0) -> None:
        """Training init: trunc-normal std √(1/3C) for linears (official --tini −1), tiny adaptive-norm weights so
        blocks start near identity, a zero-mean small head."""
        g = torch.Generator().manual_seed(seed)
        C = self.cfg.embed_dim
        std = (1 / (3 * C)) ** 0.5

        def tn(t, s):
            with torch.no_grad():
                t.copy_(torch.nn.init.trunc_normal_(torch.empty(t.shape, device="cpu"), std=s, a=-2 * s, b=2 * s, generator=g))

        for m in self.modules():
            if isinstance(m, nn.Linear):
                tn(m.weight, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        tn(self.cfg_uncond, 1.2 / self.cfg.text_channels**0.5)
        tn(self.pos_start, std)
        tn(self.lvl_embed.weight, std)
        tn(self.text_proj_for_sos.ca.mat_q, std)
        with torch.no_grad():
            self.shared_ada_lin[1].weight.mul_(1e-3)
            self.head.weight.mul_(0.1)
            for b in self.blocks:
                b.ada_gss.copy_(torch.randn(b.ada_gss.shape, generator=g, device="cpu") / C**0.5)

    # -- text -------------------------------------------------------------------------------------------------
    def null_condition(self, like: TextCondition) -> TextCondition:
        """The learned null text with the same lengths as `like` (what guidance uses without a negative prompt)."""
        L = like.features.shape[1]
        if L > self.cfg.text_maxlen:
            raise ValueError(f"prompt of {L} tokens exceeds the model's text_maxlen {self.cfg.text_maxlen}")
        feats = self.cfg_uncond[:L].to(like.features.dtype).unsqueeze(0).expand(like.batch_size, -1, -1)
        return TextCondition(feats * like.mask.unsqueeze(-1), like.mask)

    def encode_text(self, cond: TextCondition, drop_B: Optional[torch.Tensor] = None) -> TextContext:
        """Normalise the text, pool it (start token and adaptive-norm condition) and project the cross-attention
        memory. `drop_B` (bool, training) replaces those prompts by the null text (condition dropout)."""
        feats, mask = cond.features, cond.mask
        if drop_B is not None and drop_B.any():
            null = self.null_condition(cond).features
            feats = torch.where(drop_B.view(-1, 1, 1), null, feats)
        feats = feats.to(self.cfg_uncond.dtype)
        t = self.text_norm(feats)
        mask_B11T = mask.view(mask.shape[0], 1, 1, -1)
        cond_BD = self.text_proj_for_sos(t, mask_B11T)
        mem = self.text_proj_for_ca(t)
        ada = self.shared_ada_lin(cond_BD).view(-1, 1, 6, self.cfg.embed_dim)
        head_ss = self.head_nm.ada_lin(cond_BD).view(-1, 1, 2, self.cfg.embed_dim)
        return TextContext(cond_BD, ada, head_ss, [b.ca.kv(mem) for b in self.blocks], mask_B11T)

    def start_tokens(self, ctx: TextContext) -> torch.Tensor:
        """Scale 1 input (B, 1, C): the pooled text plus a learned start position."""
        return ctx.cond_BD.unsqueeze(1) + self.pos_start

    # -- shared pieces ----------------------------------------------------------------------------------------
    def rope(self, schedule: Sequence[HW], h_div_w: Optional[float] = None) -> torch.Tensor:
        """(2, Σ h·w, head_dim/2) RoPE table for a schedule (its template's reference grid, paper §3.4)."""
        h, w = schedule[-1]
        ref = schedules.rope_reference_hw(h_div_w if h_div_w is not None else h / w)
        return rope_cos_sin(schedule, ref, self.cfg.head_dim, self.cfg.rope_theta)

    def logits(self, x_BLC: torch.Tensor, ctx: TextContext) -> torch.Tensor:
        """Adaptive LayerNorm then the bitwise head: (B, L, 2·d_vae), pairs (logit bit=0, logit bit=1)."""
        scale, shift = ctx.head_ss.unbind(2)
        h = F.layer_norm(x_BLC.float(), x_BLC.shape[-1:], eps=self.cfg.norm_eps) * (1 + scale) + shift
        return self.head(h.to(self.head.weight.dtype)).float()

    # -- teacher forcing ----------------------------------------------------------------------------------------
    def forward(self, cond: Union[TextCondition, TextContext], x_BLd: torch.Tensor, schedule: Sequence[HW],
                h_div_w: Optional[float] = None, drop_B: Optional[torch.Tensor] = None) -> torch.Tensor:
        """All scales at once. `x_BLd` (B, Σ_{s≥1} h·w, d_vae): inputs of scales 2…K (the running code sum after
        the previous scale, resized). Returns logits (B, Σ h·w, 2·d_vae)."""
        ctx = cond if isinstance(cond, TextContext) else self.encode_text(cond, drop_B)
        sizes = [h * w for h, w in schedule]
        x = torch.cat([self.start_tokens(ctx), self.word_embed(x_BLd.to(self.word_embed.weight.dtype))], dim=1)
        lvl = torch.repeat_interleave(torch.arange(len(sizes), device=x.device), torch.tensor(sizes, device=x.device))
        x = x + self.lvl_embed(lvl)  # once, before the first block (official add_lvl_embeding_only_first_block)
        cos_sin = self.rope(schedule, h_div_w).to(x.device)
        attn_mask = (lvl.view(-1, 1) >= lvl.view(1, -1))  # block-causal: a scale sees itself and coarser scales
        for b, kv in zip(self.blocks, ctx.block_kv):
            x = b(x, ctx.ada_B16C, cos_sin, kv, ctx.mask_B11T, attn_mask=attn_mask)
        return self.logits(x, ctx)

    # -- inference: one scale ---------------------------------------------------------------------------------
    def new_cache(self) -> list[KVCache]:
        return [KVCache() for _ in range(self.cfg.depth)]

    def step(self, ctx: TextContext, x_BLC: torch.Tensor, scale_index: int, cos_sin: torch.Tensor,
             caches: list[KVCache], total_tokens: int) -> torch.Tensor:
        """Run one scale. `x_BLC` is the already embedded input (start tokens at scale 0, `word_embed(...)`
        later); `cos_sin` the RoPE rows of this scale; `total_tokens` how many tokens the caches keep (the
        scales that later scales attend to; a scale beyond it is attended to but not stored, see `KVCache`).
        Returns that scale's logits (B, h·w, 2·d_vae)."""
        x = x_BLC + self.lvl_embed.weight[scale_index]
        for b, kv, cache in zip(self.blocks, ctx.block_kv, caches):
            x = b(x, ctx.ada_B16C, cos_sin, kv, ctx.mask_B11T, cache=cache, total=total_tokens)
        return self.logits(x, ctx)

    # -- loading ----------------------------------------------------------------------------------------------
    def load_official(self, source, place=None) -> "InfinityTransformer":
        """Strictly load an official checkpoint: a bare state dict (`infinity_2b_reg.pth`), a training checkpoint
        (`['trainer']['gpt_fsdp']`), a sharded folder (8B; read shard by shard) or a safetensors file.
        `cfg_uncond` is padded or cut to text_maxlen as the official loader does. `place(key, tensor)` puts each
        tensor on its device and dtype as it is loaded (see `io.load_strict`)."""
        what = f"transformer {self.cfg}"
        if isinstance(source, dict):
            sd, name = source, "state dict"
        else:
            from pathlib import Path

            p = Path(source)
            if p.is_dir():
                load_strict_sharded(self, p, what, transform=self._fit_cfg_uncond, place=place)
                return self
            name, sd = str(p), load_file(p)
        if "trainer" in sd and isinstance(sd["trainer"], dict):
            sd = sd["trainer"].get("gpt_fsdp") or sd["trainer"].get("gpt_wo_ddp") or sd["trainer"]
        if not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{name}: expected a state dict of tensors")
        load_strict(self, self._fit_cfg_uncond(dict(sd)), what, name, place=place)
        return self

    def _fit_cfg_uncond(self, sd: dict) -> dict:
        """The official `load_state_dict` pads (with the fresh rows) or cuts the null text to text_maxlen rows."""
        u, n = sd.get("cfg_uncond"), self.cfg.text_maxlen
        if u is not None and u.ndim == 2 and u.shape[1] == self.cfg.text_channels and u.shape[0] != n:
            own = self.cfg_uncond.detach()
            extra = torch.zeros(n - u.shape[0], u.shape[1], dtype=u.dtype) if own.is_meta else own[u.shape[0]:].to(u)
            sd["cfg_uncond"] = u[:n] if u.shape[0] >= n else torch.cat([u, extra])
        return sd


def build_transformer(name_or_config: Union[str, TransformerConfig], device=None, dtype: Optional[torch.dtype] = None,
                      weights=None) -> InfinityTransformer:
    """Build from a preset (`infinity-2b`, `infinity-8b`, `infinity-layer12` …) or a config; `device='meta'`
    allocates nothing; `weights` loads strictly (official layouts or our safetensors)."""
    cfg = resolve_preset(name_or_config, TRANSFORMER_PRESETS, "transformer")
    return build_module(lambda: InfinityTransformer(cfg), device, dtype, weights)
