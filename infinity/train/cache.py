"""Stage 2a: cache what the frozen parts compute — tokenizer features and text-encoder states — per
(aspect ratio, budget) bucket, so the transformer stage spends its time on the transformer.

    python -m infinity.train.cache --tokenizer runs/tokenizer --out runs/cache --per-bucket 5000

Features (not bits) are cached: bitwise self-correction re-quantizes them with fresh flips at every step.
Resumable: finished chunks are kept and skipped.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from ..config import ModelConfig
from ..io import load_file as load_weights
from ..tokenizer import build_tokenizer
from .common import default_sources, pixel_hw, setup_logging, to_tensor

log = logging.getLogger("infinity.train")
CHUNK = 500


def bucket_name(ratio: float, budget: str) -> str:
    return f"r{ratio:.3f}_{budget}"


def build_cache(cfg: ModelConfig, tokenizer_dir: Path, out: Path, per_bucket: dict, seed: int, emoji: bool,
                folder: str | None, text_encoder: str | None = None, weights: dict | None = None,
                use_scenes: bool = True, device: str = "cpu") -> None:
    """Seeds other than 0 name their chunks `<bucket>_s<seed>-<chunk>`: several processes with different seeds
    can fill one folder at once (a GPU machine's cores), and `FeatureCache` reads them all as one bucket."""
    from ..text import load_text_encoder

    setup_logging(out)
    tok = build_tokenizer(cfg.tokenizer, device=device, weights=load_weights(tokenizer_dir / "tokenizer.safetensors"))
    te = load_text_encoder(text_encoder or cfg.text_encoder, device=device)
    sources = default_sources(emoji, folder, use_scenes)
    weights = weights or {"scenes": 0.7, "emoji": 0.3, "folder": 0.3}
    names = list(sources)
    for budget, n in per_bucket.items():
        for ratio in cfg.h_div_w:
            h, w = pixel_hw(cfg, ratio, budget)
            name = bucket_name(ratio, budget)
            for c0 in tqdm(range(0, n, CHUNK), desc=name):
                part = f"{c0 // CHUNK:04d}" if seed == 0 else f"s{seed}-{c0 // CHUNK:04d}"
                path = out / f"{name}_{part}.safetensors"
                if path.is_file():
                    continue
                r = random.Random(f"cache/{seed}/{name}/{c0}")
                imgs, caps = [], []
                for _ in range(min(CHUNK, n - c0)):
                    src = r.choices(names, [weights[k] for k in names])[0]
                    im, cap = sources[src](r.randrange(1 << 30), h, w)
                    imgs.append(im)
                    caps.append(cap)
                feats = []
                with torch.no_grad():
                    for i in range(0, len(imgs), 64):
                        feats.append(tok.image_to_features(to_tensor(imgs[i : i + 64]).to(device)).half().cpu())
                    text = te.encode(caps)
                save_file({"features": torch.cat(feats).contiguous(), "text": text.features.half().cpu().contiguous(),
                           "mask": text.mask.to(torch.uint8).cpu().contiguous()}, str(path),
                          metadata={"captions": json.dumps(caps), "ratio": str(ratio), "budget": budget})
    log.info("cache complete in %s", out)


class FeatureCache:
    """All cached buckets in memory: `sample(rng, batch)` draws one bucket (weighted by tokens) and a batch."""

    def __init__(self, folder: Path, budget_weights: dict | None = None):
        self.buckets: dict[str, dict] = {}
        for f in sorted(Path(folder).glob("r*_*.safetensors")):
            key = f.name.rsplit("_", 1)[0]
            with safe_open(str(f), "pt") as sf:
                meta = sf.metadata()
                d = {k: sf.get_tensor(k) for k in ("features", "text", "mask")}
            b = self.buckets.setdefault(key, {"features": [], "text": [], "mask": [], "ratio": float(meta["ratio"]),
                                               "budget": meta["budget"]})
            for k in ("features", "text", "mask"):
                b[k].append(d[k])
        if not self.buckets:
            raise FileNotFoundError(f"no cache chunks in {folder}: run `python -m infinity.train.cache` first")
        for b in self.buckets.values():
            L = max(t.shape[1] for t in b["text"])
            b["text"] = torch.cat([torch.nn.functional.pad(t, (0, 0, 0, L - t.shape[1])) for t in b["text"]])
            b["mask"] = torch.cat([torch.nn.functional.pad(m, (0, L - m.shape[1])) for m in b["mask"]]).bool()
            b["features"] = torch.cat(b["features"])
        self.keys = sorted(self.buckets)
        bw = budget_weights or {}
        self.weights = [bw.get(self.buckets[k]["budget"], 1.0) for k in self.keys]

    def __len__(self) -> int:
        return sum(len(b["features"]) for b in self.buckets.values())

    def sample(self, rng: torch.Generator, batch: int):
        k = self.keys[torch.multinomial(torch.tensor(self.weights), 1, generator=rng).item()]
        b = self.buckets[k]
        idx = torch.randint(len(b["features"]), (batch,), generator=rng)
        mask = b["mask"][idx]
        L = int(mask.sum(1).max())
        return b["features"][idx].float(), b["text"][idx, :L].float(), mask[:, :L], b["ratio"], b["budget"]


def main(argv=None):
    from .common import add_preset_argument, small_model_config

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", type=Path, default=Path("runs/tokenizer"))
    p.add_argument("--out", type=Path, default=Path("runs/cache"))
    p.add_argument("--per-bucket", type=int, default=5000, help="items per aspect ratio at the smallest budget")
    p.add_argument("--large-per-bucket", type=int, default=1000, help="items per aspect ratio at larger budgets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-emoji", action="store_true")
    p.add_argument("--no-scenes", action="store_true", help="train on your folder (and emoji) only")
    p.add_argument("--folder", default=None)
    p.add_argument("--text-encoder", default=None, help="a local text-encoder folder instead of the preset's")
    p.add_argument("--device", default="cpu", help="where the tokenizer and text encoder run (e.g. cuda)")
    add_preset_argument(p)
    a = p.parse_args(argv)
    cfg = small_model_config(a.preset)
    small = min(cfg.budgets, key=cfg.budgets.get)
    per = {b: (a.per_bucket if b == small else a.large_per_bucket) for b in cfg.budgets}
    build_cache(cfg, a.tokenizer, a.out, per, a.seed, not a.no_emoji, a.folder, a.text_encoder,
                use_scenes=not a.no_scenes, device=a.device)


if __name__ == "__main__":
    main()
