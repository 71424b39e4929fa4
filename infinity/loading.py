"""From a source (nothing, a folder, a hub id, a variant name) to loaded parts: what `InfinityPipeline.from_pretrained`
does, kept here so the published file layouts and the memory placement read in one place.

The published checkpoints (Hugging Face repo `FoundationVision/Infinity`, facts §11):

| variant | transformer | VAE | text encoder |
| --- | --- | --- | --- |
| `infinity-2b` | `infinity_2b_reg.pth` (one bare state dict) | `infinity_vae_d32reg.pth` | google/flan-t5-xl |
| `infinity-8b` | `infinity_8b_weights/` (shards + `*.index.json`) | `infinity_vae_d56_f8_14_patchify.pth` | google/flan-t5-xl |
| `infinity-8b-512` | `infinity_8b_512x512_weights/` (shards) | `infinity_vae_d56_f8_14_patchify.pth` | google/flan-t5-xl |

Choosing among them: an explicit `variant` wins; a variant name as the source means that variant from the hub;
the hub id alone means Infinity-2B (what the repository's README leads with); a local folder holding the files of
several variants (a full snapshot of the repo) also means the first present of 2B, 8B, 8B-512, and a folder
holding one variant's files means that variant. A sharded folder itself (`infinity_8b_weights/`) may be given too;
its VAE and T5 are then looked for beside it.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from .config import MODEL_PRESETS, ModelConfig, resolve_preset
from .io import SHARD_INDEX_NAMES, CheckpointError, hub_download, load_file

log = logging.getLogger(__name__)

OFFICIAL_REPO = "FoundationVision/Infinity"


@dataclass(frozen=True)
class OfficialFiles:
    transformer: str  # a file, or a folder of shards with an index (loaded shard by shard)
    tokenizer: str

    @property
    def sharded(self) -> bool:
        return not self.transformer.endswith((".pth", ".safetensors"))


OFFICIAL_VARIANTS: dict[str, OfficialFiles] = {  # keys are MODEL_PRESETS names
    "infinity-2b": OfficialFiles("infinity_2b_reg.pth", "infinity_vae_d32reg.pth"),
    "infinity-8b": OfficialFiles("infinity_8b_weights", "infinity_vae_d56_f8_14_patchify.pth"),
    "infinity-8b-512": OfficialFiles("infinity_8b_512x512_weights", "infinity_vae_d56_f8_14_patchify.pth"),
}
DEFAULT_VARIANT = "infinity-2b"
VARIANT_ALIASES = {"2b": "infinity-2b", "8b": "infinity-8b", "8b-512": "infinity-8b-512",
                   "8b-512x512": "infinity-8b-512", "infinity-8b-512x512": "infinity-8b-512"}
# where the official scripts keep flan-t5-xl next to the weights (`weights/flan-t5-xl`; the 8B notebooks use
# `weights/flan-t5-xl-official`)
T5_FOLDERS = ("flan-t5-xl", "flan-t5-xl-official")
# kept for callers of the first version, which knew the 2B files only
OFFICIAL_FILES = {"transformer": OFFICIAL_VARIANTS["infinity-2b"].transformer,
                  "tokenizer": OFFICIAL_VARIANTS["infinity-2b"].tokenizer}


def variant_name(name: Optional[str]) -> Optional[str]:
    """'8b', 'Infinity-8B', 'infinity-8b-512x512' … → the preset name; None stays None; unknown names fail."""
    if name is None:
        return None
    key = str(name).strip().lower()
    key = VARIANT_ALIASES.get(key, key)
    if key not in OFFICIAL_VARIANTS:
        from .validation import InvalidInput

        raise InvalidInput(f"unknown model variant {name!r}; choose one of {', '.join(OFFICIAL_VARIANTS)}")
    return key


def is_variant_name(text) -> bool:
    key = str(text).strip().lower()
    return VARIANT_ALIASES.get(key, key) in OFFICIAL_VARIANTS


@dataclass
class Resolved:
    """Where a model's parts are: our own folder (`config.json`) or an official variant's files."""

    config: ModelConfig
    variant: Optional[str]  # None for our format
    transformer: Path
    tokenizer: Path
    text_encoder: Optional[str]  # a local T5 folder when one was found; None: the config's (a hub id)


def resolve(source: Union[str, Path, None], variant: Optional[str] = None,
            bundled: Optional[Path] = None) -> Resolved:
    """Find the files of the model `source` names (see the module docstring for the rules)."""
    variant = variant_name(variant)
    if source is None and variant is not None:
        source = OFFICIAL_REPO
    if source is None:
        if bundled is None or not (bundled / "config.json").is_file():
            raise CheckpointError(f"the bundled model is missing from {bundled}: train it with "
                                  "`python -m infinity.train.transformer` (README) or pass a source")
        source = bundled
    folder = Path(source).expanduser()
    if not folder.is_dir() and is_variant_name(source):
        return resolve(OFFICIAL_REPO, variant or variant_name(str(source)))
    if (folder / "config.json").is_file():
        if variant is not None:
            log.warning("%s is a converted model (config.json): variant=%s is ignored", folder, variant)
        import json

        cfg = ModelConfig.from_dict(json.loads((folder / "config.json").read_text()))
        return Resolved(cfg, None, folder / "transformer.safetensors", folder / "tokenizer.safetensors", None)
    if folder.is_dir():
        return _resolve_official_folder(folder, variant)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
        raise CheckpointError(f"model folder not found: {source}")
    return _download(str(source), variant or DEFAULT_VARIANT)


def _has_index(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in SHARD_INDEX_NAMES)


def _resolve_official_folder(folder: Path, variant: Optional[str]) -> Resolved:
    roots = [folder]
    if _has_index(folder):  # the shards folder itself: its variant from its name, the VAE beside it
        named = [v for v, f in OFFICIAL_VARIANTS.items() if f.sharded and f.transformer == folder.name]
        variant = variant or (named[0] if named else None)
        if variant is None or not OFFICIAL_VARIANTS[variant].sharded:
            raise CheckpointError(f"{folder} holds sharded weights but its name does not say which model: pass "
                                  f"variant= one of {[v for v, f in OFFICIAL_VARIANTS.items() if f.sharded]}")
        roots = [folder.parent, folder]
        tf_path = folder
    else:
        present = [v for v, f in OFFICIAL_VARIANTS.items() if _transformer_present(folder / f.transformer, f)]
        if variant is None:
            if not present:
                expected = "; ".join(f"{v}: {f.transformer} + {f.tokenizer}" for v, f in OFFICIAL_VARIANTS.items())
                raise CheckpointError(f"{folder} holds neither a converted model (config.json) nor official weights "
                                      f"({expected})")
            variant = present[0]
            if len(present) > 1:
                log.info("%s holds %s; loading %s (pass variant= to choose)", folder, ", ".join(present), variant)
        files = OFFICIAL_VARIANTS[variant]
        tf_path = folder / files.transformer
        if variant not in present:
            what = "a folder of shards with model.safetensors.index.json" if files.sharded else "a file"
            raise CheckpointError(f"{variant}: {tf_path} not found (expected {what})")
    vae = _first([r / OFFICIAL_VARIANTS[variant].tokenizer for r in roots], Path.is_file)
    if vae is None:
        raise CheckpointError(f"{variant}: the VAE {OFFICIAL_VARIANTS[variant].tokenizer} is missing from {folder}")
    t5 = _first([r / n for r in roots for n in T5_FOLDERS], Path.is_dir)
    return Resolved(MODEL_PRESETS[variant], variant, tf_path, vae, str(t5) if t5 else None)


def _transformer_present(p: Path, files: OfficialFiles) -> bool:
    return _has_index(p) if files.sharded else p.is_file()


def _first(paths, test) -> Optional[Path]:
    return next((p for p in paths if test(p)), None)


def _download(repo: str, variant: str) -> Resolved:
    files = OFFICIAL_VARIANTS[variant]
    if files.sharded:  # shard names are read from the index, so fetch the folder as a whole
        root = hub_download(repo, None, allow_patterns=[f"{files.transformer}/*", files.tokenizer])
    else:
        tf = hub_download(repo, files.transformer)
        hub_download(repo, files.tokenizer)
        root = tf.parent  # both land in the same snapshot folder
    return _resolve_official_folder(root, variant)


# ----------------------------------------------------------------------------------------------------------------
# loading with a memory plan
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryPlan:
    """Where the weights live and run.

    `text_encoder_device`: where T5 runs ("cpu" keeps its 4.9 GB off the GPU; its features are moved over);
    `offload_text_encoder`: T5 stays in host memory and visits the GPU only while a prompt is encoded;
    `offload_blocks`: the transformer blocks stay in host memory and visit the GPU one at a time (slower: every
    block crosses the bus at every scale)."""

    text_encoder_device: Optional[str] = None
    offload_text_encoder: bool = False
    offload_blocks: bool = False


def packs_by_default(cfg: ModelConfig, device: torch.device, dtype: Optional[torch.dtype] = None,
                     memory: MemoryPlan = MemoryPlan(), int8: bool = False) -> bool:
    """Whether a model loads with oneDNN-packed linear layers when the caller does not say: an official
    architecture (2B, 8B, the layer* family) in float32 on a CPU, without int8 or block offloading, where the
    build has the packed kernels. Why only those: their time is the blocks' matmuls, which packing makes ~1.2×
    faster with the same sampled bits (README, Performance); the bundled small model's time is per-scale Python,
    so it gains nothing and stays an ordinary (trainable, savable) module."""
    from .config import TRANSFORMER_PRESETS
    from .transformer.packed import available

    official = any(cfg.transformer == TRANSFORMER_PRESETS[n] for n in TRANSFORMER_PRESETS
                   if n in ("infinity-2b", "infinity-8b") or n.startswith("infinity-layer"))
    plain_cpu = device.type == "cpu" and dtype in (None, torch.float32) and not int8 and not memory.offload_blocks
    return official and plain_cpu and available()


def load_parts(resolved: Resolved, device: torch.device, dtype: Optional[torch.dtype] = None,
               memory: MemoryPlan = MemoryPlan(), int8: bool = False, config=None, packed: Optional[bool] = None):
    """Tokenizer and transformer of a resolved source, placed by the plan; `config` (a ModelConfig or preset
    name) replaces the variant's (tests load tiny files in the official layout). `packed=None`: as
    `packs_by_default` decides."""
    from .tokenizer import build_tokenizer
    from .transformer import build_transformer

    cfg = resolve_preset(config, MODEL_PRESETS, "model") if config is not None else resolved.config
    if packed is None:
        packed = packs_by_default(cfg, device, dtype, memory, int8)
    low = dtype is not None and dtype != torch.float32
    host = torch.device("cpu")

    def place(key: str, t: torch.Tensor) -> torch.Tensor:
        # as the official loader: the blocks in the reduced dtype (autocast runs them), everything else float32
        block = key.startswith("block_chunks.")
        dev = host if block and memory.offload_blocks else device
        if not t.is_floating_point():
            return t.to(dev)
        return t.to(dev, dtype if block and low else torch.float32)

    tok = build_tokenizer(cfg.tokenizer, device="meta", weights=resolved.tokenizer).to(device)
    tf = build_transformer(cfg.transformer, device="meta")
    source = resolved.transformer
    # our safetensors files hold the transformer as one state dict; official sharded folders load shard by shard
    tf.load_official(load_file(source) if resolved.variant is None else source, place=place)
    if memory.offload_blocks:
        from .offload import offload_blocks

        offload_blocks(tf, device)
    if int8:
        from .transformer.int8 import quantize_int8

        quantize_int8(tf)
    if packed:
        from .transformer.packed import pack_linears

        pack_linears(tf)
    return tok.eval(), tf.eval(), cfg


def load_text(resolved: Resolved, cfg: ModelConfig, device: torch.device, text_encoder=None,
              memory: MemoryPlan = MemoryPlan()):
    """The text encoder: an instance as given, a name or folder, the T5 found beside official weights, or the
    config's; placed by the plan."""
    from . import text as T  # looked up at call time (tests substitute `load_text_encoder`)

    if isinstance(text_encoder, T.TextEncoder):
        te = text_encoder
    else:
        te = T.load_text_encoder(text_encoder or resolved.text_encoder or cfg.text_encoder,
                                 device="cpu" if memory.offload_text_encoder else
                                 (memory.text_encoder_device or device))
    run_on = torch.device(memory.text_encoder_device or device)
    if memory.offload_text_encoder and run_on.type != "cpu":
        te.offload(run_on)
    elif isinstance(text_encoder, T.TextEncoder) and memory.text_encoder_device is not None:
        te.to(run_on)
    return te


