"""What the page does, as plain methods on typed settings: no gradio here, so scripts and tests can call it.

Input is judged by the pipeline (`check_inputs`) and `infinity.validation`; this layer only orders the work and
writes the files: one fresh folder per request under one app-owned root, names never taken from user input.
"""
from __future__ import annotations

import random
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from infinity import schedules, viz
from infinity.images import mean_abs_diff
from infinity.pipeline import InfinityPipeline
from infinity.validation import MAX_IMAGES, MAX_SEED, check_scale, check_seed, require_flip_scales

from .settings import FlipSettings, GenerateSettings, make
from .texts import EXAMPLES
from .compare import CompareMixin
from .results import Flipped, Generated, Run, Scale, Seeded
from .tokens import TokenizerMixin

FPS = 2  # scale animations: half a second per scale is enough to see each one
OUTPUT_MAX_AGE_S = 3600


def wh(hw) -> str:
    """A grid or size written width×height, as resolutions are (schedules store (h, w))."""
    return f"{hw[1]}×{hw[0]}"


class OutputStore:
    """Per-request folders under `root`; folders older than `max_age_s` are deleted as new ones are made."""

    PREFIX = "req-"

    def __init__(self, root: Path, max_age_s: float = OUTPUT_MAX_AGE_S):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._last_prune = 0.0
        self.prune()

    def new_dir(self, kind: str) -> Path:
        if time.time() - self._last_prune > 60:  # a directory scan per minute is plenty
            self.prune()
        return Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{kind}-", dir=self.root))

    def fixed_dir(self, name: str) -> Path:
        """A folder that pruning leaves alone (its name lacks the request prefix), emptied first."""
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def prune(self) -> None:
        self._last_prune = now = time.time()
        for p in self.root.iterdir():
            # only what this class made: never follow links, never touch other files someone put there
            if p.name.startswith(self.PREFIX) and p.is_dir() and not p.is_symlink():
                try:
                    if now - p.stat().st_mtime > self.max_age_s:
                        shutil.rmtree(p, ignore_errors=True)
                except FileNotFoundError:  # another worker removed it first
                    pass


def _last(it):
    """The last item of a stream: a request's result."""
    item = None
    for item in it:
        pass
    return item


