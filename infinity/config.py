"""Frozen configs for each component, named presets, and the typed payloads passed between modules.

Only the standard library is imported here (the payload types name torch tensors as strings), so every other
module can depend on this one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:  # pragma: no cover
    import torch

# Pixel budgets of the official tables: name -> number of scales (Infinity dynamic_resolution; every shorter
# schedule is a prefix of the 13-scale '1M' one).
OFFICIAL_BUDGETS: Mapping[str, int] = {"0.06M": 7, "0.25M": 10, "0.60M": 12, "1M": 13}


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer (BSQ VAE)
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerConfig:
    """The official BSQ-VAE family (`flux_vqgan.AutoEncoder` + `MultiScaleBSQ`).

    `codebook_dim` bits per latent position (paper §3.1: d sign bits, codebook 2^d). The stride is
    2**(len(ch_mult)-1). `spatial_patchify` marks a VAE whose 2×2 latent patches are read by the transformer as one
    token of 4·d bits at twice the stride (Infinity-8B, paper §3.4).
    """

    codebook_dim: int = 32
    base_ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4, 4)
    num_res_blocks: int = 2
    # GroupNorm groups. The official VAEs use 32 (over ≥128 channels). A narrow VAE needs fewer: with one
    # channel per group the norm removes each channel's spatial mean, and a flat background colour can no
    # longer reach the decoder's output.
    norm_groups: int = 32
    spatial_patchify: bool = False
    # official interpolation modes: residual -> scale is 'area' (adaptive average), code -> full size 'trilinear'
    down_mode: str = "area"
    up_mode: str = "trilinear"

    @property
    def stride(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def token_stride(self) -> int:
        """Pixels per transformer token (the VAE stride, doubled by spatial patchify)."""
        return self.stride * (2 if self.spatial_patchify else 1)

    @property
    def token_bits(self) -> int:
        """Bits the transformer predicts per token."""
        return self.codebook_dim * (4 if self.spatial_patchify else 1)


TOKENIZER_PRESETS: dict[str, TokenizerConfig] = {
    "vae-d16": TokenizerConfig(codebook_dim=16),
    "vae-d24": TokenizerConfig(codebook_dim=24),
    "vae-d32": TokenizerConfig(codebook_dim=32),  # infinity_vae_d32.pth / infinity_vae_d32reg.pth (Infinity-2B)
    "vae-d64": TokenizerConfig(codebook_dim=64),
    # infinity_vae_d56_f8_14_patchify.pth: 14 bits at stride 8; Infinity-8B reads 2×2 patches (56 bits, stride 16)
    "vae-d14-patchify": TokenizerConfig(codebook_dim=14, ch_mult=(1, 2, 4, 4), spatial_patchify=True),
    # the tiny official VAE of the golden test vectors (base_ch 32, patch 4)
    "vae-golden-tiny": TokenizerConfig(codebook_dim=16, base_ch=32, ch_mult=(1, 1, 2)),
}


# ----------------------------------------------------------------------------------------------------------------
# Transformer
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TransformerConfig:
    """The Infinity transformer (`infinity/models/infinity.py` with the inference loader's flags).

    `d_vae` is the number of bits per token the transformer reads and predicts (4·codebook_dim with patchify); the
    head has 2·d_vae outputs (bitwise classifier, paper §3.2).
    """

    depth: int = 32
    embed_dim: int = 2048
    num_heads: int = 16
    d_vae: int = 32
    text_channels: int = 2048
    text_maxlen: int = 512
    mlp_ratio: float = 4.0
    block_chunks: int = 8
    norm_eps: float = 1e-6
    num_levels: int = 15  # rows of the level (scale index) embedding
    rope_theta: float = 10000.0
    cond_drop_rate: float = 0.1  # training only: share of captions replaced by the learned null text
    # Attention-pool heads for the start token: Ct5/128 (Ct5/64 when the model width exceeds 4096)
    pool_head_div: Optional[int] = None

    def __post_init__(self):
        if self.depth % self.block_chunks:
            raise ValueError(f"depth {self.depth} must divide into block_chunks {self.block_chunks}")
        if self.embed_dim % self.num_heads or self.head_dim % 4:
            raise ValueError(f"head size {self.embed_dim}/{self.num_heads} must be a whole multiple of 4 (2-D RoPE)")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def ffn_hidden(self) -> int:
        # official: round(C * mlp_ratio / 256) * 256 with Python's round-half-to-even
        return round(self.embed_dim * self.mlp_ratio / 256) * 256

    @property
    def pool_heads(self) -> int:
        div = self.pool_head_div or (64 if self.embed_dim > 4096 else 128)
        return max(1, self.text_channels // div)

    @property
    def blocks_per_chunk(self) -> int:
        return self.depth // self.block_chunks


def _layer(depth: int, width: int, heads: int) -> TransformerConfig:
    return TransformerConfig(depth=depth, embed_dim=width, num_heads=heads, block_chunks=4)


TRANSFORMER_PRESETS: dict[str, TransformerConfig] = {
    "infinity-2b": TransformerConfig(depth=32, embed_dim=2048, num_heads=16, d_vae=32, block_chunks=8),
    "infinity-8b": TransformerConfig(depth=40, embed_dim=3584, num_heads=28, d_vae=56, block_chunks=8),
    # scaling-study sizes (paper §4.4), used by the benchmarks; d_vae 32 as for the 2B model
    "infinity-layer12": _layer(12, 768, 8),
    "infinity-layer16": _layer(16, 1152, 12),
    "infinity-layer24": _layer(24, 1536, 16),
    "infinity-layer32": _layer(32, 2080, 20),
    "infinity-layer40": _layer(40, 2688, 24),
    "infinity-layer48": _layer(48, 3360, 28),
    # the tiny official transformer of the golden test vectors
    "infinity-golden-tiny": TransformerConfig(
        depth=2, embed_dim=64, num_heads=2, d_vae=16, text_channels=256, text_maxlen=16, block_chunks=2,
        cond_drop_rate=0.0, pool_head_div=128,
    ),
}


# ----------------------------------------------------------------------------------------------------------------
# A whole model: what the pipeline and the app need to know
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelConfig:
    """Everything that describes one generator: its parts and what it was trained for.

    `budgets` maps budget names to numbers of scales (prefixes of the official 13-scale schedules); `h_div_w`
    lists the aspect-ratio templates the model supports. The app labels both in real pixels via the stride.
    """

    name: str
    tokenizer: TokenizerConfig
    transformer: TransformerConfig
    text_encoder: str = "google/flan-t5-xl"
    budgets: Mapping[str, int] = field(default_factory=lambda: dict(OFFICIAL_BUDGETS))
    default_budget: str = "1M"
    h_div_w: tuple[float, ...] = ()  # empty = all 15 official templates
    defaults: Mapping[str, Any] = field(default_factory=dict)  # sampling defaults (guidance, temperature, top_p)
    # One line for people: what the model draws well and what it does not (the app shows it near the prompt)
    card: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        d = dict(d)
        tok = dict(d.pop("tokenizer"))
        tok["ch_mult"] = tuple(tok["ch_mult"])
        d["tokenizer"] = TokenizerConfig(**tok)
        d["transformer"] = TransformerConfig(**d.pop("transformer"))
        d["h_div_w"] = tuple(d.get("h_div_w", ()))
        return cls(**d)


# Whole-model presets. The bundled models are sized for two CPU cores (README, model card); budgets are named by
# their square pixel count and are prefixes of the official schedules.
SMALL_BUDGETS: Mapping[str, int] = {"0.004M": 5, "0.016M": 7}  # 64×64 (121 tokens), 128×128 (521 tokens) at 1:1
SMALL_RATIOS: tuple[float, ...] = (1.0, 0.75, 1.333, 0.5, 2.0)
_SMALL_TOKENIZER = TokenizerConfig(codebook_dim=16, base_ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, norm_groups=8)


def _small_transformer(depth: int, width: int, heads: int) -> TransformerConfig:
    return TransformerConfig(depth=depth, embed_dim=width, num_heads=heads, d_vae=16, text_channels=384,
                             text_maxlen=256, block_chunks=1, cond_drop_rate=0.1, pool_head_div=96)


_SMALL_CARD = ("Knows flat shapes on flat backgrounds (12 colours; circle, square, triangle, star, heart; positions, "
               "sizes, counts 1–3, left/right/above/below) and 462 emoji by name (\"red apple\", \"sunflower\"). "
               "Not photos, people or long sentences. Colours and places come out right; shapes, counts and emoji "
               "mostly as blobs of the right colours (README, model card).")


MODEL_PRESETS: dict[str, ModelConfig] = {
    "infinity-2b": ModelConfig(name="infinity-2b", tokenizer=TOKENIZER_PRESETS["vae-d32"],
                               transformer=TRANSFORMER_PRESETS["infinity-2b"], default_budget="1M",
                               defaults={"guidance": 3.0, "temperature": 0.5, "top_p": 0.97}),
    # Infinity-8B (infinity_8b_weights/): the d14 VAE at stride 8 read through 2×2 spatial patchify (56 bits per
    # token, 16 px per token, paper §3.4); the official 8B notebooks sample with cfg 3 and tau 1.0. Smaller budgets
    # are prefixes of the 1M schedule, as for the 2B model.
    "infinity-8b": ModelConfig(name="infinity-8b", tokenizer=TOKENIZER_PRESETS["vae-d14-patchify"],
                               transformer=TRANSFORMER_PRESETS["infinity-8b"], default_budget="1M",
                               defaults={"guidance": 3.0, "temperature": 1.0, "top_p": 0.97}),
    # the 512×512 middle stage of the 8B training (infinity_8b_512x512_weights/): same parts, never trained
    # beyond the 0.25M schedule, so the larger budgets are not offered
    "infinity-8b-512": ModelConfig(name="infinity-8b-512", tokenizer=TOKENIZER_PRESETS["vae-d14-patchify"],
                                   transformer=TRANSFORMER_PRESETS["infinity-8b"],
                                   budgets={k: OFFICIAL_BUDGETS[k] for k in ("0.06M", "0.25M")},
                                   default_budget="0.25M",
                                   defaults={"guidance": 3.0, "temperature": 1.0, "top_p": 0.97}),
    # first bundled model (sessions 1–3): 64×64 default, 8×8 last scale; objects got 2–4 tokens and came out blobs
    "small-v1": ModelConfig(name="infinity-small-scenes", tokenizer=_SMALL_TOKENIZER,
                            transformer=_small_transformer(5, 208, 4), text_encoder="minilm",
                            budgets=dict(SMALL_BUDGETS), default_budget="0.004M", h_div_w=SMALL_RATIOS,
                            defaults={"guidance": 3.0, "temperature": 0.8, "top_p": 0.9}, card=_SMALL_CARD),
    # second bundled model: the same tokenizer (same codes) at 128×128 by default, a 16×16 last scale (objects
    # get ~4× the tokens: the tokenizer keeps shapes 96 % of the time there vs 66 % at 8×8), a deeper transformer
    "small-v2": ModelConfig(name="infinity-small-v2", tokenizer=_SMALL_TOKENIZER,
                            transformer=_small_transformer(10, 208, 4), text_encoder="minilm",
                            budgets=dict(SMALL_BUDGETS), default_budget="0.016M", h_div_w=SMALL_RATIOS,
                            defaults={"guidance": 3.0, "temperature": 0.8, "top_p": 0.9}, card=_SMALL_CARD),
}


def model_preset(name: str, **transformer_overrides) -> ModelConfig:
    """A whole-model preset by name; keyword overrides change its transformer (e.g. depth=8)."""
    cfg = resolve_preset(name, MODEL_PRESETS, "model")
    if transformer_overrides:
        cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, **transformer_overrides))
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# Typed payloads between modules
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class TextCondition:
    """Per-token text features of a batch of prompts.

    `features` (B, Lmax, Ct) padded; `mask` (B, Lmax) bool, True on real tokens (the EOS counts, as in the official
    encoding); `lengths` (B,) int. The official packed form (`kv_compact`, `cu_seqlens_k`) is derived on demand.
    """

    features: "torch.Tensor"
    mask: "torch.Tensor"

    @property
    def lengths(self) -> "torch.Tensor":
        return self.mask.sum(dim=1)

    @property
    def batch_size(self) -> int:
        return self.features.shape[0]

    def to(self, device=None, dtype=None) -> "TextCondition":
        return TextCondition(self.features.to(device=device, dtype=dtype), self.mask.to(device=device))

    def packed(self):
        """Official varlen form: (kv_compact (ΣL, Ct), lens list, cu_seqlens_k int32, max_seqlen_k)."""
        import torch

        lens = self.lengths.tolist()
        kv = torch.cat([self.features[i, : lens[i]] for i in range(len(lens))], dim=0)
        cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0).tolist()), dtype=torch.int32)
        return kv, lens, cu, max(lens)

    @classmethod
    def from_packed(cls, kv_compact, lens) -> "TextCondition":
        import torch

        lens = [int(n) for n in lens]
        feats = kv_compact.new_zeros(len(lens), max(lens), kv_compact.shape[-1])
        mask = torch.zeros(len(lens), max(lens), dtype=torch.bool, device=kv_compact.device)
        start = 0
        for i, n in enumerate(lens):
            feats[i, :n] = kv_compact[start : start + n]
            mask[i, :n] = True
            start += n
        return cls(feats, mask)

    @classmethod
    def cat(cls, conds: "list[TextCondition]") -> "TextCondition":
        """Stack several conditions along the batch, padding to the longest."""
        import torch

        L = max(c.features.shape[1] for c in conds)
        feats, masks = [], []
        for c in conds:
            pad = L - c.features.shape[1]
            feats.append(torch.nn.functional.pad(c.features, (0, 0, 0, pad)))
            masks.append(torch.nn.functional.pad(c.mask, (0, pad)))
        return cls(torch.cat(feats), torch.cat(masks))


@dataclass
class ScaleState:
    """One scale of a generation or an encoding.

    `bits` (B, h, w, d) uint8 on the tokenizer's latent grid (VAE grid for patchify); `codes_sum` (B, d, H, W) the
    running sum of upsampled codes after this scale (what the decoder would see if we stopped here); `flip_mask`
    (B, h, w, d) bool where bits were flipped on purpose (None when nothing was flipped).
    """

    index: int
    hw: tuple[int, int]
    bits: "torch.Tensor"
    codes_sum: "torch.Tensor"
    flip_mask: "Optional[torch.Tensor]" = None
    seconds: float = 0.0


def resolve_preset(name_or_config, presets: Mapping[str, Any], what: str):
    """A preset name or a config → the config; unknown names fail listing the known ones."""
    if not isinstance(name_or_config, str):
        return name_or_config
    if name_or_config not in presets:
        raise KeyError(f"unknown {what} preset {name_or_config!r}; known: {sorted(presets)}")
    return presets[name_or_config]
