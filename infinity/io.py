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
from typing import Iterable, Mapping, Optional

import torch

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class CheckpointError(RuntimeError):
    """A weight file that cannot be used: missing, truncated, unsafe, or for another architecture."""


def load_file(path: str | os.PathLike) -> dict:
    """Load a .safetensors or torch file (weights_only) into a dict. Errors name the file."""
    path = Path(path)
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


def load_sharded(folder: str | os.PathLike) -> StateDict:
    """A folder with `model.safetensors.index.json` or `pytorch_model.bin.index.json` (the 8B layout)."""
    folder = Path(folder)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            break
    else:
        raise CheckpointError(f"no shard index (model.safetensors.index.json) in {folder}")
    weight_map = json.loads(index.read_text())["weight_map"]
    sd: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard:  # the index names files in the same folder, nothing else
            raise CheckpointError(f"shard name {shard!r} in {index} is not a plain file name")
        sd.update(load_file(folder / shard))
    missing = set(weight_map) - set(sd)
    if missing:
        raise CheckpointError(f"{index}: keys listed but absent from the shards: {sorted(missing)[:10]}")
    return sd


def save_safetensors(sd: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Optional[dict] = None) -> None:
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)


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


def load_strict(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str, source: str = "") -> None:
    """Load every key or fail, naming missing / unexpected / mis-shaped keys. Casts to each parameter's dtype;
    works on meta-device modules (assign)."""
    own = module.state_dict()
    missing, unexpected, shapes = key_report(own, sd)
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
    on_meta = any(t.is_meta for t in own.values())
    cast = {k: v.to(own[k].dtype) if v.dtype != own[k].dtype and v.is_floating_point() else v for k, v in sd.items()}
    module.load_state_dict(cast, strict=True, assign=on_meta)


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
    """Download a file (or a whole repo snapshot) with huggingface_hub; clear error when offline."""
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
        raise CheckpointError(
            f"cannot get {repo_id}{'/' + filename if filename else ''}: {hint} ({type(e).__name__}: {e}). "
            f"Download it once on a machine with network access and pass the local folder instead."
        ) from e