class Studio(TokenizerMixin, CompareMixin):
    """The pipeline plus an output store. Methods take settings dataclasses and raise `InvalidInput`."""

    def __init__(self, pipe: InfinityPipeline, store: OutputStore, upload_dir: Optional[Callable[[], str]] = None):
        self.pipe, self.store, self.upload_dir = pipe, store, upload_dir
        self.cfg = pipe.config
        self._examples: dict[str, Generated] = {}

    # -- what the model offers -------------------------------------------------------------------------------
    def default_ratio(self) -> float:
        return schedules.nearest_template(1.0, self.pipe.aspect_ratios())

    def ratio_choices(self) -> list[tuple[str, float]]:
        """(width:height label, h/w) for each template the model declares, widest first."""
        return sorted(((schedules.format_ratio(r), r) for r in self.pipe.aspect_ratios()), key=lambda c: c[1])

    def budget_label(self, h_div_w: float, budget: str) -> str:
        """'64×64 px (0.004M)': a budget in real pixels for an aspect ratio (width × height)."""
        H, W = self.pipe.pixel_size(h_div_w, budget)
        return f"{W}×{H} px ({budget})"

    def scale_choices(self, h_div_w: Optional[float] = None, budget: Optional[str] = None) -> list[tuple[str, int]]:
        r = self.default_ratio() if h_div_w is None else h_div_w
        return [(f"{k + 1}: {wh(hw)}", k) for k, hw in enumerate(self.pipe.schedule(r, budget))]

    def defaults(self) -> dict:
        """Every linked setting at its default (generate, flip and compare fields by name), as a plain link opens."""
        d = self.cfg.defaults
        mid = len(self.pipe.schedule(self.default_ratio(), self.cfg.default_budget)) // 2
        gen = GenerateSettings(guidance=float(d.get("guidance", 3.0)), temperature=float(d.get("temperature", 1.0)),
                               top_p=float(d.get("top_p", 0.0)), aspect_ratio=self.default_ratio(),
                               resolution=self.cfg.default_budget)
        return {**asdict(gen), "flip_share": 0.2, "flip_scales": [mid], "inspect_scale": mid, "flip_seed": 0,
                "variants": []}

    def metadata(self, run: Run, **extra) -> dict:
        H, W = run.image.height, run.image.width
        return {**run.settings, "size": [W, H], "scales": [list(hw) for hw in run.schedule], **extra}

    # -- generation ------------------------------------------------------------------------------------------
    def _run(self, prompt, seed: int, **kw) -> Iterator[Run]:
        """Sample scale by scale through the pipeline's one preview loop; yields the same `Run`, one scale longer
        each time (live previews)."""
        p = self.pipe.prepare(prompt, seed, **kw)
        run = Run(settings=dict(p.settings), schedule=list(p.schedule), truncated=any(p.truncated))
        for st in self.pipe.stream(prepared=p, previews=True):
            run.previews.append(st.previews[0])
            run.bits.append(st.bits[0].cpu())
            run.masks.append(None if st.flip_mask is None else st.flip_mask[0].cpu())
            run.seconds = p.seconds + st.elapsed
            yield run

    @staticmethod
    def _sampling(s) -> dict:
        return dict(negative_prompt=s.negative_prompt, guidance=s.guidance, temperature=s.temperature,
                    top_p=s.top_p, greedy=s.greedy, h_div_w=s.aspect_ratio, budget=s.resolution)

    def generate_iter(self, s: GenerateSettings, folder: Optional[Path] = None
                      ) -> Iterator[Union[Seeded, Scale, Generated]]:
        """`Seeded`, then a `Scale` per scale of each image, then the `Generated` result."""
        # a drawn seed leaves room for every image's seed+i; the pipeline judges everything else
        seed = random.randint(0, MAX_SEED - MAX_IMAGES + 1) if s.randomize_seed else s.seed
        kw = self._sampling(s)
        self.pipe.check_inputs(s.prompt, seed, num_images=s.num_images, **kw)
        n = int(s.num_images)
        yield Seeded(seed)
        folder = folder or self.store.new_dir("generate")
        runs, pngs = [], []
        for i in range(n):
            run = None
            for run in self._run(s.prompt, seed + i, **kw):
                yield Scale(i, run)
            runs.append(run)
            pngs.append(viz.save_png(run.image, folder / f"image-{i + 1}-seed-{seed + i}.png", self.metadata(run)))
        yield self._generated(runs, pngs, folder, seed, n)

    def _generated(self, runs: list[Run], pngs: list[str], folder: Path, seed: int, n: int) -> Generated:
        from .links import query_from_settings

        first = runs[0]
        frames = viz.scale_frames(first.previews, hws=first.schedule)
        settings = {**first.settings, "num_images": n}
        info = dict(seed=seed, seeds=[seed + i for i in range(n)], settings=settings,
                    size=self.metadata(first)["size"], scales=[list(hw) for hw in first.schedule],
                    seconds=[round(r.seconds, 3) for r in runs], prompt_truncated=first.truncated,
                    share_query=query_from_settings(self, settings))
        return Generated(runs=runs, pngs=pngs, info=info,
                         mp4=viz.write_mp4(frames, folder / "scales.mp4", fps=FPS),
                         gif=viz.write_gif(frames, folder / "scales.gif", duration_ms=int(1000 / FPS)))

    def generate(self, s: GenerateSettings) -> Generated:
        return _last(self.generate_iter(s))

    def example(self, prompt: str) -> Generated:
        """An example prompt's result at seed 0 and the defaults: made once, kept in memory and in a folder the
        pruning leaves alone, so every visitor sees it at no cost. Other prompts are simply generated."""
        s = make(GenerateSettings, {**self.defaults(), "prompt": prompt, "randomize_seed": False, "seed": 0})
        if prompt not in EXAMPLES:
            return self.generate(s)
        if prompt not in self._examples:
            folder = self.store.fixed_dir(f"example-{EXAMPLES.index(prompt)}")
            self._examples[prompt] = _last(self.generate_iter(s, folder))
        return self._examples[prompt]

    # -- bit flips -------------------------------------------------------------------------------------------
    def flip(self, s: FlipSettings) -> Flipped:
        """The clean run and the run with flipped bits, from one seed; pictures of where they part and rejoin."""
        kw = self._sampling(s)
        flips = dict(flip_share=s.flip_share, flip_scales=s.flip_scales, flip_seed=s.flip_seed)
        _, d = self.pipe.check_inputs(s.prompt, s.seed, **kw, **flips)  # the flipped request, judged first
        require_flip_scales(d["flip_scales"])
        K = len(self.pipe.schedule(d["h_div_w"], d["budget"]))
        scales = d["flip_scales"]
        inspect = scales[0] if s.inspect_scale in (None, "") else check_scale(s.inspect_scale, K)
        clean = _last(self._run(s.prompt, s.seed, **kw))
        flipped = _last(self._run(s.prompt, s.seed, **kw, **flips))
        return self._flip_outputs(clean, flipped, d, inspect)

    def _flip_outputs(self, clean: Run, flipped: Run, d: dict, inspect: int) -> Flipped:
        share, scales, seed = d["flip_share"], d["flip_scales"], d["seed"]
        folder = self.store.new_dir("flip")
        title = f"{share:.0%} of bits flipped at scale{'s' if len(scales) > 1 else ''} " + \
            ", ".join(str(k + 1) for k in scales)
        pairs = viz.side_by_side(viz.scale_frames(clean.previews, hws=clean.schedule),
                                 viz.scale_frames(flipped.previews, hws=flipped.schedule), titles=("clean", title))
        diffs = [viz.difference_map(a, b) for a, b in zip(clean.previews, flipped.previews)]
        planes = viz.bit_plane_grid(flipped.bits[inspect], flipped.masks[inspect])
        rows = [dict(scale=k, grid=list(hw), flipped_bits=0 if flipped.masks[k] is None else int(flipped.masks[k].sum()),
                     bits=int(flipped.bits[k].numel()), mean_abs_diff=round(mean_abs_diff(a, b), 3))
                for k, (hw, a, b) in enumerate(zip(clean.schedule, clean.previews, flipped.previews))]
        meta = {"flip_share": share, "flip_scales": scales, "flip_seed": d["flip_seed"]}
        return Flipped(
            clean=clean, flipped=flipped, pairs=pairs, planes=planes, inspect=inspect, diffs=diffs,
            clean_png=viz.save_png(clean.image, folder / f"clean-seed-{seed}.png", self.metadata(clean)),
            flipped_png=viz.save_png(flipped.image, folder / f"flipped-seed-{seed}.png", self.metadata(flipped, **meta)),
            mp4=viz.write_mp4(pairs, folder / "clean-vs-flipped.mp4", fps=FPS),
            planes_png=viz.save_png(planes, folder / f"bit-planes-scale-{inspect + 1}.png",
                                    {"scale": inspect, "grid": list(clean.schedule[inspect]), **meta}),
            info=dict(seed=seed, settings={**flipped.settings, "flip_seed": d["flip_seed"], "inspect_scale": inspect},
                      scales=rows),
        )


__all__ = ["FPS", "OUTPUT_MAX_AGE_S", "OutputStore", "Run", "Studio", "check_seed", "wh"]
