"""Behaviour of the sampler and the pipeline on the golden tiny model."""
import numpy as np
import pytest
import torch

from infinity.config import TextCondition
from infinity.io import CheckpointError
from infinity.pipeline import InfinityPipeline
from infinity.sampling import FlipSpec, generate, sample_bits
from infinity.tokenizer import transformer_inputs
from infinity.validation import InvalidInput

PROMPT = "a red cat on the blue sphere"


def bits_of(out):
    return [s.bits for s in out.states]


def test_images_are_rgb_pil_of_the_schedule_size(tiny_pipe):
    out = tiny_pipe(PROMPT, seed=3, h_div_w=0.75)
    assert out.images[0].mode == "RGB" and out.images[0].size == (80, 60)  # PIL size is (W, H): 4:3 landscape
    assert out.schedule[-1] == (15, 20) and len(out.states) == 7
    assert out.seed == 3 and out.settings["h_div_w"] == 0.75
    assert set(out.timings) >= {"prepare", "sampling", "decode", "total", "scales"}
    # RGB, not BGR: the image equals the decoded tensor's channel order
    arr = torch.from_numpy(np.array(out.images[0])).float().flatten(0, 1).mean(0)
    with torch.no_grad():
        dec = ((tiny_pipe.tokenizer.codes_to_image(out.states[-1].codes_sum)[0] + 1) * 127.5).flatten(1).mean(1)
    torch.testing.assert_close(arr, dec, atol=1.0, rtol=0)


def test_same_seed_same_bits_other_seed_other_bits(tiny_pipe):
    a = tiny_pipe(PROMPT, seed=7, temperature=1.0)
    b = tiny_pipe(PROMPT, seed=7, temperature=1.0)
    c = tiny_pipe(PROMPT, seed=8, temperature=1.0)
    assert all(torch.equal(x, y) for x, y in zip(bits_of(a), bits_of(b)))
    assert a.images[0].tobytes() == b.images[0].tobytes()
    assert not all(torch.equal(x, y) for x, y in zip(bits_of(a), bits_of(c)))


def test_flip_share_zero_equals_no_flips(tiny_pipe):
    a = tiny_pipe(PROMPT, seed=1)
    b = tiny_pipe(PROMPT, seed=1, flip_share=0.0, flip_scales=[1, 2, 3])
    assert all(torch.equal(x, y) for x, y in zip(bits_of(a), bits_of(b)))
    assert all(s.flip_mask is None for s in b.states)


def test_flips_hit_only_chosen_scales_and_share_draws(tiny_pipe):
    clean = tiny_pipe(PROMPT, seed=1, greedy=True)
    flipped = tiny_pipe(PROMPT, seed=1, greedy=True, flip_share=0.3, flip_scales=[3])
    for s in range(3):
        assert torch.equal(clean.states[s].bits, flipped.states[s].bits)
    m = flipped.states[3].flip_mask
    assert m is not None and 0.15 < m.float().mean() < 0.45
    # the flipped bits are exactly the clean greedy bits xor the mask
    assert torch.equal(flipped.states[3].bits, clean.states[3].bits ^ m.to(torch.uint8))
    assert flipped.states[4].flip_mask is None


def test_kv_cached_sampling_equals_teacher_forcing(tiny_pipe):
    """Each scale's logits in the cached loop equal one block-causal pass over the same bits."""
    tf = tiny_pipe.transformer
    cond, _ = tiny_pipe.encode_prompt([PROMPT])
    sched = tiny_pipe.schedule(1.0)
    seen = []
    orig = tf.step
    tf.step = lambda *a, **k: seen.append(orig(*a, **k)) or seen[-1]
    try:
        states = generate(tf, cond, sched, guidance=1.0, temperature=1.0, greedy=True)
    finally:
        tf.step = orig
    x = transformer_inputs([s.codes_sum for s in states], sched)
    with torch.no_grad():
        full = tf(cond, x, sched)
    torch.testing.assert_close(torch.cat(seen, 1), full, atol=1e-4, rtol=0)


