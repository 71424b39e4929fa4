"""Which sampling settings does a model draw best with? Held-out scene prompts and emoji names per setting.

    python bench/sampling_sweep.py --model runs/gpu2 --n 150 --n-emoji 50 --out bench/results_sampling_sweep.json

Each setting generates the same prompts with the same seeds; the model's own defaults come first. Use it to pick
a model's `defaults` (config.json) and report the whole table, not only the winner.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infinity.data import scenes  # noqa: E402
from infinity.eval.checker import score  # noqa: E402
from infinity.eval.emoji import emoji_retrieval  # noqa: E402

SETTINGS = [  # (guidance, temperature, top_p)
    (3.0, 0.8, 0.9), (3.0, 0.6, 0.9), (3.0, 1.0, 0.9), (3.0, 0.8, 0.97), (3.0, 0.8, 0.7), (5.0, 0.8, 0.9),
    (1.5, 0.8, 0.9),
]


class Fixed:
    """The pipeline with sampling settings fixed (what the eval functions call)."""

    def __init__(self, pipe, **kw):
        self.pipe, self.kw = pipe, kw

    def __call__(self, prompt, **kw):
        return self.pipe(prompt, **self.kw, **kw)

    def __getattr__(self, name):
        return getattr(self.pipe, name)


def main() -> None:
    from infinity.pipeline import InfinityPipeline

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--n", type=int, default=150)
    p.add_argument("--n-emoji", type=int, default=50)
    p.add_argument("--settings", nargs="*", default=None, metavar="G,T,P",
                   help="guidance,temperature,top_p triples (default: a fixed list around the model's defaults)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    settings = [tuple(float(x) for x in t.split(",")) for t in a.settings] if a.settings else SETTINGS
    pipe = InfinityPipeline.from_pretrained(a.model, device="cpu")
    prompts = [cap for cap, _ in scenes.heldout_scenes(a.n, 0)]
    rows = []
    print("| guidance | temperature | top-p | colour | shape | non-circle singles | count | relation | all right | emoji top-1 / top-5 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for g, t, tp in settings:
        f = Fixed(pipe, guidance=g, temperature=t, top_p=tp)
        s = score([f(c, seed=i).images[0] for i, c in enumerate(prompts)], prompts)
        e = emoji_retrieval(f, a.n_emoji)["generated"] if a.n_emoji else {"top1": float("nan"), "top5": float("nan")}
        rows.append({"guidance": g, "temperature": t, "top_p": tp, "scenes": s, "emoji": e})
        print(f"| {g} | {t} | {tp} | {s['color']:.2f} | {s['shape']:.2f} | {s['single_shape_noncircle']:.2f} | "
              f"{s['count']:.2f} | {s['relation']:.2f} | {s['overall']:.3f} | {e['top1']:.2f} / {e['top5']:.2f} |",
              flush=True)
    if a.out:
        a.out.write_text(json.dumps({"model": a.model or "bundled", "n": a.n, "n_emoji": a.n_emoji, "rows": rows},
                                    indent=1))


if __name__ == "__main__":
    main()
