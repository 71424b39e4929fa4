"""Tiny checkpoints in the official layouts (same key names as the published files, tiny widths), for the tests
of variants and memory modes."""
import json

import pytest
import torch

import infinity
from infinity.config import ModelConfig, TokenizerConfig, TransformerConfig
from infinity.io import save_safetensors
from infinity.loading import OFFICIAL_VARIANTS

from conftest import tiny_t5_encoder

# -- tiny files in the official layouts -------------------------------------------------------------------------
TINY_TOK = TokenizerConfig(codebook_dim=4, base_ch=32, ch_mult=(1, 1, 2), num_res_blocks=1, norm_groups=8,
                           spatial_patchify=True)
# 8 blocks in 8 chunks: keys block_chunks.{0..7}.module.0.* (the 8B has 8 chunks of 5)
TINY_TF = TransformerConfig(depth=8, embed_dim=64, num_heads=2, d_vae=16, text_channels=256, text_maxlen=16,
                            block_chunks=8, pool_head_div=128, cond_drop_rate=0.0)


def tiny_config(name="tiny-8b"):
    return ModelConfig(name=name, tokenizer=TINY_TOK, transformer=TINY_TF, text_encoder="tiny-t5",
                       budgets={"tiny": 4}, default_budget="tiny", defaults={"guidance": 3.0, "temperature": 1.0,
                                                                              "top_p": 0.97})


def write_sharded(folder, sd, n_shards=3, drop_from_shard=None):
    """The transformers `save_pretrained` layout of the 8B folders: model-0000i-of-0000n.safetensors + index."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted(sd)
    names = [f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors" for i in range(n_shards)]
    weight_map = {k: names[i * n_shards // len(keys)] for i, k in enumerate(keys)}
    for name in names:
        part = {k: sd[k].to(torch.bfloat16) for k in keys if weight_map[k] == name and k != drop_from_shard}
        save_safetensors(part, folder / name)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0},
                                                                     "weight_map": weight_map}))
    return weight_map


@pytest.fixture(scope="module")
def tiny_parts():
    torch.manual_seed(0)
    tf = infinity.build_transformer(TINY_TF)
    tok = infinity.build_tokenizer(TINY_TOK)
    return tok, tf


def official_folder(root, variant, tiny_parts, golden=None):
    tok, tf = tiny_parts
    files = OFFICIAL_VARIANTS[variant]
    write_sharded(root / files.transformer, tf.state_dict())
    torch.save({"vae": tok.state_dict()}, root / files.tokenizer)  # the official VAE file: {'vae': state dict}
    if golden is not None:  # a local T5 where the official scripts keep it
        te = tiny_t5_encoder(golden)
        te.model.save_pretrained(root / "flan-t5-xl")
        te.tokenizer.save_pretrained(root / "flan-t5-xl")
    return root
