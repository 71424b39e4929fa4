"""Reading and writing weights: safetensors, `torch.load(weights_only=True)`, sharded folders, hub downloads.

Never plain pickle: a checkpoint is data, and a file that needs code to unpickle is refused with a clear error.
Loading is strict: a wrong file fails with the missing, unexpected and mis-shaped keys named.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional

import torch

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class CheckpointError(RuntimeError):
    """A weight file that cannot be used: missing, truncated, unsafe, or for another architecture."""


def load_file(path: str | os.PathLike) -> dict:
    """Load a .safetensors or torch file (weights_only) into a dict. Errors name the file."""
    path = Path(path)
    if not path.is_file() and path.with_name(path.name + ".index.json").is_file():  # sharded by save_component
        return load_component(path.parent, path.name.removesuffix(".safetensors"))
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file as st_load

        try:
            return st_load(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read safetensors file {path}: {e}") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it is not plain tensor data (loading it would run code from the file). "
            f"Only safetensors files and torch files that load with weights_only=True are accepted. Details: {e}"
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"cannot read {path} (truncated or not a checkpoint?): {e}") from e


SHARD_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")  # safetensors preferred


def shard_index(folder: str | os.PathLike, index_names: Iterable[str] = SHARD_INDEX_NAMES) -> tuple[Path, dict[str, str]]:
    """(index file, weight map {key: shard file name}) of a sharded folder (the layout of transformers'
    `save_pretrained(max_shard_size=…)`, which the official 8B weights use)."""
    folder, index_names = Path(folder), tuple(index_names)
    index = next((folder / n for n in index_names if (folder / n).is_file()), None)
    if index is None:
        raise CheckpointError(f"no shard index ({' or '.join(index_names)}) in {folder}")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index} is not a shard index with a 'weight_map': {e}") from e
    for shard in set(weight_map.values()):
        if not isinstance(shard, str) or Path(shard).name != shard:  # files in the same folder, nothing else
            raise CheckpointError(f"shard name {shard!r} in {index} is not a plain file name")
    return index, weight_map


def iter_shards(folder: str | os.PathLike, index_names: Iterable[str] = SHARD_INDEX_NAMES
                ) -> Iterator[tuple[Path, StateDict]]:
    """Each shard of a sharded folder in turn, loaded on its own (peak memory: one shard, not the model), after
    checking that it holds exactly the keys the index assigns to it."""
    index, weight_map = shard_index(folder, index_names)
    by_shard: dict[str, set] = {}
    for k, shard in weight_map.items():
        by_shard.setdefault(shard, set()).add(k)
    for shard in sorted(by_shard):
        path = index.parent / shard
        sd = load_file(path)
        absent, extra = sorted(by_shard[shard] - set(sd)), sorted(set(sd) - by_shard[shard])
        if absent or extra:
            raise CheckpointError(f"{path} does not match {index.name}: "
                                  + (f"listed but absent: {_fmt(absent)}" if absent else "")
                                  + ("; " if absent and extra else "")
                                  + (f"present but not listed: {_fmt(extra)}" if extra else ""))
        yield path, sd


def load_sharded(folder: str | os.PathLike) -> StateDict:
    """A whole sharded folder as one state dict (small models, conversion); large ones load shard by shard with
    `load_strict_sharded`."""
    sd: StateDict = {}
    for _, part in iter_shards(folder):
        sd.update(part)
    return sd


def save_safetensors(sd: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Optional[dict] = None) -> None:
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)


MAX_SHARD_BYTES = 9 * 1024 * 1024  # bundled files stay under 10 MB each (repository and Space file limits)


def save_component(sd: Mapping[str, torch.Tensor], folder: str | os.PathLike, stem: str,
                   max_bytes: Optional[int] = None) -> list[Path]:
    """`stem.safetensors`, or, when larger than `max_bytes`, shards `stem-00001-of-0000N.safetensors` plus
    `stem.safetensors.index.json` (the hub's index layout: {"metadata": {"total_size"}, "weight_map"}).
    Keys are kept in order and never split across shards. Stale files of the other layout are removed."""
    folder, max_bytes = Path(folder), max_bytes or MAX_SHARD_BYTES
    folder.mkdir(parents=True, exist_ok=True)
    for old in [folder / f"{stem}.safetensors", folder / f"{stem}.safetensors.index.json",
                *folder.glob(f"{stem}-*-of-*.safetensors")]:
        old.unlink(missing_ok=True)
    size = lambda t: t.numel() * t.element_size()  # noqa: E731
    groups: list[dict] = [{}]
    for k, v in sd.items():
        if groups[-1] and sum(map(size, groups[-1].values())) + size(v) > max_bytes:
            groups.append({})
        groups[-1][k] = v
    if len(groups) == 1:
        save_safetensors(groups[0], folder / f"{stem}.safetensors")
        return [folder / f"{stem}.safetensors"]
    names = [f"{stem}-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    for name, part in zip(names, groups):
        save_safetensors(part, folder / name)
    index = {"metadata": {"total_size": sum(size(v) for v in sd.values())},
             "weight_map": {k: name for name, part in zip(names, groups) for k in part}}
    (folder / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return [folder / n for n in names]


def load_component(folder: str | os.PathLike, stem: str) -> StateDict:
    """What `save_component` wrote: the single file or every shard listed by the index (checked key by key)."""
    folder = Path(folder)
    if (folder / f"{stem}.safetensors").is_file() or not (folder / f"{stem}.safetensors.index.json").is_file():
        return load_file(folder / f"{stem}.safetensors")
    sd: StateDict = {}
    for _, part in iter_shards(folder, (f"{stem}.safetensors.index.json",)):
        sd.update(part)
    return sd


def key_report(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor]) -> tuple[list, list, list]:
    """(missing, unexpected, mis-shaped) keys of a checkpoint against a model's state dict."""
    missing = sorted(set(model_sd) - set(ckpt_sd))
    unexpected = sorted(set(ckpt_sd) - set(model_sd))
    shapes = sorted(
        f"{k}: file {tuple(ckpt_sd[k].shape)} vs model {tuple(model_sd[k].shape)}"
        for k in set(model_sd) & set(ckpt_sd)
        if tuple(model_sd[k].shape) != tuple(ckpt_sd[k].shape)
    )
    return missing, unexpected, shapes


def _fmt(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


Place = Callable[[str, torch.Tensor], torch.Tensor]


def _check_keys(missing, unexpected, shapes, what: str, source: str) -> None:
    if missing or unexpected or shapes:
        lines = [f"{source or 'checkpoint'} does not fit {what}:"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {_fmt(unexpected)}")
        if shapes:
            lines.append(f"  wrong shape ({len(shapes)}): {_fmt(shapes, 4)}")
        lines.append("  Is this the right file for this model (e.g. the d32reg VAE for Infinity-2B)?")
        raise CheckpointError("\n".join(lines))


def _placer(own: Mapping[str, torch.Tensor], place: Optional[Place]) -> Place:
    """Default placement: floating tensors cast to the module's dtype for that key, on the CPU."""
    if place is not None:
        return place
    return lambda k, v: v.to(own[k].dtype) if v.is_floating_point() and v.dtype != own[k].dtype else v


def _assign(module: torch.nn.Module, own, part: Mapping[str, torch.Tensor], place: Place) -> None:
    on_meta = any(t.is_meta for t in own.values())
    module.load_state_dict({k: place(k, v) for k, v in part.items()}, strict=False, assign=on_meta)


def load_strict(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str, source: str = "",
                place: Optional[Place] = None) -> None:
    """Load every key or fail, naming missing / unexpected / mis-shaped keys. `place(key, tensor)` puts each
    tensor where it goes (device, dtype); by default floating tensors are cast to the module's dtype. Works on
    meta-device modules (the tensors are assigned, not copied)."""
    own = module.state_dict()
    _check_keys(*key_report(own, sd), what, source)
    _assign(module, own, sd, _placer(own, place))


def load_strict_sharded(module: torch.nn.Module, folder: str | os.PathLike, what: str,
                        transform: Optional[Callable[[StateDict], StateDict]] = None,
                        place: Optional[Place] = None) -> None:
    """Strict loading of a sharded folder, one shard at a time: the index's key list is checked against the
    module before any shard is read (a missing key is named at once), each shard is checked against the index,
    its tensors are placed (device, dtype) and assigned, and the shard is dropped before the next is read. So an
    8B model in bf16 needs one shard of host memory beyond its own weights, not a float32 copy of everything.
    `transform` adapts a shard's keys/tensors first (e.g. the official cfg_uncond padding)."""
    index, weight_map = shard_index(folder)
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(weight_map)), sorted(set(weight_map) - set(own))
    _check_keys(missing, unexpected, [], what, str(index))
    place = _placer(own, place)
    for path, part in iter_shards(folder):
        if transform is not None:
            part = transform(part)
        _check_keys([], *key_report(own, part)[1:], what, str(path))
        _assign(module, own, part, place)
        del part
    left = sorted(k for k, t in module.state_dict().items() if t.is_meta)
    if left:  # cannot happen after the checks above, unless a transform dropped keys
        _check_keys(left, [], [], what, str(index))


def build_module(make, device=None, dtype: Optional[torch.dtype] = None, weights=None) -> torch.nn.Module:
    """Construct with `make()`, load `weights` strictly (the module's `load_official`), move and cast; in eval mode.

    With weights the module is built on the meta device and the checkpoint's tensors take the places: no memory
    and no time spent on an initialisation that would be overwritten.
    """
    with torch.device("meta" if weights is not None else (device or "cpu")):
        module = make()
    if weights is not None:
        module.load_official(weights)
        if str(device or "cpu") != "meta":
            module.to(device or "cpu")
    if dtype is not None:
        module.to(dtype)
    return module.eval()


def hub_download(repo_id: str, filename: Optional[str] = None, **kw) -> Path:
    """Download a file, or a repo snapshot (`allow_patterns=[…]` limits it to some files or folders), with
    huggingface_hub; one clear error naming what was asked for when offline or missing."""
    try:
        import huggingface_hub as hf

        if filename is None:
            return Path(hf.snapshot_download(repo_id, **kw))
        return Path(hf.hf_hub_download(repo_id, filename, **kw))
    except Exception as e:  # offline, missing repo or file, auth …: one clear error naming what was asked for
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        missing = type(e).__name__ in ("RepositoryNotFoundError", "EntryNotFoundError", "RevisionNotFoundError")
        hint = ("HF_HUB_OFFLINE is set" if offline else "it does not exist on the Hugging Face hub" if missing
                else "it could not be downloaded from the Hugging Face hub")
        what = f"/{filename}" if filename else f" ({', '.join(kw['allow_patterns'])})" if kw.get("allow_patterns") else ""
        raise CheckpointError(
            f"cannot get {repo_id}{what}: {hint} ({type(e).__name__}: {e}). "
            f"Download it once on a machine with network access and pass the local folder instead."
        ) from e
