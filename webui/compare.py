"""The Compare tab's work without gradio: one prompt and base setting run under 2–4 variants, one after another,
each through the same per-scale loop as a single generation (so each column equals that single run, pixel for
pixel), then shown side by side scale by scale. Mixed into `service.Studio` (it uses its pipeline and store).

A variant is a dict that changes some of the base's settings (`VARIANT_KEYS`). Three forms exist: the API's list
of dicts, the page's table (text cells; flip scales counted from 1 as the page shows them) and the share link's
text (`format_variants` / `parse_variants`). Everything is judged by the pipeline's `check_inputs`.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterator, Optional, Union

from infinity import viz, viz_compare
from infinity.images import mean_abs_diff
from infinity.validation import InvalidInput, check_choice, check_whole

from .results import Compared, Scale, Started
from .settings import CompareSettings

SAMPLING_KEYS = ("seed", "guidance", "temperature", "top_p", "greedy", "flip_share", "flip_scales", "flip_seed")
VARIANT_KEYS = ("label",) + SAMPLING_KEYS
MIN_VARIANTS, MAX_VARIANTS = 2, 4  # each variant is a whole generation, run one after another
FLIP_SEED = 0  # the Bit flips tab's default, so a flipped column equals that tab's flipped run
PRESETS = {
    "guidance 1 / 3 / 6": lambda seed: [{"guidance": 1}, {"guidance": 3}, {"guidance": 6}],
    "temperature 0.5 / 1.0 / 1.5": lambda seed: [{"temperature": 0.5}, {"temperature": 1.0}, {"temperature": 1.5}],
    "four seeds": lambda seed: [{"seed": seed + i} for i in range(4)],
}
# the page's table: (header, key); the table holds text, blank = the base's value
TABLE = (("label", "label"), ("seed", "seed"), ("guidance", "guidance"), ("temperature", "temperature"),
         ("top-p", "top_p"), ("greedy", "greedy"), ("flip share", "flip_share"), ("flip scales", "flip_scales"))
_YES, _NO = ("1", "yes", "true", "on"), ("0", "no", "false", "off")


def preset_variants(name: str, seed: int = 0) -> list[dict]:
    return PRESETS[check_choice(name, list(PRESETS), "preset")](int(seed))


def _num(v) -> str:
    return f"{float(v):g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def label_of(v: dict) -> str:
    """What a variant changes, in words ('guidance 3', 'seed 7, greedy', 'flip 20% at 3'); its own label first."""
    if v.get("label"):
        return str(v["label"])
    words = []
    for key in ("seed", "guidance", "temperature", "top_p"):
        if v.get(key) is not None:
            words.append(f"{key.replace('_', '-')} {_num(v[key])}")
    if v.get("greedy") is not None:
        words.append("greedy" if v["greedy"] else "sampled")
    if v.get("flip_share"):
        scales = ",".join(str(int(k) + 1) for k in v.get("flip_scales") or [])
        words.append(f"flip {float(v['flip_share']):.0%} at {scales}")
    return ", ".join(words) or "base"


def _cell_value(key: str, text: str):
    """A table cell or link value → the variant's value; text that is no number is passed on as it is, so the
    pipeline words the error."""
    if key == "label":
        return text
    if key == "greedy":
        word = check_choice(text.lower(), _YES + _NO, "greedy value")
        return word in _YES
    if key == "flip_scales":
        return [_number(x) for x in text.replace("+", " ").replace(",", " ").split()]
    return _number(text)


def _number(text: str):
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() else x


def from_table(rows) -> list[dict]:
    """The page's table → variants. Blank cells keep the base's value; blank rows are skipped; flip scales are
    counted from 1 there (as the page shows scales) and from 0 here."""
    out = []
    for row in rows or []:
        cells = ["" if c is None else str(c).strip() for c in row]
        v = {key: _cell_value(key, c) for (_, key), c in zip(TABLE, cells) if c}
        if "flip_scales" in v:
            v["flip_scales"] = [k - 1 if isinstance(k, int) else k for k in v["flip_scales"]]
        if v:
            out.append(v)
    return out


def to_table(variants: list[dict]) -> list[list[str]]:
    def cell(v, key):
        if v.get(key) is None:
            return ""
        if key == "greedy":
            return "yes" if v[key] else "no"
        if key == "flip_scales":
            return ",".join(str(int(k) + 1) for k in v[key])
        return _num(v[key])

    return [[cell(v, key) for _, key in TABLE] for v in variants]


def format_variants(variants: list[dict]) -> str:
    """Variants as one link value: 'guidance:1;guidance:3' (fields by ',', flip scales 0-based, by '+')."""
    def value(key, x):
        if key == "flip_scales":
            return "+".join(str(int(k)) for k in x)
        if key == "label":  # the separators cannot appear inside a value
            return " ".join(str(x).replace(";", " ").replace(",", " ").replace(":", " ").split())
        return str(int(x)) if isinstance(x, bool) else _num(x)

    parts = [",".join(f"{k}:{value(k, v[k])}" for k in VARIANT_KEYS if v.get(k) not in (None, "", []))
             for v in variants]
    return ";".join(p or "base" for p in parts)  # a variant that changes nothing is the base itself


def parse_variants(text: str) -> list[dict]:
    """The inverse of `format_variants`; ValueError for text that is not in that form."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        v = {}
        if part == "base":
            out.append(v)
            continue
        for item in filter(None, (i.strip() for i in part.split(","))):
            key, sep, value = item.partition(":")
            if not sep or key not in VARIANT_KEYS:
                raise ValueError(item)
            v[key] = value if key == "label" else _cell_value(key, value)
        out.append(v)
    return out