def test_guidance_one_skips_unconditional_half(tiny_pipe):
    tf = tiny_pipe.transformer
    cond, _ = tiny_pipe.encode_prompt([PROMPT])
    batches = []
    orig = tf.encode_text
    tf.encode_text = lambda c, *a: batches.append(c.batch_size) or orig(c, *a)
    try:
        generate(tf, cond, tiny_pipe.schedule(1.0), guidance=1.0, greedy=True)
        generate(tf, cond, tiny_pipe.schedule(1.0), guidance=2.0, greedy=True)
    finally:
        tf.encode_text = orig
    assert batches == [1, 2]


def test_batch_of_prompts_and_negative_prompt(tiny_pipe):
    out = tiny_pipe([PROMPT, "a green dog"], seed=0, negative_prompt="blurry")
    assert len(out.images) == 2 and out.states[0].bits.shape[0] == 2
    plain = tiny_pipe([PROMPT, "a green dog"], seed=0)
    assert not all(torch.equal(x, y) for x, y in zip(bits_of(out), bits_of(plain)))


def test_forced_first_scales_keep_an_images_layout(tiny_pipe, golden):
    img = golden.image("sq")[:1]
    pyr = tiny_pipe.tokenizer.image_to_bits(img, tiny_pipe.schedule(1.0))
    out = tiny_pipe(PROMPT, seed=0, forced_bits=pyr.bits[:3])
    for s in range(3):
        assert torch.equal(out.states[s].bits, pyr.bits[s])


def test_sample_bits_top_p_and_greedy():
    logits = torch.tensor([[[0.0, 5.0], [0.0, 0.1], [2.0, 0.0]]])  # p(bit=1) ≈ .993, .525, .119
    g = torch.Generator().manual_seed(0)
    assert sample_bits(logits, greedy=True).tolist() == [[1, 1, 0]]
    # with top_p 0.97 the 0.7% minority is never drawn
    many = torch.stack([sample_bits(logits, top_p=0.97, generator=g) for _ in range(400)])
    assert many[:, 0, 0].eq(1).all()
    assert 0.3 < many[:, 0, 1].float().mean() < 0.75  # the near-even bit stays random


@pytest.mark.parametrize("kw,msg", [
    (dict(prompt="   "), "empty"), (dict(seed=-1), "seed"), (dict(seed=2**31), "seed"),
    (dict(guidance=float("nan")), "finite"), (dict(temperature=0), "temperature"), (dict(top_p=1.5), "top-p"),
    (dict(flip_share=2.0), "bit-flip"), (dict(flip_scales=[9]), "flip scale"), (dict(budget="1M"), "resolution"),
    (dict(h_div_w=float("inf")), "aspect"), (dict(guidance=[1, 2]), "scales"),
])
def test_invalid_inputs_get_clear_errors(tiny_pipe, kw, msg):
    kw = {"prompt": PROMPT, **kw}
    with pytest.raises(InvalidInput, match=msg):
        tiny_pipe(kw.pop("prompt"), **kw)


def test_save_and_load_pretrained_round_trip(tiny_pipe, tmp_path, monkeypatch):
    tiny_pipe.save_pretrained(tmp_path / "m", half=False)
    import infinity.text as text

    monkeypatch.setattr(text, "load_text_encoder", lambda *a, **k: tiny_pipe.text_encoder)
    pipe = InfinityPipeline.from_pretrained(tmp_path / "m", device="cpu")
    a, b = tiny_pipe(PROMPT, seed=5), pipe(PROMPT, seed=5)
    assert a.images[0].tobytes() == b.images[0].tobytes()
    assert pipe.budgets() == ["0.06M", "tiny"] and pipe.pixel_size(1.0, "tiny") == (32, 32)


def test_missing_bundled_model_says_so(tmp_path, monkeypatch):
    import infinity.pipeline as P

    monkeypatch.setattr(P, "ASSETS", tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="bundled model is missing"):
        InfinityPipeline.from_pretrained()


