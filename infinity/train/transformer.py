"""Stage 2b: train the transformer with bitwise self-correction (paper §3.3) on cached features.

    python -m infinity.train.transformer --tokenizer runs/tokenizer --cache runs/cache --out runs/tf --minutes 55

Per step: draw a bucket (aspect ratio × budget), re-quantize its features scale by scale while flipping a random
share p_s ∈ {0, 0.01, …, 0.3} of each scale's bits (drawn per scale); the *labels* stay the true bits of what was
left, so the model learns to repair earlier mistakes. Captions are replaced by the learned null text with
probability `cond_drop_rate` (classifier-free guidance). Loss: per-bit cross-entropy, tokens weighted so every
scale counts (∝ 1/√(h·w)). Resumable; writes sample grids; `--flips 0` gives the ablation.

Runs under `torchrun --nproc_per_node N` with DistributedDataParallel (gloo on CPU, nccl on GPU).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from .. import schedules
from ..config import ModelConfig, TextCondition
from ..io import load_file
from ..tokenizer import quantizer as Q
from ..transformer import InfinityTransformer
from .cache import FeatureCache
from .common import (Timer, add_preset_argument, batch_for, cosine_lr, flip_fn, parse_budget_weights, resume,
                     save_checkpoint, setup_logging, small_model_config, warm_start)

log = logging.getLogger("infinity.train")


def scale_weights(schedule) -> torch.Tensor:
    """Per-token loss weights ∝ 1/√(h·w) of the token's scale, normalised to sum 1 (coarse scales decide the
    layout; without this the last scale's many tokens dominate)."""
    w = torch.cat([torch.full((h * w,), 1.0 / (h * w) ** 0.5) for h, w in schedule])
    return w / w.sum()


def bitwise_loss(model: InfinityTransformer, feats, cond: TextCondition, ratio: float, budget: str, cfg: ModelConfig,
                 strength: float, gen: torch.Generator, drop_B=None):
    sched = schedules.scale_schedule(ratio, budget, cfg.budgets)
    patch = cfg.tokenizer.spatial_patchify
    vae_sched = schedules.patchify_schedule(sched) if patch else sched
    pyr = Q.residual_quantize(feats, vae_sched, flip=flip_fn(strength, gen, len(sched)))
    x = Q.transformer_inputs(pyr.codes_sum, vae_sched, patchified=patch)
    labels = torch.cat([(Q.bits_patchify(b) if patch else b).flatten(1, 2) for b in pyr.bits], 1).long()
    with _autocast(feats.device):  # the re-quantization above stays float32: its bits are the labels
        logits = model(cond, x, sched, schedules.nearest_template(ratio), drop_B=drop_B).float()
    ce = F.cross_entropy(logits.view(-1, 2), labels.view(-1), reduction="none").view(labels.shape).mean(-1)
    loss = (ce * scale_weights(sched).to(ce)).sum(-1).mean()
    acc = (logits.view(*labels.shape, 2).argmax(-1) == labels).float().mean()
    return loss, {"acc": acc.item()}


