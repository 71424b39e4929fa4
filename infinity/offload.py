"""Weights that live in host memory and visit the compute device only while they are used.

Why: a 12 GB card cannot hold T5-XL (4.9 GB in float32) beside Infinity-2B (4.3 GB of bf16 blocks) and their
activations, nor the 8B model's 16.4 GB of bf16 blocks at all. Inference never writes to the weights, so the host copy is the master: moving a
unit "on" copies its tensors to the device, moving it "off" only points the parameters back at the host copy and
lets the device copy be freed — nothing is copied back.

A unit is any module (a transformer block, the whole text encoder). `attach` registers forward hooks that bring a
unit on just before its `forward` and take it off right after; other entry points that read a unit's weights
(the cross-attention's text projection, computed once per prompt outside `forward`) are wrapped with `wrap_method`.
Outputs are bit-identical to the resident model: the same tensors, copied.
"""
from __future__ import annotations

import functools
from typing import Iterable, Optional, Union

import torch
import torch.nn as nn

Device = Union[str, torch.device]


class Offloader:
    """Keeps each unit's parameters and buffers in `storage` memory (pinned when the compute device is CUDA, so
    copies can be asynchronous) and copies one unit at a time to `device` while it runs."""

    def __init__(self, units: Iterable[nn.Module], device: Device, storage: Device = "cpu"):
        self.device, self.storage = torch.device(device), torch.device(storage)
        self._pin = self.device.type == "cuda" and self.storage.type == "cpu"
        self.units: list[nn.Module] = []
        self._host: dict[int, torch.Tensor] = {}  # id(parameter or buffer) -> its host copy (one per tensor)
        self._members: dict[int, list[torch.Tensor]] = {}
        self._depth: dict[int, int] = {}
        self._handles = []
        for u in units:
            self.add_unit(u)
            self.units.append(u)  # the units whose forward `attach` hooks

    @torch.no_grad()
    def add_unit(self, unit: nn.Module) -> None:
        """Register a unit; its tensors move to host memory now. Units may overlap (a block and its
        cross-attention): a tensor shared by two units keeps one host copy."""
        members = []
        for t in _tensors(unit):
            if id(t) not in self._host:
                host = t.data.to(self.storage)
                self._host[id(t)] = host.pin_memory() if self._pin else host
                t.data = self._host[id(t)]
            members.append(t)
        self._members[id(unit)] = members
        self._depth[id(unit)] = 0

    # -- moving ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def on(self, unit: nn.Module) -> None:
        """Copy a unit to the compute device (nested calls count: only the outermost copies)."""
        self._depth[id(unit)] += 1
        if self._depth[id(unit)] > 1:
            return
        for t in self._members[id(unit)]:
            # copy=True: even when storage and device are the same kind (CPU tests) the unit runs on a copy,
            # so the mechanics are exercised exactly as on a GPU
            t.data = self._host[id(t)].to(self.device, non_blocking=True, copy=True)

    @torch.no_grad()
    def off(self, unit: nn.Module) -> None:
        """Point the unit back at its host copy; the device copy is released."""
        self._depth[id(unit)] -= 1
        if self._depth[id(unit)] > 0:
            return
        for t in self._members[id(unit)]:
            t.data = self._host[id(t)]

    def is_on(self, unit: nn.Module) -> bool:
        return self._depth[id(unit)] > 0

    # -- hooks -------------------------------------------------------------------------------------------------
    def attach(self) -> "Offloader":
        """Hooks on every unit's forward: on before, off after (also when forward raises)."""
        for u in self.units:
            self._handles.append(u.register_forward_pre_hook(lambda m, args: self.on(m)))
            self._handles.append(u.register_forward_hook(lambda m, args, out: self.off(m), always_call=True))
        return self

    def wrap_method(self, unit: nn.Module, name: str) -> None:
        """Route `unit.name(...)` (a method reading the unit's weights outside its forward) through on/off; the
        unit is registered if it is not yet."""
        if id(unit) not in self._members:
            self.add_unit(unit)
        owner, fn = unit, getattr(unit, name)

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            self.on(unit)
            try:
                return fn(*args, **kwargs)
            finally:
                self.off(unit)

        setattr(owner, name, wrapped)  # an instance attribute: the class and other instances are untouched

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    seen, out = set(), []
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def offload_blocks(transformer: nn.Module, device: Device, storage: Device = "cpu") -> Offloader:
    """Offload an `InfinityTransformer`'s blocks: each block is copied to `device` just before it runs and
    released after, so at most one block's weights occupy the device (the rest of the model — text projections,
    embeddings, head, about 2 % of the weights — stays resident). The blocks' cross-attention key/value
    projection of the text runs once per prompt in `encode_text`, outside the block's forward, so that method is
    wrapped too, with the cross-attention as its own unit."""
    blocks = list(transformer.blocks)
    off = Offloader(blocks, device, storage).attach()
    for b in blocks:  # only the cross-attention's weights travel for this one (a quarter of a block)
        off.wrap_method(b.ca, "kv")
    transformer.offloader = off
    return off


def offload_module(module: nn.Module, device: Device, storage: Device = "cpu") -> Offloader:
    """The whole module as one unit (a text encoder): on the device only while its forward runs."""
    return Offloader([module], device, storage).attach()


def device_of(module: nn.Module) -> Optional[torch.device]:
    """Where a module computes: its offloader's device when it has one, else where its first parameter is."""
    off = getattr(module, "offloader", None)
    if off is not None:
        return off.device
    p = next(module.parameters(), None)
    return p.device if p is not None else None