def test_reduced_precision_blocks_under_autocast(tiny_pipe):
    """bf16 as the official GPU path (blocks in bf16, everything else float32, autocast): runs and stays close."""
    import copy

    tf = copy.deepcopy(tiny_pipe.transformer)
    tf.block_chunks.to(torch.bfloat16)
    pipe = InfinityPipeline(tiny_pipe.tokenizer, tf, tiny_pipe.text_encoder, tiny_pipe.config,
                            compute_dtype=torch.bfloat16)
    a = tiny_pipe(PROMPT, seed=2, greedy=True)
    b = pipe(PROMPT, seed=2, greedy=True)
    assert b.images[0].size == a.images[0].size
    agree = (a.states[2].bits == b.states[2].bits).float().mean()
    assert agree > 0.9  # bf16 rounding flips only near-tied bits


def test_prepared_request_streams_the_same_twice(tiny_pipe):
    p = tiny_pipe.prepare(PROMPT, 4, temperature=1.0)
    first = [s.bits for s in tiny_pipe.stream(PROMPT, 4, prepared=p)]
    second = [s.bits for s in tiny_pipe.stream(PROMPT, 4, prepared=p)]
    assert all(torch.equal(x, y) for x, y in zip(first, second))


def test_official_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"cannot get FoundationVision/Infinity/infinity_2b_reg.pth"):
        InfinityPipeline.from_pretrained("FoundationVision/Infinity", device="cpu")
    with pytest.raises(CheckpointError, match="model folder not found"):
        InfinityPipeline.from_pretrained("/no/such/folder", device="cpu")


def test_preview_grid_and_reduced_decode(tiny_pipe):
    from infinity.pipeline import preview_grid

    assert preview_grid((1, 1), (16, 16)) == (2, 2)
    assert preview_grid((6, 8), (12, 16)) == (12, 16)           # never beyond the full grid
    assert preview_grid((16, 16), (16, 16)) == (16, 16)         # the last scale is decoded in full
    assert preview_grid((4, 3), (32, 24), (64, 48)) == (16, 12)  # patchified: in the tokenizer's units
    out = tiny_pipe("a cat", seed=0)
    codes = out.states[-1].codes_sum
    H, W = codes.shape[-2:]
    full = tiny_pipe.decode(codes)[0]
    assert np.array_equal(np.asarray(tiny_pipe.decode(codes, (H, W))[0]), np.asarray(full))
    small = tiny_pipe.decode(codes, (H // 2, W // 2))[0]
    assert (small.width, small.height) == (full.width // 2, full.height // 2)


def test_generator_keyword_equals_seed(tiny_pipe):
    """`generator` (diffusers' habit) draws exactly what `seed` would."""
    a = tiny_pipe(PROMPT, seed=5)
    b = tiny_pipe(PROMPT, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x.bits, y.bits) for x, y in zip(a.states, b.states))


def test_stream_with_previews_is_the_one_loop(tiny_pipe):
    """`stream(previews=True)` decodes every scale; its last preview is `__call__`'s image, pixel for pixel."""
    steps = list(tiny_pipe.stream(PROMPT, 2, previews=True))
    out = tiny_pipe(PROMPT, seed=2)
    assert len(steps) == len(out.schedule) and all(len(s.previews) == 1 for s in steps)
    assert np.array_equal(np.asarray(steps[-1].previews[0]), np.asarray(out.images[0]))
    assert [s.index for s in steps] == list(range(len(steps))) and steps[-1].elapsed > 0


def test_one_wording_per_error(tiny_pipe):
    """The same bad budget gets the same sentence from check_inputs, schedule and the sampler's preparation."""
    from infinity.validation import InvalidInput

    messages = set()
    for call in (lambda: tiny_pipe.check_inputs(PROMPT, budget="9M"), lambda: tiny_pipe.schedule(1.0, "9M"),
                 lambda: tiny_pipe(PROMPT, budget="9M")):
        with pytest.raises(InvalidInput) as e:
            call()
        messages.add(str(e.value))
    assert len(messages) == 1 and "unknown resolution" in messages.pop()
