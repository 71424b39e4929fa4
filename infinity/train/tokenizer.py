"""Stage 1: train the bitwise tokenizer (BSQ-VAE) on the data mixture.

    python -m infinity.train.tokenizer --out runs/tok --minutes 25

Loss: L1 + L2 reconstruction of the image decoded from the full multi-scale code sum, plus a commitment term
that pulls the L2-normalised features towards their ±1/√d codes (BSQ). Gradients pass the quantizer
straight-through at every scale. Resumable: rerun the same command to continue from `last.pt`.

    python -m infinity.train.tokenizer --out runs/tok_dec --init runs/tok --decoder-only --minutes 30

`--decoder-only` fine-tunes the decoder alone on the frozen encoder's codes: every bit a transformer was trained
on stays the same, so a trained transformer keeps working with the sharper decoder (no cache rebuild, no
retraining). `--code-flips P` then also flips bits of half the batches (a share up to P per scale, later scales
re-quantized as in self-correction) while the target stays the clean image, to make the decoder forgiving of a
transformer's wrong last-scale bits. Measured on the bundled model (README): generation unchanged, reconstruction
ceiling lower, so the bundled decoder was fine-tuned without it.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import schedules
from ..config import ModelConfig
from ..images import psnr
from ..io import save_safetensors
from ..tokenizer import BitwiseTokenizer
from ..tokenizer import quantizer as Q
from .common import (Mixture, Timer, add_preset_argument, cosine_lr, default_sources, flip_fn, is_small,
                     parse_budget_weights, resume, save_checkpoint, setup_logging, small_model_config, warm_start)

log = logging.getLogger("infinity.train")


def tokenizer_loss(tok: BitwiseTokenizer, x: torch.Tensor, schedule, commit: float = 0.25, decoder_only: bool = False,
                   flip=None):
    with torch.set_grad_enabled(torch.is_grad_enabled() and not decoder_only):
        feats = tok.encoder(x)
        pyr = Q.residual_quantize(feats, schedule, flip=flip)  # `flip`: decode codes with wrong bits, target the image
    y = tok.decoder(pyr.codes, clamp=False)
    rec = (y - x).abs().mean() + F.mse_loss(y, x)
    z = F.normalize(feats, dim=1)
    commit_loss = F.mse_loss(z, Q.bits_to_codes(Q.codes_to_bits(z)).detach())
    if decoder_only:  # the codes are fixed: nothing for the commitment term to pull
        commit = 0.0
    return rec + commit * commit_loss, {"rec": rec.item(), "commit": commit_loss.item(),
                                         "psnr": psnr(y.detach().clamp(-1, 1), x, peak=2.0)}


def train(cfg: ModelConfig, out: Path, steps: int, minutes: float | None, batch: int, lr: float, seed: int,
          emoji: bool, folder: str | None, device: str, use_scenes: bool = True, init: Path | None = None,
          decoder_only: bool = False, code_flips: float = 0.0, budget_weights: dict | None = None) -> Path:
    setup_logging(out)
    torch.manual_seed(seed)
    tok = BitwiseTokenizer(cfg.tokenizer).to(device).train()
    if init is not None:  # a checkpoint in `out` (resume below) takes precedence
        warm_start(tok, init, "tokenizer.safetensors")
    if decoder_only:
        tok.encoder.requires_grad_(False)
    opt = torch.optim.AdamW((tok.decoder if decoder_only else tok).parameters(), lr=lr, betas=(0.9, 0.95),
                            weight_decay=0.0)
    start, state = resume(out, tok, opt)
    mix = Mixture(cfg, default_sources(emoji, folder, use_scenes), {"scenes": 0.6, "emoji": 0.3 if emoji else 0, "folder": 0.3},
                  budget_weights or {b: (0.7 if is_small(cfg, b) else 0.3) for b in cfg.budgets}, seed)
    timer, bar = Timer(minutes), tqdm(total=steps, initial=start, desc="tokenizer", mininterval=5)
    gen = torch.Generator().manual_seed(seed + start)
    step = start
    for step, x, _, ratio, budget in mix.batches(batch, start):
        if step >= steps or timer.expired():
            break
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, lr, 200, timer.fraction())
        sched = schedules.scale_schedule(ratio, budget, cfg.budgets)
        flip = flip_fn(code_flips, gen, len(sched)) if torch.rand((), generator=gen) < 0.5 else None
        loss, logs = tokenizer_loss(tok, x.to(device), sched, decoder_only=decoder_only, flip=flip)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0)
        opt.step()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{logs['psnr']:.1f}")
            log.info("step %d loss %.4f psnr %.2f commit %.4f %s %s", step, loss.item(), logs["psnr"], logs["commit"],
                     ratio, budget)
        if step % 500 == 0 and step > start:
            save_checkpoint(out / "last.pt", model=tok.state_dict(), opt=opt.state_dict(), step=step + 1)
    save_checkpoint(out / "last.pt", model=tok.state_dict(), opt=opt.state_dict(), step=step)
    save_safetensors(tok.state_dict(), out / "tokenizer.safetensors")
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    log.info("stopped at step %d; weights in %s", step, out / "tokenizer.safetensors")
    return out / "tokenizer.safetensors"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/tokenizer"))
    p.add_argument("--steps", type=int, default=6000, help="total steps of the schedule (for the LR decay)")
    p.add_argument("--minutes", type=float, default=None, help="stop this stage after so many minutes (resumable)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-emoji", action="store_true")
    p.add_argument("--no-scenes", action="store_true", help="train on your folder (and emoji) only")
    p.add_argument("--folder", default=None, help="also train on a folder of your own captioned images")
    p.add_argument("--init", type=Path, default=None,
                   help="start from this tokenizer folder's weights unless --out already holds a checkpoint")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder alone on the frozen encoder's codes (trained transformers stay valid)")
    p.add_argument("--code-flips", type=float, default=0.0,
                   help="with --decoder-only: flip up to this share of bits per scale in half the batches")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--budget-weights", default=None, metavar="B=W,...",
                   help="how often each budget is drawn, e.g. 0.016M=0.9,0.004M=0.1 (default 0.7 smallest / 0.3 larger)")
    add_preset_argument(p)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if a.code_flips and not a.decoder_only:
        p.error("--code-flips needs --decoder-only (flipped codes must not train the encoder)")
    if not 0 <= a.code_flips <= 0.5:
        p.error("--code-flips must be in [0, 0.5]")
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = small_model_config(a.preset)
    try:
        weights = parse_budget_weights(a.budget_weights, cfg) if a.budget_weights else None
    except ValueError as e:
        p.error(str(e))
    train(cfg, a.out, a.steps, a.minutes, a.batch, a.lr, a.seed, not a.no_emoji, a.folder, a.device,
          not a.no_scenes, a.init, a.decoder_only, a.code_flips, weights)


if __name__ == "__main__":
    main()
