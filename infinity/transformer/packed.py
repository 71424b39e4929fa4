"""Float32 CPU inference with the blocks' linear weights reordered once for oneDNN ("packed").

Why: on CPU the transformer's time is its matmuls (README, Performance). PyTorch sends a float32 `F.linear` to
MKL's sgemm, which on this project's AMD machines runs about 20 % below oneDNN's kernels on the same weights;
oneDNN also reads a weight that was reordered into its blocked layout once, instead of every call. The values are
the same products summed in another order: logits move by ~1e-6 (far inside the parity tests' 1e-4), and a
sampled bit changes only where its two logits tie that closely (README gives the share measured on layer12).

Inference only, like int8: the packed layers have no `weight` parameter, so a packed model is not trained or
saved (its state dict lacks those keys). Memory stays the same: each packed weight replaces its original.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import Block


def available() -> bool:
    """oneDNN's packed linear is in this PyTorch build (CPU builds have it; some minimal builds do not)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class PackedLinear(nn.Module):
    """y = x Wᵀ + b with W held in oneDNN's blocked layout (an opaque tensor, not a parameter)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, rows_hint: int = 512):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        w = weight.detach().float().contiguous()
        # the hint only picks the blocked layout; any number of rows works with it (checked in the tests)
        self.packed = torch.ops.mkldnn._reorder_linear_weight(w, rows_hint)
        self.bias = None if bias is None else bias.detach().float().contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def __getattr__(self, name: str):
        if name == "weight":  # an AttributeError still (hasattr stays False), but one that says what to do
            raise AttributeError("a packed linear layer has no `weight`: it was reordered for oneDNN at load "
                                 "(inference only); load the model with packed=False (CLI: --no-packed) to read, "
                                 "train or save its weights")
        return super().__getattr__(name)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def pack_linears(model: nn.Module) -> nn.Module:
    """Replace, in place, the linear layers that run on every image token (each block's self-attention qkv and
    output, cross-attention query and output, FFN) by packed ones. The text projections run once per prompt,
    and the word embedding and the head are thin (d_vae wide): they stay as they are. Returns the model; float32 CPU models only."""
    from ..validation import InvalidInput

    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype != torch.float32:
        raise InvalidInput("packed linear layers are for float32 models on a CPU")
    if not available():
        raise InvalidInput("this PyTorch build has no oneDNN packed linear (torch.ops.mkldnn._linear_pointwise)")
    if getattr(model, "int8", False):
        raise InvalidInput("the model is already int8; packing is for float32")
    if getattr(model, "packed", False):
        return model
    for blk in model.modules():
        if isinstance(blk, Block):  # the FFN's GELU stays a separate op, as in float32 without packing
            blk.swap_token_linears(lambda w, b, gelu: PackedLinear(w, b))
    model.packed = True
    return model
