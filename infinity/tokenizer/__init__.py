"""The bitwise multi-scale residual tokenizer (paper §3.1): BSQ-VAE encoder/decoder + sign-bit pyramid."""
from .model import BitwiseTokenizer, build_tokenizer, official_to_ours
from .quantizer import (Pyramid, accumulate, bits_to_codes, bits_to_codes_sum, bits_to_indices, codes_to_bits,
                        indices_to_bits, quantize, residual_quantize, transformer_inputs)

__all__ = ["BitwiseTokenizer", "build_tokenizer", "official_to_ours", "Pyramid", "accumulate", "bits_to_codes",
           "bits_to_codes_sum", "bits_to_indices", "codes_to_bits", "indices_to_bits", "quantize",
           "residual_quantize", "transformer_inputs"]
