"""Opt-in int8 CPU inference: layers replaced, logits close to float32, sampling works, training/GPU refused."""
import copy

import pytest
import torch

from infinity.sampling import generate
from infinity.tokenizer import transformer_inputs
from infinity.validation import InvalidInput

pytest.importorskip("torch.ao.nn.quantized.dynamic")
PROMPT = "a red cat"


@pytest.fixture(scope="module")
def pair(tiny_pipe):
    from infinity.transformer.int8 import quantize_int8

    tf = tiny_pipe.transformer
    return tf, quantize_int8(copy.deepcopy(tf))


def test_block_linears_are_int8_and_the_rest_float(pair):
    _, q = pair
    blk = q.blocks[0]
    from infinity.transformer.int8 import Int8Linear, fused_available

    for m in (blk.sa.mat_qkv, blk.sa.proj, blk.ca.mat_q, blk.ca.proj, blk.ffn.fc1, blk.ffn.fc2):
        assert isinstance(m, Int8Linear) or "quantized" in type(m).__module__, type(m)
    # with oneDNN and VNNI the FFN's GELU runs in fc1's output pass, and the FFN must not apply it again
    assert blk.ffn.gelu_fused == fused_available() == isinstance(blk.ffn.fc1, Int8Linear)
    assert isinstance(blk.ca.mat_kv, torch.nn.Linear) and blk.sa.qkv_bias_folded  # text projection: once, float


def test_int8_logits_close_to_float32_and_most_bits_agree(pair, tiny_pipe):
    tf, q = pair
    cond, _ = tiny_pipe.encode_prompt([PROMPT])
    sched = tiny_pipe.schedule(1.0)
    states = generate(tf, cond, sched, guidance=1.0, greedy=True)
    x = transformer_inputs([s.codes_sum for s in states], sched)
    with torch.no_grad():
        ref, got = tf(cond, x, sched), q(cond, x, sched)
    rel = ((got - ref).norm() / ref.norm()).item()
    print(f"int8 vs float32 on the golden tiny model: relative logit error {rel:.4f}")
    assert 0 < rel < 0.05, rel  # not bit-exact (it is int8), but close
    agree = ((got[..., 0] > got[..., 1]) == (ref[..., 0] > ref[..., 1])).float().mean().item()
    print(f"bits equal: {agree:.4f}")
    assert agree > 0.95, agree
    # KV-cached sampling runs end to end on the quantized model
    out = generate(q, cond, sched, guidance=3.0, greedy=True)
    assert out[-1].codes_sum.shape == states[-1].codes_sum.shape


def test_int8_refused_off_cpu(tiny_pipe):
    from infinity.transformer.int8 import quantize_int8

    m = copy.deepcopy(tiny_pipe.transformer).to("meta")
    with pytest.raises(InvalidInput, match="CPUs"):
        quantize_int8(m)


def test_app_serves_int8_on_request(monkeypatch):
    pytest.importorskip("gradio")
    import app

    assert getattr(app.load_pipeline(int8=True).transformer, "int8", False)
    assert not getattr(app.load_pipeline().transformer, "int8", False)
    monkeypatch.setenv("INFINITY_INT8", "1")
    assert app.parse_args([]).int8 and not app.parse_args([]).share
    monkeypatch.setenv("INFINITY_INT8", "0")
    assert not app.parse_args([]).int8


def test_int8_linear_matches_float_with_and_without_the_fused_gelu():
    from infinity.transformer.int8 import Int8Linear, fused_available

    if not fused_available():
        pytest.skip("no oneDNN int8 linear with VNNI here (the dynamic quantized linear is used instead)")
    g = torch.Generator().manual_seed(0)
    w, b, x = torch.randn(48, 32, generator=g), torch.randn(48, generator=g), torch.randn(2, 5, 32, generator=g)
    ref = torch.nn.functional.linear(x, w, b)
    for post, want in (("none", ref), ("gelu", torch.nn.functional.gelu(ref, approximate="tanh"))):
        got = Int8Linear(w, b, post, "tanh" if post == "gelu" else "")(x)
        assert got.shape == want.shape
        assert ((got - want).norm() / want.norm()).item() < 0.02
    zeros = Int8Linear(w, None)(torch.zeros(3, 32))  # an all-zero input has no range: still exact zeros out
    assert torch.equal(zeros, torch.zeros(3, 48))
