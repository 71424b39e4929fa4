"""Opt-in int8 inference for CPUs: the blocks' linear layers with int8 weights (one scale per output channel) and
activations quantized on the fly per call (PyTorch's dynamic quantization, fbgemm / onednn kernels).

Why: on CPU the transformer's time is its matmuls, already near the fp32 peak (README, Performance); int8
kernels (AVX-512 VNNI, AVX2) do several times more multiply-adds per second. A bit whose two logits almost tie can
come out differently than in float32, so images are close rather than equal (measured in README); the parity
tests and golden vectors always use float32. Inference only: a quantized model is not trained or saved.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Optional

import torch
import torch.nn as nn

from .layers import Block


def fused_available() -> bool:
    """oneDNN's int8 linear with post-ops is in this build and the CPU has VNNI (int32 accumulation of u8·s8
    products, so activations can use all 8 bits without the overflow that makes fbgemm reduce them to 7)."""
    ops = getattr(torch.ops, "onednn", None)
    vnni = getattr(torch.cpu, "_is_vnni_supported", lambda: False)
    return ops is not None and hasattr(ops, "qlinear_pointwise") and hasattr(ops, "qlinear_prepack") and vnni()


class Int8Linear(nn.Module):
    """y = post(dequant(quant(x) · W_int8ᵀ) + b) through oneDNN, with x quantized per call to uint8 over its own
    range (one scale per call, as PyTorch's dynamic quantization does) and W per output channel, symmetric.

    Why not `torch.ao...dynamic.Linear`: that one quantizes activations to 7 bits (fbgemm's overflow guard, not
    needed with VNNI), which doubles the error, and it cannot fuse the FFN's GELU into the matmul's output pass.
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], post: str = "none", algo: str = ""):
        super().__init__()
        w = weight.detach().float()
        self.out_features, self.in_features = w.shape
        scale = (w.abs().amax(1) / 127).clamp(min=1e-12)
        wq = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.w_scale = scale
        self.w_zp = torch.zeros(self.out_features, dtype=torch.int64)
        self.packed = torch.ops.onednn.qlinear_prepack(wq, None)
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self.post, self.algo = post, algo

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features)
        lo, hi = torch.aminmax(x2)
        lo, hi = min(lo.item(), 0.0), max(hi.item(), 0.0)  # the range must hold 0 exactly (padding, ReLU-free)
        s = (hi - lo) / 255 or 1.0
        zp = min(255, max(0, round(-lo / s)))
        qx = _uint8_view(torch.quantize_per_tensor(x2, s, zp, torch.quint8))
        y = torch.ops.onednn.qlinear_pointwise(qx, s, zp, self.packed, self.w_scale, self.w_zp, self.bias,
                                               1.0, 0, torch.float32, self.post, [], self.algo)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        post = "" if self.post == "none" else f", post={self.post}({self.algo})"
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{post}"


def _uint8_view(q: torch.Tensor) -> torch.Tensor:
    """The bytes of a quint8 tensor as a plain uint8 tensor, without a copy: `int_repr()` copies element by
    element and took 7× as long as the quantization itself on layer12's activations."""
    return torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), q.storage_offset(), q.shape, q.stride())


def _int8(weight: torch.Tensor, bias: Optional[torch.Tensor], post: str = "none") -> nn.Module:
    """An int8 linear: oneDNN with full 8-bit activations (and the GELU fused when asked) where the CPU has
    VNNI, else PyTorch's dynamic quantized linear (then a fused GELU is applied after it)."""
    if fused_available():
        return Int8Linear(weight, bias, post, "tanh" if post == "gelu" else "")
    return _dynamic(weight, bias)


def _dynamic(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> nn.Module:
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization import per_channel_dynamic_qconfig

    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight.float())
        if bias is not None:
            lin.bias.copy_(bias.float())
    lin.qconfig = per_channel_dynamic_qconfig
    with warnings.catch_warnings():  # PyTorch plans to move quantized tensors to torchao; they work in 2.13
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        return nnqd.Linear.from_float(lin)


@contextlib.contextmanager
def _packing_engine():
    """Pack the weights for oneDNN where this build has it. The kernel that runs is chosen by the packed weight,
    not by the global engine, so the engine is set only while packing and restored after. Why: on this project's
    AVX-512 VNNI machines oneDNN's dynamic int8 linear took 0.6–0.9× the time of fbgemm's (the default "x86"
    engine) on layer12's shapes, same error against float32 (README, Performance)."""
    before = torch.backends.quantized.engine
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace, in place, every block's token-wise linear layers (self-attention qkv and output, cross-attention
    query and output, FFN) by int8 ones. The text projections run once per prompt and stay in float32, as do the
    norms, the attention itself and the bitwise head."""
    from ..validation import InvalidInput

    if next(model.parameters()).device.type != "cpu":
        raise InvalidInput("int8 inference is for CPUs; on a GPU use bf16 (the default there)")
    with warnings.catch_warnings():  # PyTorch 2.13 warns once per process that quantized tensors move to torchao;
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")  # they work here
        torch.quantize_per_tensor(torch.zeros(1), 1.0, 0, torch.quint8)  # spend that one warning now, silenced
    with _packing_engine():
        _quantize_blocks(model)
    model.int8 = True
    return model


def _quantize_blocks(model: nn.Module) -> None:
    for blk in model.modules():
        if isinstance(blk, Block):
            blk.swap_token_linears(lambda w, b, gelu: _int8(w, b, "gelu" if gelu else "none"))
