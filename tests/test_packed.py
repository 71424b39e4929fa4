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


def test_packing_twice_leaves_the_packed_layers(tiny_packed):
    before = tiny_packed.blocks[0].ffn.fc1
    assert packed.pack_linears(tiny_packed) is tiny_packed and tiny_packed.blocks[0].ffn.fc1 is before
    with pytest.raises(RuntimeError, match="already replaced"):  # a block's layers are swapped at most once
        tiny_packed.blocks[0].swap_token_linears(lambda w, b, gelu: packed.PackedLinear(w, b))


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


def test_official_architectures_pack_by_default_on_a_cpu_in_float32_only():
    from infinity.config import MODEL_PRESETS, TRANSFORMER_PRESETS
    from infinity.loading import MemoryPlan, packs_by_default

    cpu = torch.device("cpu")
    layer12 = MODEL_PRESETS["infinity-2b"].__class__(**{**vars(MODEL_PRESETS["infinity-2b"]),
                                                         "transformer": TRANSFORMER_PRESETS["infinity-layer12"]})
    for cfg in (MODEL_PRESETS["infinity-2b"], MODEL_PRESETS["infinity-8b"], MODEL_PRESETS["infinity-8b-512"], layer12):
        assert packs_by_default(cfg, cpu), cfg.name
        assert packs_by_default(cfg, cpu, torch.float32)
        assert not packs_by_default(cfg, cpu, torch.bfloat16)
        assert not packs_by_default(cfg, cpu, int8=True)
        assert not packs_by_default(cfg, cpu, memory=MemoryPlan(offload_blocks=True))
        assert not packs_by_default(cfg, torch.device("cuda"))
    for name in ("small-v1", "small-v2"):  # the bundled model: its time is per-scale Python, packing gains nothing
        assert not packs_by_default(MODEL_PRESETS[name], cpu)


def test_bundled_model_is_not_packed_by_default_and_saves(tmp_path):
    from infinity.pipeline import InfinityPipeline

    pipe = InfinityPipeline.from_pretrained(device="cpu")
    assert not getattr(pipe.transformer, "packed", False)
    assert isinstance(pipe.transformer.blocks[0].ffn.fc1, torch.nn.Linear)
    pipe.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "config.json").is_file()


def test_a_packed_model_refuses_saving_and_weight_reads_with_one_message(tmp_path, tiny_packed):
    from infinity.pipeline import InfinityPipeline

    fc1 = tiny_packed.blocks[0].ffn.fc1
    with pytest.raises(AttributeError, match="packed=False"):
        fc1.weight
    assert not hasattr(fc1, "weight") and fc1.bias is not None  # the rest of the module still answers
    pipe = InfinityPipeline.from_pretrained(device="cpu", packed=True)
    with pytest.raises(InvalidInput, match="--no-packed"):
        pipe.save_pretrained(tmp_path / "nope")
    assert not (tmp_path / "nope" / "config.json").exists()


def test_cli_packed_flag_is_tri_state(monkeypatch, tmp_path):
    from infinity.__main__ import main
    from infinity.pipeline import InfinityPipeline

    seen = []

    def load(*args, **kwargs):  # stop right after the flag reaches the loader
        seen.append(kwargs.get("packed", "missing"))
        raise SystemExit(0)

    monkeypatch.setattr(InfinityPipeline, "from_pretrained", load)
    for flag, want in (([], None), (["--packed"], True), (["--no-packed"], False)):
        with pytest.raises(SystemExit):
            main(["generate", "--prompt", "a red circle", "--out", str(tmp_path / "x.png"), "--quiet", *flag])
        assert seen[-1] is want, (flag, seen)


def test_loading_follows_the_default_unless_told(monkeypatch):
    import infinity.loading as loading
    from infinity.pipeline import InfinityPipeline

    monkeypatch.setattr(loading, "packs_by_default", lambda *a, **k: True)  # as for an official model
    assert getattr(InfinityPipeline.from_pretrained(device="cpu").transformer, "packed", False)
    assert not getattr(InfinityPipeline.from_pretrained(device="cpu", packed=False).transformer, "packed", False)
