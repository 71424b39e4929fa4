"""Noto emoji images with captions from their names, from the npm package
``emoji-datasource-google`` (images Apache-2.0 by Google, metadata MIT by Cal Henderson).

Only a recognisable subset is used (food, animals, plants, weather and sky, smiling faces,
instruments, sports, vehicles): flags, keycaps, families, symbols and people are left out,
and skin-tone variants are never listed (the metadata nests them under their base emoji).
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from PIL import Image

ENV_VAR = "INFINITY_EMOJI_DIR"
PACKAGE = "emoji-datasource-google"
INSTALL_COMMAND = f"npm install --no-save {PACKAGE}@16"

# subcategory -> word used in captions ("a tulip, a flower emoji")
SUBCATEGORIES: dict[str, str] = {
    "food-fruit": "fruit", "food-vegetable": "vegetable", "food-prepared": "food",
    "food-sweet": "sweet", "drink": "drink",
    "animal-mammal": "animal", "animal-bird": "bird", "animal-marine": "sea animal",
    "animal-bug": "bug", "animal-reptile": "reptile", "animal-amphibian": "amphibian",
    "plant-flower": "flower", "plant-other": "plant", "sky & weather": "weather",
    "face-smiling": "smiley", "face-affection": "smiley", "face-tongue": "smiley", "cat-face": "cat face",
    "musical-instrument": "musical instrument", "sport": "sport",
    "transport-ground": "vehicle", "transport-air": "aircraft", "transport-water": "boat",
}
# Unicode character names that would mislead as captions.
_NAME_FIXES = {
    "black sun with rays": "sun", "white medium star": "star", "high voltage sign": "high voltage",
    "white smiling face": "smiling face", "white flower": "white flower", "aubergine": "eggplant",
    "ear of maize": "ear of corn", "rescue worker’s helmet": "rescue helmet",
}


@dataclass(frozen=True)
class EmojiEntry:
    name: str                  # cleaned, lower case: "red apple"
    short_names: tuple[str, ...]
    category: str              # lower case: "food & drink"
    subcategory: str
    path: Path


def find_emoji_root(root: str | os.PathLike | None = None) -> Path:
    """The package folder: ``root``, else $INFINITY_EMOJI_DIR, else ./node_modules or the repo's."""
    candidates = [Path(root)] if root is not None else []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates += [Path.cwd() / "node_modules" / PACKAGE,
                   Path(__file__).resolve().parents[2] / "node_modules" / PACKAGE]
    for c in candidates:
        if (c / "emoji.json").is_file() and (c / "img" / "google" / "64").is_dir():
            return c
    raise FileNotFoundError(
        f"Noto emoji data not found (looked in {', '.join(map(str, candidates))}). "
        f"Install it from the repository root with `{INSTALL_COMMAND}`, "
        f"or point ${ENV_VAR} at the package folder.")


def _clean_name(name: str) -> str:
    name = name.lower().removesuffix(" symbol").strip()
    return _NAME_FIXES.get(name, name)


def load_entries(root: str | os.PathLike | None = None,
                 subcategories: Sequence[str] = tuple(SUBCATEGORIES)) -> list[EmojiEntry]:
    """The curated emoji with a Google image on disk, in Unicode's order."""
    base = find_emoji_root(root)
    wanted = set(subcategories)
    out = []
    for e in sorted(json.loads((base / "emoji.json").read_text("utf-8")), key=lambda e: e["sort_order"]):
        path = base / "img" / "google" / "64" / e["image"]
        if (e["subcategory"] not in wanted or e.get("obsoleted_by") or not e.get("has_img_google")
                or not path.is_file()):
            continue
        shorts = tuple(re.sub(r"\d+$", "", s).replace("_", " ").replace("-", " ").strip()
                       for s in e["short_names"])
        out.append(EmojiEntry(_clean_name(e["name"]), shorts, e["category"].lower(), e["subcategory"], path))
    return out


# Names that take no "a"/"an" ("bacon", not "a bacon"); plurals are caught by their ending.
_UNCOUNTED = {
    "bacon", "bowling", "bread", "butter", "cooked rice", "cooking", "curry and rice", "custard",
    "dango", "falafel", "fire", "fog", "fondue", "green salad", "ice cream", "milky way", "oden",
    "popcorn", "pouring liquid", "shaved ice", "soft ice cream", "spaghetti", "sushi", "high voltage",
}


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _with_article(name: str) -> str:
    plural = name.endswith("s") and not name.endswith(("ss", "us", "is", "os"))
    return name if plural or name in _UNCOUNTED else _a(name)


def emoji_captions(entry: EmojiEntry) -> list[str]:
    """Every caption phrasing for one emoji; a dataset item picks one."""
    name, kind = entry.name, SUBCATEGORIES.get(entry.subcategory, "emoji")
    named = _with_article(name)
    caps = [name, f"an emoji of {named}", f"{name} emoji", f"{name} emoji, {entry.category}",
            f"{named}, {_a(kind)} emoji"]
    for short in entry.short_names:
        if short and short != name and short.isascii():
            caps.append(f"{short} emoji, {entry.category}")
    return caps


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class EmojiDataset:
    """Map-style dataset of the curated emoji, alpha-composited on white.

    Each item is the emoji scaled to fit ``size`` (int or (h, w)) minus a ``margin``
    (fraction of the short side) on each side, centred on white. Captions come from the
    name, short names and category; item ``i``'s caption depends on (seed, epoch, i).
    Images are 64 px in the package, so sizes above ~56 px are upsampled.
    """

    def __init__(self, root: str | os.PathLike | None = None, size: int | tuple[int, int] = 64,
                 margin: float = 0.08, seed: int = 0,
                 subcategories: Sequence[str] = tuple(SUBCATEGORIES), caption_mode: str = "random"):
        if caption_mode not in ("random", "name"):
            raise ValueError("caption_mode must be 'random' or 'name'")
        self.entries = load_entries(root, subcategories)
        if not self.entries:
            raise ValueError(f"no emoji matched subcategories {list(subcategories)}")
        self.h, self.w = _size_hw(size)
        self.margin, self.seed, self.caption_mode, self.epoch = margin, seed, caption_mode, 0

    def set_epoch(self, epoch: int) -> None:
        """Vary the caption phrasing per epoch while staying deterministic."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries)

    def caption(self, i: int) -> str:
        entry = self.entries[i]
        if self.caption_mode == "name":
            return entry.name
        return random.Random(f"emoji/{self.seed}/{self.epoch}/{i}").choice(emoji_captions(entry))

    def image(self, i: int) -> Image.Image:
        with Image.open(self.entries[i].path) as im:
            rgba = im.convert("RGBA")
        # Composite at native size first, so resampling never mixes in hidden colour under alpha 0.
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        side = max(1, round(min(self.h, self.w) * (1 - 2 * self.margin)))
        flat = flat.resize((side, side), Image.LANCZOS)
        canvas = Image.new("RGB", (self.w, self.h), (255, 255, 255))
        canvas.paste(flat, ((self.w - side) // 2, (self.h - side) // 2))
        return canvas

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return {"image": self.image(i), "caption": self.caption(i), "h_div_w": self.h / self.w}

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(len(self)))
