"""Pack what a GPU machine with no network needs to build a training cache, and unpack it there.

    python bench/device_pack.py pack --out .devcarry          # here: slim text encoder + curated emoji (~25 MB)
    python bench/device_pack.py unpack --src .devcarry --out /tmp/minilm   # there: a full MiniLM folder again

Why: this workplace's GPU machines cannot download anything and take at most 64 MiB of files per call, while
all-MiniLM-L6-v2 is 87 MiB in float32. Its word-embedding table is half of that, and our captions (the scene
grammar and the curated emoji's names) use about a thousand of its 30,522 rows. `pack` keeps those rows and the
rest of the weights in float16; `unpack` writes a normal folder with the unused rows zero, which encodes every
caption of ours as the full model does (to float16 rounding; `pack` prints the largest difference it measured).
A caption with a word outside the kept rows would read zeros: `unpack --check N` tokenizes N fresh training
captions and fails if any of them needs a row that was not kept.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = "embeddings.word_embeddings.weight"
TEXT_FILES = ("config.json", "config_sentence_transformers.json", "modules.json", "sentence_bert_config.json",
              "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "1_Pooling")


def training_captions(n_scenes: int, seed: int) -> list[str]:
    """Every phrasing of every curated emoji and `n_scenes` captions of random training scenes."""
    from infinity.data import emoji, scenes

    caps = [c for e in emoji.load_entries() for c in emoji.emoji_captions(e)]
    r = random.Random(seed)
    for _ in range(n_scenes):
        caps.append(scenes.caption_scene(scenes.sample_scene(r, "train"), r))
    return caps


def used_ids(tokenizer, captions: list[str]) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for i in range(0, len(captions), 4096):
        for row in tokenizer(captions[i:i + 4096])["input_ids"]:
            ids.update(row)
    return ids


def pack(out: Path, n_scenes: int) -> dict:
    from transformers import AutoTokenizer

    from infinity.data.emoji import find_emoji_root, load_entries
    from infinity.text import load_text_encoder, minilm_path

    src = minilm_path()
    tok = AutoTokenizer.from_pretrained(str(src))
    caps = training_captions(n_scenes, 0)
    ids = sorted(used_ids(tok, caps))
    state = load_file(str(src / "model.safetensors"))
    slim = {k: v.half().contiguous() for k, v in state.items() if k != WORDS}
    slim["word_ids"] = torch.tensor(ids, dtype=torch.int64)
    slim["word_rows"] = state[WORDS][ids].half().contiguous()
    (out / "minilm").mkdir(parents=True, exist_ok=True)
    save_file(slim, str(out / "minilm" / "slim.safetensors"))
    for name in TEXT_FILES:
        p = src / name
        (shutil.copytree(p, out / "minilm" / name, dirs_exist_ok=True) if p.is_dir()
         else shutil.copy(p, out / "minilm" / name))
    root = find_emoji_root()
    dst = out / "emoji" / root.name
    (dst / "img" / "google" / "64").mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "emoji.json", dst / "emoji.json")
    entries = load_entries()
    for e in entries:
        shutil.copy(e.path, dst / "img" / "google" / "64" / e.path.name)
    # how far the rebuilt encoder is from the real one, on captions it will see
    unpack(out, out / "check_minilm", check=0)
    sample = random.Random(1).sample(caps, 256)
    a = load_text_encoder("minilm").encode(sample)
    b = load_text_encoder(str(out / "check_minilm")).encode(sample)
    shutil.rmtree(out / "check_minilm")
    diff = ((a.features - b.features).abs() * a.mask[..., None]).max().item()
    stats = {"captions": len(caps), "rows_kept": len(ids), "emoji": len(entries),
             "max_abs_diff_vs_float32_minilm": diff, "feature_abs_max": a.features.abs().max().item()}
    print(json.dumps(stats))
    return stats


def missing_rows(folder: Path, captions: list[str], kept) -> set[int]:
    """Word rows that `captions` need and the packed copy lacks (they would read as zeros)."""
    from transformers import AutoTokenizer

    return used_ids(AutoTokenizer.from_pretrained(str(folder)), captions) - set(kept)


def unpack(src: Path, out: Path, check: int) -> None:
    slim = load_file(str(src / "minilm" / "slim.safetensors"))
    ids, rows = slim.pop("word_ids"), slim.pop("word_rows")
    config = json.loads((src / "minilm" / "config.json").read_text())
    words = torch.zeros(config["vocab_size"], rows.shape[1])
    words[ids] = rows.float()
    state = {k: v.float() for k, v in slim.items()} | {WORDS: words}
    out.mkdir(parents=True, exist_ok=True)
    for name in TEXT_FILES:
        p = src / "minilm" / name
        (shutil.copytree(p, out / name, dirs_exist_ok=True) if p.is_dir() else shutil.copy(p, out / name))
    save_file(state, str(out / "model.safetensors"))
    if check:
        missing = missing_rows(out, training_captions(check, 12345), ids.tolist())
        if missing:
            raise SystemExit(f"captions need {len(missing)} word rows that were not packed: {sorted(missing)[:20]}")
        print(f"unpacked to {out}; {check} fresh scene captions and every emoji caption use only packed rows")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--out", type=Path, default=Path(".devcarry"))
    a.add_argument("--scenes", type=int, default=200_000, help="scene captions sampled for the word list")
    b = sub.add_parser("unpack")
    b.add_argument("--src", type=Path, default=Path(".devcarry"))
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--check", type=int, default=20_000)
    args = p.parse_args()
    if args.cmd == "pack":
        pack(args.out, args.scenes)
    else:
        unpack(args.src, args.out, args.check)


if __name__ == "__main__":
    main()
