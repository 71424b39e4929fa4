"""Building blocks of the Infinity transformer, named as in the official state dict.

Shapes: B batch, L image tokens, T text tokens, C model width, H heads, c head size. Attention always goes through
`scaled_dot_product_attention` (flash/efficient kernels where the device has them; never flash-attn).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import apply_rope


class RMSNorm(nn.Module):
    """x · rsqrt(mean(x²) + eps) · w in float32 (the text norm)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()).to(x.dtype)


def _kv_bias(zero_k_bias: torch.Tensor, v_bias: torch.Tensor) -> torch.Tensor:
    return torch.cat([zero_k_bias, v_bias])


class KVCache:
    """Keys and values of earlier scales, per block, preallocated for `capacity` tokens.

    A scale that no later scale reads (the last) need not be stored: when a scale does not fit, its keys and values
    are joined to the cached ones for its own attention only. At 1024² that leaves 10,521 − 4,096 tokens to keep
    (2B with guidance: 6.7 GB in float32 instead of 11.0 GB); the attention sees the same numbers either way.
    """

    def __init__(self):
        self.k: Optional[torch.Tensor] = None
        self.v: Optional[torch.Tensor] = None
        self.n = 0

    def append(self, k, v, capacity: int):
        L = k.shape[2]
        if self.k is None:
            self.k = k.new_empty(k.shape[0], k.shape[1], capacity, k.shape[3])
            self.v = v.new_empty(self.k.shape)
        if self.n + L > self.k.shape[2]:  # not kept: attend over the cache and this scale, store nothing
            return torch.cat([self.k[:, :, : self.n], k], 2), torch.cat([self.v[:, :, : self.n], v], 2)
        self.k[:, :, self.n : self.n + L] = k
        self.v[:, :, self.n : self.n + L] = v
        self.n += L
        return self.k[:, :, : self.n], self.v[:, :, : self.n]


