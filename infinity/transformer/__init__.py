"""The Infinity transformer (paper §3.2): text-conditioned next-scale prediction with a bitwise head."""
from .layers import KVCache
from .model import InfinityTransformer, TextContext, build_transformer
from .rope import apply_rope, rope_cos_sin

__all__ = ["InfinityTransformer", "TextContext", "KVCache", "build_transformer", "apply_rope", "rope_cos_sin"]
