"""oneDNN-packed float32 linear layers (CPU inference): the golden tiny model still meets the official vectors
bit for bit, the layers are replaced and the rest refused."""

import pytest
import torch

import infinity
from infinity.sampling import generate
from infinity.transformer import packed
from infinity.validation import InvalidInput

from test_transformer_parity import _check_run, prompt, sched_of

pytestmark = pytest.mark.skipif(not packed.available(), reason="no oneDNN packed linear in this torch build")


@pytest.fixture(scope="module")
def tiny_packed(golden):
    tf = infinity.build_transformer("infinity-golden-tiny", weights=golden.weights("gpt"))
    return packed.pack_linears(tf)


def test_block_linears_are_packed(tiny_packed):
    blk = tiny_packed.blocks[0]
    for m in (blk.sa.mat_qkv, blk.sa.proj, blk.ca.mat_q, blk.ca.proj, blk.ffn.fc1, blk.ffn.fc2):
        assert isinstance(m, packed.PackedLinear), type(m)
    assert isinstance(blk.ca.mat_kv, torch.nn.Linear) and isinstance(tiny_packed.head, torch.nn.Linear)


def test_packed_linear_equals_linear_within_rounding_for_any_rows():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(96, 160)
    p = packed.PackedLinear(lin.weight, lin.bias)
    for rows in (1, 2, 7, 130, 600):  # the layout was chosen for 512 rows
        x = torch.randn(2, rows, 96, generator=g)
        with torch.no_grad():
            torch.testing.assert_close(p(x), lin(x), atol=1e-5, rtol=1e-5)


def test_packed_greedy_inference_matches_golden(golden, tiny_packed):
    states = generate(tiny_packed, prompt(golden, 0), sched_of(golden, "sq"), guidance=3, temperature=0.5,
                      greedy=True)
    _check_run(golden, "sq.infer_greedy_fp32ca", states)


def test_packed_sampling_equals_unpacked(golden, tiny_packed):
    tf = infinity.build_transformer("infinity-golden-tiny", weights=golden.weights("gpt"))
    runs = [generate(m, prompt(golden, 0), sched_of(golden, "sq"), guidance=3, temperature=0.5, top_p=0.97,
                     generator=torch.Generator().manual_seed(1)) for m in (tf, tiny_packed)]
    for a, b in zip(*runs):
        assert torch.equal(a.bits, b.bits)


def test_packing_refuses_other_dtypes(golden):
    tf = infinity.build_transformer("infinity-golden-tiny", weights=golden.weights("gpt")).to(torch.bfloat16)
    with pytest.raises(InvalidInput):
        packed.pack_linears(tf)


def test_pipeline_packed_flag():
    from infinity.pipeline import InfinityPipeline

    plain = InfinityPipeline.from_pretrained(device="cpu")
    pipe = InfinityPipeline.from_pretrained(device="cpu", packed=True)
    assert isinstance(pipe.transformer.blocks[0].ffn.fc1, packed.PackedLinear)
    a, b = (p("a red circle", seed=3) for p in (plain, pipe))
    for x, y in zip(a.states, b.states):  # the bundled model: every sampled bit as in float32 with MKL
        assert torch.equal(x.bits, y.bits)
    with pytest.raises(InvalidInput):
        InfinityPipeline.from_pretrained(device="cpu", packed=True, int8=True)
