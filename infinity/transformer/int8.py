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


def _int8(weight: torch.Tensor, bias: Optional[torch.Tensor]) -> nn.Module:
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
    with _packing_engine():
        _quantize_blocks(model)
    model.int8 = True
    return model


def _quantize_blocks(model: nn.Module) -> None:
    for blk in model.modules():
        if not isinstance(blk, Block):
            continue
        sa = blk.sa
        # the official qkv bias (q bias, zero k bias, v bias) is a constant at inference: fold it in
        sa.mat_qkv = _int8(sa.mat_qkv.weight, torch.cat([sa.q_bias, sa.zero_k_bias, sa.v_bias]).detach())
        sa.qkv_bias_folded = True
        for owner, name in ((sa, "proj"), (blk.ca, "mat_q"), (blk.ca, "proj"), (blk.ffn, "fc1"), (blk.ffn, "fc2")):
            lin = getattr(owner, name)
            setattr(owner, name, _int8(lin.weight, lin.bias))
