"""Memory modes (text encoder offloaded or on the CPU, transformer blocks offloaded): outputs identical to the
plain mode. On a CPU the "device" copy is a real copy in the same memory, so the mechanics are the GPU's: each
block runs on a copy made just before its forward and afterwards points at its host tensor again."""
import copy

import pytest
import torch

from infinity.offload import Offloader, offload_blocks
from infinity.pipeline import InfinityPipeline
from infinity.validation import InvalidInput

from conftest import tiny_t5_encoder
from official_layout import official_folder, tiny_config, tiny_parts  # noqa: F401 (fixture)

PROMPT = "a red circle"


def _offloaded_copy(pipe):
    tf = copy.deepcopy(pipe.transformer)
    off = offload_blocks(tf, "cpu")
    return InfinityPipeline(pipe.tokenizer, tf, pipe.text_encoder, pipe.config), tf, off


def test_offloaded_blocks_give_identical_images_and_return_home(tiny_pipe):
    pipe, tf, off = _offloaded_copy(tiny_pipe)
    host = {id(t): t.data_ptr() for b in tf.blocks for t in b.parameters()}
    during = []

    def probe(block, args):  # runs after the offloader's own pre-hook
        during.append((sum(off.is_on(b) for b in tf.blocks),
                       all(t.data_ptr() != host[id(t)] for t in block.parameters())))

    for b in tf.blocks:
        b.register_forward_pre_hook(probe)
    a = tiny_pipe(PROMPT, seed=3, temperature=1.0)
    b = pipe(PROMPT, seed=3, temperature=1.0)
    assert a.images[0].tobytes() == b.images[0].tobytes()
    assert all(torch.equal(x.bits, y.bits) for x, y in zip(a.states, b.states))
    assert during and all(n == 1 and copied for n, copied in during)  # one block at a time, on its copy
    assert all(t.data_ptr() == host[id(t)] for b in tf.blocks for t in b.parameters())  # back on the host copy
    assert not any(off.is_on(b) for b in tf.blocks)


def test_teacher_forcing_through_offloaded_blocks(tiny_pipe, golden):
    """The block-causal forward (training / parity path) goes through the same hooks."""
    _, tf, _ = _offloaded_copy(tiny_pipe)
    cond = tiny_pipe.text_encoder.encode([PROMPT])
    sched = tiny_pipe.schedule(1.0, "tiny")
    x = torch.randn(1, sum(h * w for h, w in sched) - 1, tf.cfg.d_vae, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(tiny_pipe.transformer(cond, x, sched), tf(cond, x, sched))


def test_block_is_released_when_forward_raises():
    lin = torch.nn.Linear(3, 3)
    off = Offloader([lin], "cpu").attach()
    with pytest.raises(RuntimeError):
        lin(torch.zeros(2, 4))  # wrong width
    assert not off.is_on(lin)


def test_offloaded_text_encoder_gives_identical_features(golden):
    plain, off = tiny_t5_encoder(golden), tiny_t5_encoder(golden)
    off.offload("cpu")
    host = {id(p): p.data_ptr() for p in off.model.parameters()}
    a, b = plain.encode([PROMPT, "two squares"]), off.encode([PROMPT, "two squares"])
    assert torch.equal(a.features, b.features) and torch.equal(a.mask, b.mask)
    assert all(p.data_ptr() == host[id(p)] for p in off.model.parameters())
    assert off.device == torch.device("cpu")
    with pytest.raises(RuntimeError, match="offloaded"):
        off.to("cpu")


def test_from_pretrained_memory_flags(tmp_path, tiny_parts, golden):  # noqa: F811
    official_folder(tmp_path, "infinity-8b", tiny_parts)
    kw = dict(device="cpu", config=tiny_config())
    plain = InfinityPipeline.from_pretrained(tmp_path, text_encoder=tiny_t5_encoder(golden), **kw)
    low = InfinityPipeline.from_pretrained(tmp_path, text_encoder=tiny_t5_encoder(golden), offload_blocks=True,
                                           text_encoder_device="cpu", offload_text_encoder=True, **kw)
    assert low.transformer.offloader.device == torch.device("cpu")
    a, b = plain(PROMPT, seed=1), low(PROMPT, seed=1)
    assert a.images[0].tobytes() == b.images[0].tobytes()
    with pytest.raises(InvalidInput, match="int8"):
        InfinityPipeline.from_pretrained(tmp_path, int8=True, offload_blocks=True, **kw)


def test_cli_memory_flags_reach_from_pretrained(monkeypatch, tmp_path):
    from infinity import __main__ as cli
    from infinity.io import CheckpointError

    seen = {}

    def fake(cls, source=None, **kw):
        seen.update(kw, source=source)
        raise CheckpointError("stop here")

    monkeypatch.setattr(InfinityPipeline, "from_pretrained", classmethod(fake))
    rc = cli.main(["generate", "--prompt", "a cat", "--out", str(tmp_path / "x.png"), "--model", "infinity-8b",
                   "--device", "cpu", "--offload-blocks", "--offload-text-encoder", "--text-encoder-device", "cpu"])
    assert rc == 2 and seen["source"] == "infinity-8b" and seen["dtype"] is None
    assert seen["offload_blocks"] and seen["offload_text_encoder"] and seen["text_encoder_device"] == "cpu"
    # the variant's own budgets are checked before loading: the 512² stage has no 1M schedule
    rc = cli.main(["generate", "--prompt", "a cat", "--out", str(tmp_path / "x.png"), "--model", "8b-512",
                   "--budget", "1M"])
    assert rc == 2 and seen["source"] == "infinity-8b"  # refused before from_pretrained was called again
