"""One step of each training stage on tiny configs, self-correction invariants, and DDP on CPU (gloo)."""
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from infinity import schedules
from infinity.config import TextCondition
from infinity.images import psnr, to_pil
from infinity.io import save_safetensors
from infinity.sampling import flip_bits
from infinity.tokenizer import BitwiseTokenizer
from infinity.train.common import flip_fn, small_model_config
from infinity.train.tokenizer import tokenizer_loss
from infinity.train.transformer import bitwise_loss, scale_weights, warm_start
from infinity.transformer import InfinityTransformer

CFG = small_model_config()
TINY_TF = dataclasses.replace(CFG.transformer, depth=1, embed_dim=32, num_heads=2, text_channels=16, text_maxlen=8, mlp_ratio=8.0,
                              pool_head_div=8)


def test_tokenizer_step_trains_encoder_and_decoder():
    torch.manual_seed(0)
    tok = BitwiseTokenizer(CFG.tokenizer)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    loss, logs = tokenizer_loss(tok, x, schedules.scale_schedule(1.0, 5))
    loss.backward()
    assert torch.isfinite(loss) and 0 < logs["psnr"] < 60
    # straight-through: the encoder gets gradients through the quantizer at every scale
    assert tok.encoder.conv_in.conv.weight.grad.abs().sum() > 0
    assert tok.decoder.conv_out.conv.weight.grad.abs().sum() > 0


def _batch(B=3):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(B, 16, 8, 8, generator=g) * 0.3
    cond = TextCondition(torch.randn(B, 5, 16, generator=g), torch.ones(B, 5, dtype=torch.bool))
    return feats, cond


def test_transformer_step_and_condition_dropout():
    torch.manual_seed(0)
    model = InfinityTransformer(TINY_TF)
    cfg = dataclasses.replace(CFG, transformer=TINY_TF)
    feats, cond = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss, logs = bitwise_loss(model, feats, cond, 1.0, "0.004M", cfg, 0.0, torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]  # it learns the batch
    # dropped captions use the learned null text: cfg_uncond receives gradient only then
    model.zero_grad()
    bitwise_loss(model, feats, cond, 1.0, "0.004M", cfg, 0.0, torch.Generator(), drop_B=torch.zeros(3, dtype=torch.bool))[0].backward()
    assert model.cfg_uncond.grad is None or model.cfg_uncond.grad.abs().sum() == 0
    model.zero_grad()
    bitwise_loss(model, feats, cond, 1.0, "0.004M", cfg, 0.0, torch.Generator(), drop_B=torch.ones(3, dtype=torch.bool))[0].backward()
    assert model.cfg_uncond.grad.abs().sum() > 0


def test_self_correction_flips_inputs_not_labels():
    from infinity.tokenizer import quantizer as Q

    feats, _ = _batch()
    sched = schedules.scale_schedule(1.0, 5)
    clean = Q.residual_quantize(feats, sched)
    g = torch.Generator().manual_seed(3)
    noisy = Q.residual_quantize(feats, sched, flip=flip_fn(0.3, g, len(sched)))
    shares = [(a != b).float().mean().item() for a, b in zip(noisy.used_bits, noisy.bits)]
    assert max(shares) > 0.02 and all(s <= 0.45 for s in shares)   # p per scale drawn from {0, …, 0.3}
    assert torch.equal(noisy.bits[0], clean.bits[0])                # labels of the first scale are untouched
    assert flip_fn(0.0, g, 5) is None                                # --flips 0: the ablation