# ----------------------------------------------------------------------------------------------------------------
# the same memory options for the CLI and the app
# ----------------------------------------------------------------------------------------------------------------
MEMORY_ENV = {"text_encoder_device": "INFINITY_TEXT_ENCODER_DEVICE",
              "offload_text_encoder": "INFINITY_OFFLOAD_TEXT_ENCODER", "offload_blocks": "INFINITY_OFFLOAD_BLOCKS"}


def add_memory_args(parser, environ=None) -> None:
    """`--text-encoder-device`, `--offload-text-encoder`, `--offload-blocks` on an argparse parser; with
    `environ` (the app: a Space sets variables, not flags) their defaults come from MEMORY_ENV's variables."""
    env = environ or {}

    def flag(key):
        return str(env.get(MEMORY_ENV[key], "")).strip().lower() not in ("", "0", "false", "no")

    g = parser.add_argument_group("memory (GPU); outputs are identical in every mode")
    g.add_argument("--text-encoder-device", choices=["cpu"], default=env.get(MEMORY_ENV["text_encoder_device"]) or None,
                   help="run the text encoder (T5-XL: 4.9 GB) on the CPU instead of the GPU")
    g.add_argument("--offload-text-encoder", action="store_true", default=flag("offload_text_encoder"),
                   help="keep the text encoder in host memory; it visits the GPU only while a prompt is encoded")
    g.add_argument("--offload-blocks", action="store_true", default=flag("offload_blocks"),
                   help="keep the transformer blocks in host memory; each visits the GPU just before it runs "
                        "(weights on the GPU: 8B 0.6 GB + one 0.4 GB block instead of 15.9 GB; slower, since every "
                        "block crosses the bus at every scale)")


