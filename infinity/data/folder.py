"""A folder of your own captioned images.

Captions come from ``captions.jsonl`` in the folder (one ``{"file": ..., "caption": ...}``
per line, paths relative to the folder) or, when there is none, from a sidecar text file
per image (``cat.png`` + ``cat.txt``). Images are resized to cover the target with LANCZOS
and centre-cropped, the preprocessing the official training uses.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

from PIL import Image

from ..images import resize_cover_crop

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
SizeArg = int | tuple[int, int] | Sequence[tuple[int, int]]


def nearest_size(h_div_w: float, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The (h, w) whose aspect ratio is closest to ``h_div_w`` (compared in log space)."""
    return min(sizes, key=lambda hw: abs(math.log(hw[0] / hw[1]) - math.log(h_div_w)))


def _size_list(size: SizeArg) -> list[tuple[int, int]]:
    if isinstance(size, int):
        return [(size, size)]
    if len(size) == 2 and all(isinstance(v, int) for v in size):
        return [(int(size[0]), int(size[1]))]
    return [(int(h), int(w)) for h, w in size]


class ImageFolderDataset:
    """Map-style dataset over a folder of captioned images.

    ``size`` is an int, an (h, w), or a list of (h, w): with a list each image gets the
    size whose aspect ratio is nearest its own. Paths never leave ``folder``: absolute
    paths, ``..`` and links pointing outside are rejected.
    """

    def __init__(self, folder: str | os.PathLike, size: SizeArg = 64,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.root = Path(folder).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        self.sizes = _size_list(size)
        self.extensions = tuple(e.lower() for e in extensions)
        jsonl = self.root / "captions.jsonl"
        self.items = self._from_jsonl(jsonl) if jsonl.is_file() else self._from_sidecars()
        if not self.items:
            raise ValueError(f"no captioned images in {self.root} (expected images with "
                             f"captions.jsonl or a .txt caption beside each image)")

    def _inside(self, path: Path, what: str) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{what} points outside the image folder: {path}")
        return resolved

    def _from_jsonl(self, jsonl: Path) -> list[tuple[Path, str]]:
        items = []
        for n, line in enumerate(jsonl.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{jsonl}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("file"), str):
                raise ValueError(f"{where}: expected an object with a 'file' string")
            caption = rec.get("caption")
            if not isinstance(caption, str) or not caption.strip():
                raise ValueError(f"{where}: missing caption for {rec['file']!r}")
            rel = PurePosixPath(rec["file"].replace("\\", "/"))
            if rel.is_absolute() or ".." in rel.parts or Path(rec["file"]).is_absolute():
                raise ValueError(f"{where}: file must be a path inside the folder, got {rec['file']!r}")
            path = self._inside(self.root / rel, where)
            if not path.is_file():
                raise FileNotFoundError(f"{where}: image not found: {rec['file']}")
            items.append((path, caption.strip()))
        return items

    def _from_sidecars(self) -> list[tuple[Path, str]]:
        items = []
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() not in self.extensions or any(
                    p.startswith(".") for p in path.relative_to(self.root).parts):
                continue
            path = self._inside(path, "image")
            txt = path.with_suffix(".txt")
            if not txt.is_file():
                raise FileNotFoundError(f"missing caption for {path.name}: expected {txt.name} beside it "
                                        f"(or a captions.jsonl in {self.root})")
            caption = self._inside(txt, "caption file").read_text("utf-8").strip()
            if not caption:
                raise ValueError(f"empty caption file: {txt}")
            items.append((path, caption))
        return items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        path, caption = self.items[i]
        with Image.open(path) as im:
            im.load()
            h, w = nearest_size(im.height / im.width, self.sizes)
            image = resize_cover_crop(im, h, w)
        return {"image": image, "caption": caption, "h_div_w": h / w}

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(len(self)))