def test_training_flips_are_the_samplers_rule_with_a_share_per_scale():
    """One rule for deliberate bit errors: training draws a share per scale, then flips as `flip_bits` does with the
    same CPU generator; a scale whose share is 0 draws nothing (the generator's sequence is the training's)."""
    bits = torch.randint(0, 2, (2, 4, 4, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ours, ref = torch.Generator().manual_seed(10), torch.Generator().manual_seed(10)
    flip = flip_fn(0.3, ours, 6)
    shares = torch.randint(0, 31, (6,), generator=ref).float() / 100
    assert (shares == 0).any() and (shares > 0).any()  # this seed covers both branches
    for s, share in enumerate(shares):
        expected = bits if share == 0 else flip_bits(bits, share, ref)[0]
        assert torch.equal(flip(s, bits), expected)


def test_training_psnr_is_the_apps_psnr():
    """The tokenizer's training logs the PSNR the app and eval report (one formula): tensors in [−1, 1] with peak 2
    give the dB of the same images as 8-bit pixels."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, 256, (1, 3, 16, 16), generator=g).float() / 127.5 - 1 for _ in range(2))
    assert abs(psnr(a, b, peak=2.0) - psnr(to_pil(a)[0], to_pil(b)[0])) < 1e-3
    assert psnr(a, a, peak=2.0) == float("inf")


def test_scale_weights_balance_scales():
    sched = schedules.scale_schedule(1.0, 5)
    w = scale_weights(sched)
    assert torch.isclose(w.sum(), torch.tensor(1.0))
    per_scale = [w[a:b].sum().item() for a, b in zip([0, 1, 5, 21, 57], [1, 5, 21, 57, 121])]
    assert per_scale == sorted(per_scale)  # √(h·w) growth: finer scales count more, but not by their token count
    assert per_scale[-1] / per_scale[0] == pytest.approx(8.0, rel=1e-4)


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    """The same command under torchrun: two CPU processes, gloo, DistributedDataParallel."""
    from safetensors.torch import save_file

    tokdir, cache = tmp_path / "tok", tmp_path / "cache"
    tokdir.mkdir()
    cache.mkdir()
    save_safetensors(BitwiseTokenizer(CFG.tokenizer).state_dict(), tokdir / "tokenizer.safetensors")
    g = torch.Generator().manual_seed(0)
    for r in CFG.h_div_w[:1]:
        sched = schedules.scale_schedule(r, "0.004M", CFG.budgets)
        h, w = sched[-1]
        save_file({"features": torch.randn(8, 16, h, w, generator=g).half(), "text": torch.randn(8, 6, 384, generator=g).half(),
                   "mask": torch.ones(8, 6, dtype=torch.uint8)}, str(cache / f"r{r:.3f}_0.004M_0000.safetensors"),
                  metadata={"ratio": str(r), "budget": "0.004M", "captions": "[]"})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "infinity.train.transformer", "--tokenizer", str(tokdir), "--cache", str(cache), "--out",
           str(tmp_path / "tf"), "--steps", "2", "--batch", "4", "--sample-every", "0", "--no-export"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    state = torch.load(tmp_path / "tf" / "last.pt", weights_only=True)
    assert state["step"] == 2


def test_own_folder_as_the_only_source(tmp_path):
    from PIL import Image

    from infinity.train.common import Mixture, default_sources

    for i, c in enumerate(["a cat", "a dog"]):
        Image.new("RGB", (90, 60), (i * 200, 50, 50)).save(tmp_path / f"{i}.png")
        (tmp_path / f"{i}.txt").write_text(c)
    src = default_sources(emoji=False, folder=str(tmp_path), use_scenes=False)
    assert list(src) == ["folder"]
    mix = Mixture(CFG, src, {"folder": 1.0}, {"0.004M": 1.0}, seed=0)
    step, x, caps, ratio, budget = next(mix.batches(4))
    assert x.shape[0] == 4 and set(caps) <= {"a cat", "a dog"} and budget == "0.004M"
    assert x.shape[-2:] == tuple(s * 8 for s in schedules.scale_schedule(ratio, 5)[-1])
    with pytest.raises(ValueError, match="no data"):
        default_sources(emoji=False, folder=None, use_scenes=False)


def test_warm_start_copies_weights_and_rejects_other_shapes(tmp_path):
    src = InfinityTransformer(TINY_TF, seed=1)
    save_safetensors({k: v.half() for k, v in src.state_dict().items()}, tmp_path / "transformer.safetensors")
    dst = InfinityTransformer(TINY_TF, seed=2)
    warm_start(dst, tmp_path)  # a model folder, fp16 weights into an fp32 model
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v.half().float())
    other = InfinityTransformer(dataclasses.replace(TINY_TF, embed_dim=48), seed=2)
    with pytest.raises(RuntimeError, match="size mismatch"):
        warm_start(other, tmp_path / "transformer.safetensors")


def test_grow_depth_starts_as_the_same_function(tmp_path):
    """A shallow model's weights in a deeper model: same logits at first; the new blocks are not no-ops in shape
    only (their residual outputs are zero, the rest copied), and training moves them."""
    from infinity.train.common import grow_depth

    torch.manual_seed(0)
    shallow_cfg = dataclasses.replace(TINY_TF, depth=2)
    src = InfinityTransformer(shallow_cfg, seed=1)
    with torch.no_grad():  # non-trivial blocks (the training init starts near identity)
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_safetensors(src.state_dict(), tmp_path / "transformer.safetensors")
    deep = InfinityTransformer(dataclasses.replace(TINY_TF, depth=5), seed=2)
    warm_start(deep, tmp_path)
    feats, cond = _batch()
    sched = schedules.scale_schedule(1.0, 5)
    from infinity.tokenizer import quantizer as Q
    x = Q.transformer_inputs(Q.residual_quantize(feats, sched).codes_sum, sched)
    torch.testing.assert_close(deep(cond, x, sched, 1.0), src(cond, x, sched, 1.0), atol=1e-5, rtol=1e-5)
    assert deep.blocks[1].ffn.fc2.weight.abs().sum() == 0 and deep.blocks[1].ffn.fc1.weight.abs().sum() > 0
    # a perturbed source must not match (the test can fail)
    moved = InfinityTransformer(dataclasses.replace(TINY_TF, depth=5), seed=2)
    state = grow_depth(src.state_dict(), moved)
    state["block_chunks.0.module.1.ffn.fc2.bias"] += 0.1
    moved.load_state_dict(state)
    assert not torch.allclose(moved(cond, x, sched, 1.0), src(cond, x, sched, 1.0), atol=1e-4)
    with pytest.raises(ValueError, match="grow"):
        grow_depth(deep.state_dict(), src)


def test_budget_weights_parse_and_reject():
    from infinity.train.common import parse_budget_weights

    assert parse_budget_weights("0.016M=0.85,0.004M=0.15", CFG) == {"0.004M": 0.15, "0.016M": 0.85}
    assert parse_budget_weights(None, CFG) == {"0.004M": 1.0, "0.016M": 0.25}
    with pytest.raises(ValueError, match="unknown budget"):
        parse_budget_weights("1M=1", CFG)


def test_decoder_only_finetune_keeps_every_code(tmp_path):
    """--decoder-only: the encoder (hence every bit a transformer learned) stays exactly as initialised."""
    from infinity.train.tokenizer import train

    torch.manual_seed(0)
    tok = BitwiseTokenizer(CFG.tokenizer)
    init = tok.state_dict()
    x, sched = torch.rand(2, 3, 64, 64) * 2 - 1, schedules.scale_schedule(1.0, 5)
    clean, _ = tokenizer_loss(tok, x, sched, decoder_only=True)
    noisy, _ = tokenizer_loss(tok, x, sched, decoder_only=True, flip=lambda s, b: b ^ torch.ones_like(b))
    noisy.backward()  # flipped codes reach the decoder, never the encoder's gradients
    assert noisy.item() != clean.item() and tok.encoder.conv_in.conv.weight.grad is None
    (tmp_path / "init").mkdir()
    save_safetensors(init, tmp_path / "init" / "tokenizer.safetensors")
    out = train(CFG, tmp_path / "dec", steps=2, minutes=None, batch=2, lr=1e-2, seed=0, emoji=False, folder=None,
                device="cpu", init=tmp_path / "init", decoder_only=True, code_flips=0.3)
    from safetensors.torch import load_file

    tuned = load_file(out)
    for k, v in init.items():
        if k.startswith("encoder."):
            torch.testing.assert_close(tuned[k], v, rtol=0, atol=0)
    assert any(not torch.equal(tuned[k], v) for k, v in init.items() if k.startswith("decoder."))
    from infinity.train.tokenizer import main

    with pytest.raises(SystemExit) as e:  # flipped codes must never reach the encoder's gradients
        main(["--code-flips", "0.2", "--out", str(tmp_path / "x")])
    assert e.value.code == 2


def test_cosine_ends_with_the_time_limit():
    from infinity.train.common import cosine_lr

    assert cosine_lr(10, 1000, 1.0, 300, spent=0.9) == pytest.approx(11 / 300)  # warm-up counts steps only
    assert cosine_lr(400, 100_000, 1.0, 300, spent=1.0) == pytest.approx(0.1)  # time is up: the cosine's end
    assert cosine_lr(400, 100_000, 1.0, 300, spent=0.5) == pytest.approx(0.55)
    assert cosine_lr(1000, 1000, 1.0, 300, spent=0.0) == pytest.approx(0.1)  # or the steps, whichever first


def test_cache_processes_with_other_seeds_fill_one_folder(tmp_path):
    """Several cache builders (one per seed, e.g. a GPU machine's cores) write one folder without clashing, and
    the training cache reads their chunks as one bucket per (ratio, budget)."""
    from infinity.train.cache import FeatureCache, build_cache

    tokdir = tmp_path / "tok"
    tokdir.mkdir()
    save_safetensors(BitwiseTokenizer(CFG.tokenizer).state_dict(), tokdir / "tokenizer.safetensors")
    cfg = dataclasses.replace(CFG, h_div_w=(1.0,))
    for seed in (0, 3):
        build_cache(cfg, tokdir, tmp_path / "cache", {"0.004M": 2}, seed, emoji=False, folder=None)
    names = sorted(p.name for p in (tmp_path / "cache").glob("r*.safetensors"))
    assert names == ["r1.000_0.004M_0000.safetensors", "r1.000_0.004M_s3-0000.safetensors"]
    cache = FeatureCache(tmp_path / "cache")
    assert cache.keys == ["r1.000_0.004M"] and len(cache) == 4
    f = cache.buckets["r1.000_0.004M"]["features"]
    assert not torch.equal(f[:2], f[2:])  # other seeds, other items
