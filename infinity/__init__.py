"""Infinity: bitwise visual autoregressive image generation (arXiv 2412.04431).

Heavy pieces are imported lazily so `import infinity` stays cheap (the app and CLI start faster).
"""
from .config import ModelConfig, ScaleState, TextCondition, TokenizerConfig, TransformerConfig

__version__ = "0.1.0"


def build_tokenizer(*args, **kwargs):
    from .tokenizer import build_tokenizer as _build

    return _build(*args, **kwargs)


def build_transformer(*args, **kwargs):
    from .transformer import build_transformer as _build

    return _build(*args, **kwargs)


def __getattr__(name):
    if name == "InfinityPipeline":
        from .pipeline import InfinityPipeline

        return InfinityPipeline
    raise AttributeError(name)


__all__ = ["ModelConfig", "ScaleState", "TextCondition", "TokenizerConfig", "TransformerConfig", "build_tokenizer",
           "build_transformer", "InfinityPipeline"]