def _autocast(device):
    """bf16 matmuls on a GPU (weights, optimizer and loss stay float32); CPUs train in float32, where bf16 is slow."""
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(cfg: ModelConfig, tokenizer_dir: Path, cache_dir: Path, out: Path, steps: int, minutes, batch: int,
          lr: float, strength: float, seed: int, device: str, sample_every: int, export_model: bool = True,
          snapshot_every: int = 0, init: Path | None = None, budget_weights: dict | None = None) -> None:
    ddp = "WORLD_SIZE" in os.environ
    rank = 0
    if ddp:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        rank = dist.get_rank()
    if rank == 0:
        setup_logging(out)
    torch.manual_seed(seed)
    model = InfinityTransformer(cfg.transformer, seed=seed).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    start, state = resume(out, model, opt)
    if init is not None and state is None:
        warm_start(model, init)
    # DistributedDataParallel averages gradients across processes; cfg_uncond is unused in steps without dropout
    net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if ddp else model
    cache = FeatureCache(cache_dir, budget_weights or parse_budget_weights(None, cfg))
    # each rank its own stream; after a resume, a fresh one per (seed, rank, step) so ranks never repeat each other
    gen = torch.Generator().manual_seed(seed * 1000 + rank + 7919 * start)
    if state and "gen" in state and not ddp:
        gen.set_state(state["gen"])
    timer = Timer(minutes)
    bar = tqdm(total=steps, initial=start, desc="transformer", mininterval=5, disable=rank != 0)
    step = start
    while step < steps and not timer.expired():
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, 300, timer.fraction())
        feats, text, mask, ratio, budget = cache.sample(gen, batch)
        n = batch_for(cfg, budget, batch)  # larger budgets: fewer images, about the same tokens per step
        feats, text, mask = feats[:n], text[:n], mask[:n]
        drop = torch.rand(len(feats), generator=gen) < cfg.transformer.cond_drop_rate
        loss, logs = bitwise_loss(net, feats.to(device), TextCondition(text, mask).to(device), ratio, budget, cfg,
                                  strength, gen, drop.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        if rank == 0 and step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{logs['acc']:.3f}")
            log.info("step %d loss %.4f bit-acc %.3f %s %s", step, loss.item(), logs["acc"], ratio, budget)
        if rank == 0 and step % 500 == 0:
            save_checkpoint(out / "last.pt", model=model.state_dict(), opt=opt.state_dict(), step=step, gen=gen.get_state())
        if rank == 0 and snapshot_every and step % snapshot_every == 0:  # for comparisons at equal budget
            export(model, cfg, tokenizer_dir, out / "snapshots" / f"step_{step:06d}")
            model.train()
        if rank == 0 and sample_every and step % sample_every == 0:
            write_samples(model, cfg, tokenizer_dir, out / f"samples_{step:06d}.png", device)
            model.train()
    if rank == 0:
        save_checkpoint(out / "last.pt", model=model.state_dict(), opt=opt.state_dict(), step=step, gen=gen.get_state())
        if export_model:
            export(model, cfg, tokenizer_dir, out / "model")
        log.info("stopped at step %d; model in %s", step, out / "model")
    if ddp:
        dist.destroy_process_group()


SAMPLE_PROMPTS = ["a red circle on a blue background", "a small yellow star in the top left on a black background",
                  "two green squares on a white background", "red apple", "sunflower", "cactus",
                  "a purple heart to the left of an orange triangle on a gray background", "a smiling face"]


_PARTS: dict = {}  # the frozen tokenizer and text encoder, loaded once per process


def _pipeline(model, cfg, tokenizer_dir, device):
    from ..pipeline import InfinityPipeline
    from ..text import load_text_encoder
    from ..tokenizer import build_tokenizer

    key = (str(tokenizer_dir), str(device))
    if key not in _PARTS:
        tok = build_tokenizer(cfg.tokenizer, device=device, weights=load_file(tokenizer_dir / "tokenizer.safetensors"))
        _PARTS[key] = (tok, load_text_encoder(cfg.text_encoder, device=device))
    tok, te = _PARTS[key]
    return InfinityPipeline(tok, model.eval(), te, cfg)


def write_samples(model, cfg, tokenizer_dir, path: Path, device="cpu") -> None:
    from ..viz import image_grid

    pipe = _pipeline(model, cfg, tokenizer_dir, device)
    imgs = [pipe(p, seed=i).images[0].resize((96, 96)) for i, p in enumerate(SAMPLE_PROMPTS)]
    image_grid(imgs, cols=4).save(path)


def export(model, cfg, tokenizer_dir, folder: Path) -> None:
    """A model folder (`save_pretrained`): the frozen tokenizer's weights, the transformer's and the config. The
    text encoder is named in the config, not saved, so exporting never loads one (nor needs it installed)."""
    from ..pipeline import InfinityPipeline
    from ..tokenizer import build_tokenizer

    tok = build_tokenizer(cfg.tokenizer, weights=load_file(tokenizer_dir / "tokenizer.safetensors"))
    InfinityPipeline(tok, model.eval(), None, cfg).save_pretrained(folder, half=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", type=Path, default=Path("runs/tokenizer"))
    p.add_argument("--cache", type=Path, default=Path("runs/cache"))
    p.add_argument("--out", type=Path, default=Path("runs/transformer"))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--minutes", type=float, default=None, help="stop this stage after so many minutes (resumable)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--flips", type=float, default=0.3, help="self-correction strength (0 = ablation without flips)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-every", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-export", action="store_true", help="skip writing the safetensors model at the end")
    p.add_argument("--snapshot-every", type=int, default=500, help="export a model folder every N steps")
    p.add_argument("--init", type=Path, default=None,
                   help="start from this model folder's transformer weights (e.g. assets/infinity-small) "
                        "unless --out already holds a checkpoint")
    p.add_argument("--budget-weights", default=None, metavar="B=W,...",
                   help="how often each budget's buckets are drawn, e.g. 0.016M=0.85,0.004M=0.15 "
                        "(default: the smallest 1, larger ones 1/4 per two more scales)")
    add_preset_argument(p)
    p.add_argument("--depth", type=int, default=None, help="override the preset's number of blocks (pilots)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = small_model_config(a.preset)
    if a.depth:
        cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, depth=a.depth))
    try:
        weights = parse_budget_weights(a.budget_weights, cfg)
    except ValueError as e:
        p.error(str(e))
    train(cfg, a.tokenizer, a.cache, a.out, a.steps, a.minutes, a.batch, a.lr, a.flips, a.seed, a.device,
          a.sample_every, not a.no_export, a.snapshot_every, a.init, weights)


if __name__ == "__main__":
    main()