def memory_kwargs(args) -> dict:
    """The `from_pretrained` keywords of parsed `add_memory_args` options."""
    return {k: getattr(args, k) for k in MEMORY_ENV}


# ----------------------------------------------------------------------------------------------------------------
# how long a GPU is borrowed per request (ZeroGPU's `spaces.GPU(duration=…)`)
# ----------------------------------------------------------------------------------------------------------------
GPU_SECONDS_1M_2B = 20.0  # one 1024² image of the 2B model with previews and video, allowance (not measured)
GPU_OVERHEAD_S = 15.0  # per call: moving the weights in, T5, writing files (allowance)


def gpu_seconds(config: ModelConfig, budget: Optional[str] = None, images: int = 1, runs: int = 1) -> int:
    """A `spaces.GPU` duration for `runs` generations of `images` images at `budget`: an allowance per call plus
    one that grows with the tokens sampled (the budget's square schedule) and the model's block size (depth·C²,
    relative to the 2B). ZeroGPU only uses it to schedule and to stop runaway calls (quota is charged for the
    time used), and shorter requests queue first, so it follows the request instead of one worst case.
    These are allowances, not measurements: docs/app.md gives the table."""
    from . import schedules

    budget = budget or config.default_budget
    if budget not in config.budgets:
        budget = config.default_budget  # the request is refused later, in its own words; borrow little for that
    tokens = sum(h * w for h, w in schedules.scale_schedule(1.0, budget, config.budgets))
    full = sum(h * w for h, w in schedules.scale_schedule(1.0, "1M"))
    t = config.transformer
    size = t.depth * t.embed_dim ** 2 / (32 * 2048 ** 2)
    scale = 1.0 + 2.0 * max(0.0, size - 1.0) / 3.0  # the 8B (3.8× the blocks) is ~2.9× slower per token
    per_image = GPU_SECONDS_1M_2B * scale * tokens / full
    return int(math.ceil(GPU_OVERHEAD_S * (2.0 if size > 2 else 1.0) + max(0, runs) * max(1, images) * per_image))


def is_official(source) -> bool:
    """Whether `source` names an official model (hub id, variant name, or a folder of official files): those need
    a GPU to be usable and run in bf16 there."""
    if source is None:
        return False
    folder = Path(str(source)).expanduser()
    if folder.is_dir():
        return not (folder / "config.json").is_file()
    return is_variant_name(source) or str(source).rstrip("/").lower() == OFFICIAL_REPO.lower()