class CompareMixin:
    """Needs `self.pipe`, `self.store`, `self._run`, `self._sampling` and `self.metadata` (service.Studio)."""

    def compare_variants(self, s: CompareSettings) -> list[tuple[str, int, dict]]:
        """(label, seed, sampling keywords) per variant, every one judged by the pipeline before any work."""
        variants = s.variants or (preset_variants(s.preset, s.seed) if s.preset else [])
        if not isinstance(variants, list):
            raise InvalidInput("variants must be a list of settings (one dict per variant)")
        check_whole(len(variants), "number of variants", MIN_VARIANTS, MAX_VARIANTS)
        base = self._sampling(s)
        out = []
        for i, v in enumerate(variants):
            if not isinstance(v, dict):
                raise InvalidInput(f"variant {i + 1} must be a dict of settings, got {v!r}")
            for key in v:
                check_choice(key, VARIANT_KEYS, f"setting in variant {i + 1}")
            kw = {**base, "flip_seed": FLIP_SEED, **{k: x for k, x in v.items() if k != "label" and x is not None}}
            seed = kw.pop("seed", s.seed)
            try:
                self.pipe.check_inputs(s.prompt, seed, **kw)
            except InvalidInput as e:
                raise InvalidInput(f"variant {i + 1} ({label_of(v)}): {e}") from None
            out.append((label_of(v), seed, kw))
        return out

    def compare_iter(self, s: CompareSettings) -> Iterator[Union[Started, Scale, Compared]]:
        """`Started`, then a `Scale` per scale of each variant, then the `Compared` result."""
        variants = self.compare_variants(s)
        yield Started([label for label, _, _ in variants])
        runs = []
        for i, (_, seed, kw) in enumerate(variants):
            run = None
            for run in self._run(s.prompt, seed, **kw):
                yield Scale(i, run)
            run.settings["flip_seed"] = kw["flip_seed"]
            runs.append(run)
        yield self._compared(s, variants, runs)

    def compare(self, s: CompareSettings) -> Compared:
        result = None
        for result in self.compare_iter(s):  # the last event is the result
            pass
        return result

    def _compared(self, s: CompareSettings, variants, runs, folder: Optional[Path] = None) -> Compared:
        from .links import query_from_settings
        from .service import FPS

        folder = folder or self.store.new_dir("compare")
        labels = [label for label, _, _ in variants]
        sched = runs[0].schedule
        # the resolved seed names the file: a page's number box may hand over 4.0 for 4
        pngs = [viz.save_png(r.image, folder / f"variant-{i + 1}-seed-{r.settings['seed']}.png",
                             self.metadata(r, label=label)) for i, (r, label) in enumerate(zip(runs, labels))]
        frames = viz_compare.column_frames([r.previews for r in runs], labels, hws=sched)
        grid = viz_compare.scale_grid([r.previews for r in runs], labels, hws=sched)
        rows = [dict(scale=k, grid=list(hw), mean_abs_diff=[round(mean_abs_diff(runs[0].previews[k], r.previews[k]), 3)
                                                             for r in runs])
                for k, hw in enumerate(sched)]
        given = s.variants or preset_variants(s.preset, s.seed)
        query = query_from_settings(self, {**asdict(s), "variants": given})
        info = dict(prompt=runs[0].settings["prompt"], labels=labels, size=list(runs[0].image.size),
                    variants=[dict(label=label, changes=v, settings=r.settings, seconds=round(r.seconds, 3))
                              for r, v, (label, _, _) in zip(runs, given, variants)],
                    scales=rows, seconds=round(sum(r.seconds for r in runs), 3), share_query=query,
                    prompt_truncated=runs[0].truncated)
        meta = {"prompt": info["prompt"], "labels": labels}
        return Compared(runs=runs, labels=labels, variants=given, pngs=pngs, frames=frames, grid=grid, info=info,
                        row_png=viz.save_png(frames[-1], folder / "final-row.png", meta),
                        grid_png=viz.save_png(grid, folder / "scales-grid.png", meta),
                        mp4=viz.write_mp4(frames, folder / "compare.mp4", fps=FPS),
                        gif=viz.write_gif(frames, folder / "compare.gif", duration_ms=int(1000 / FPS)))