class SelfAttention(nn.Module):
    """Cosine attention (q, k L2-normalised per head, q scaled by a learned per-head exp factor capped at 100)
    with 2-D RoPE; block-causal over scales in training, KV-cached across scales at inference."""

    def __init__(self, C: int, H: int):
        super().__init__()
        self.H, self.c = H, C // H
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(C))
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, H, 1, 1), math.log(4.0)))
        self.proj = nn.Linear(C, C)
        self.max_log_scale = math.log(100.0)
        self.qkv_bias_folded = False  # True once `Block.swap_token_linears` put the bias inside mat_qkv

    def forward(self, x_BLC, cos_sin, attn_mask=None, cache: Optional[KVCache] = None, total: int = 0):
        B, L, C = x_BLC.shape
        if self.qkv_bias_folded:
            qkv = self.mat_qkv(x_BLC)
        else:
            qkv = F.linear(x_BLC, self.mat_qkv.weight, torch.cat([self.q_bias, self.zero_k_bias, self.v_bias]))
        qkv = qkv.view(B, L, 3, self.H, self.c).permute(2, 0, 3, 1, 4)
        # q and k go through the normalisation and RoPE together: half the op calls, the same arithmetic per value
        qk = F.normalize(qkv[:2], dim=-1)  # (2, B, H, L, c), a fresh tensor
        qk[0] *= self.scale_mul_1H11.clamp(max=self.max_log_scale).exp()
        q, k = apply_rope(qk, cos_sin).unbind(0)
        v = qkv[2]
        if cache is not None:
            k, v = cache.append(k, v, total)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class CrossAttention(nn.Module):
    """Image tokens attend to their own prompt's projected text tokens (padding masked out)."""

    def __init__(self, C: int, D: int, H: int):
        super().__init__()
        self.H, self.c = H, C // H
        self.mat_q = nn.Linear(C, C)
        self.mat_kv = nn.Linear(D, 2 * C, bias=False)
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.proj = nn.Linear(C, C)

    def kv(self, mem_BTD: torch.Tensor):
        """Project the text memory once per generation (it is the same at every scale)."""
        B, T, _ = mem_BTD.shape
        kv = F.linear(mem_BTD, self.mat_kv.weight, _kv_bias(self.zero_k_bias, self.v_bias))
        return kv.view(B, T, 2, self.H, self.c).permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, x_BLC, kv, mask_B11T):
        B, L, C = x_BLC.shape
        q = self.mat_q(x_BLC).view(B, L, self.H, self.c).transpose(1, 2)
        k, v = kv
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_B11T)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class AttentivePool(nn.Module):
    """Learned queries attend over the text tokens → one vector per prompt: the start token and the condition
    of every adaptive norm (`text_proj_for_sos`)."""

    def __init__(self, Ct: int, D: int, heads: int):
        super().__init__()
        self.ca = nn.Module()
        self.ca.mat_q = nn.Parameter(torch.randn(1, heads, D // heads) * 0.02)
        self.ca.mat_kv = nn.Linear(Ct, 2 * D, bias=False)
        self.ca.v_bias = nn.Parameter(torch.zeros(D))
        self.ca.register_buffer("zero_k_bias", torch.zeros(D))
        self.ca.proj = nn.Linear(D, D)
        self.heads, self.D = heads, D

    def forward(self, text_BTC, mask_B11T):
        ca = self.ca
        B, T, _ = text_BTC.shape
        kv = F.linear(text_BTC, ca.mat_kv.weight, _kv_bias(ca.zero_k_bias, ca.v_bias))
        k, v = kv.view(B, T, 2, self.heads, self.D // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = ca.mat_q.unsqueeze(2).expand(B, -1, -1, -1).to(k.dtype)  # (B, heads, 1, c)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_B11T)
        return ca.proj(out.reshape(B, self.D))


class FFN(nn.Module):
    def __init__(self, C: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(C, hidden), nn.Linear(hidden, C)
        self.gelu_fused = False  # True once `Block.swap_token_linears` gave fc1 a layer that applies the GELU

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h if self.gelu_fused else F.gelu(h, approximate="tanh"))


class Block(nn.Module):
    """Pre-norm block with shared adaptive LayerNorm (gates, scales, shifts from the pooled text + a per-block
    offset `ada_gss`), self-attention, cross-attention to the text, FFN."""

    def __init__(self, C: int, D: int, H: int, ffn_hidden: int, eps: float):
        super().__init__()
        self.eps = eps
        self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, C) / C**0.5)
        self.sa = SelfAttention(C, H)
        self.ca = CrossAttention(C, D, H)
        self.ffn = FFN(C, ffn_hidden)
        self.ca_norm = nn.LayerNorm(C, eps=eps)

    def _ln(self, x):
        return F.layer_norm(x.float(), x.shape[-1:], eps=self.eps).to(x.dtype)

    def forward(self, x, ada_B16C, cos_sin, text_kv, text_mask, attn_mask=None, cache=None, total=0):
        g1, g2, s1, s2, b1, b2 = (ada_B16C + self.ada_gss).unbind(2)  # each (B, 1, C)
        x = x + self.sa(self._ln(x) * (1 + s1) + b1, cos_sin, attn_mask, cache, total) * g1
        n = self.ca_norm  # in float32 whatever the block's dtype (as the fused official norms compute)
        ca_in = F.layer_norm(x.float(), x.shape[-1:], n.weight.float(), n.bias.float(), n.eps).to(x.dtype)
        x = x + self.ca(ca_in, text_kv, text_mask)
        x = x + self.ffn(self._ln(x) * (1 + s2) + b2) * g2
        return x

    @torch.no_grad()
    def swap_token_linears(self, make: Callable[[torch.Tensor, Optional[torch.Tensor], bool], nn.Module]) -> None:
        """Replace, in place, the linear layers that run on every image token (self-attention qkv and output,
        cross-attention query and output, FFN) by `make(weight, bias, gelu)` for inference (int8, packed).

        The qkv bias (q bias, zero k bias, v bias) is a constant at inference, so it goes into the new qkv layer.
        `gelu` is True for fc1 only: a layer that applies the FFN's GELU itself says so with `post == "gelu"`,
        otherwise the FFN still applies it. The text projections run once per prompt and stay as they are."""
        sa, ca, ffn = self.sa, self.ca, self.ffn
        if sa.qkv_bias_folded:
            raise RuntimeError("this block's linear layers were already replaced for inference")
        sa.mat_qkv = make(sa.mat_qkv.weight, torch.cat([sa.q_bias, sa.zero_k_bias, sa.v_bias]), False)
        sa.qkv_bias_folded = True
        for owner, name in ((sa, "proj"), (ca, "mat_q"), (ca, "proj"), (ffn, "fc2")):
            lin = getattr(owner, name)
            setattr(owner, name, make(lin.weight, lin.bias, False))
        ffn.fc1 = make(ffn.fc1.weight, ffn.fc1.bias, True)
        ffn.gelu_fused = getattr(ffn.fc1, "post", "none") == "gelu"
