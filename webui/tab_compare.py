"""The Compare tab: the Generate tab's prompt and settings (the base) under 2–4 variants, side by side scale by
scale: the final images in a row, one animation whose columns advance together, every scale as a grid, and how far
each variant's pixels are from the first's."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Union

import gradio as gr
import torch

from infinity.validation import InvalidInput

from . import texts
from .compare import MAX_VARIANTS, PRESETS, TABLE, format_variants, from_table, parse_variants, preset_variants, \
    to_table
from .results import Compared, Scale, Started
from .settings import CompareSettings, names
from .tab_generate import BAR, settings_from_page
from .widgets import MODEL_EVENTS, QUIET, notify

BASE = [n for n in names(CompareSettings) if n not in ("variants", "preset")]  # from the Generate tab's controls
FIRST_PRESET = next(iter(PRESETS))
NOTE = ("Runs the **Generate** tab's prompt, seed and settings (the *base*) once per variant, one after another; "
        "each variant changes some of them. Every column is exactly the image a single run with its settings "
        "gives. Grids are written width×height.")


def build(studio, D) -> SimpleNamespace:
    c = SimpleNamespace()
    gr.Markdown(NOTE)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=260):
            c.preset = gr.Dropdown(list(PRESETS), value=None, label="Preset (fills the table)",
                                   info="the table starts as the first one", elem_id="cmp-preset")
            with gr.Row():
                c.btn = gr.Button("Compare", variant="primary", elem_id="cmp-btn", scale=3)
                c.stop_btn = gr.Button("Cancel", variant="stop", elem_id="cmp-cancel", scale=1)
            c.info = gr.Markdown("Pick a preset or edit the table, then press **Compare**.", elem_id="cmp-info")
            with gr.Row():
                c.copy_btn = gr.Button("Copy link to this comparison", size="sm", scale=1)
                c.link = gr.Textbox(show_label=False, placeholder="share link", interactive=False, container=False,
                                    scale=2, elem_id="cmp-share-link")
            # what the share link carries: the variants last run (or restored), empty after a Generate run
            c.variants = gr.Textbox("", visible=False, elem_id="cmp-variants")
        with gr.Column(scale=7, min_width=420):
            c.table = gr.Dataframe(to_table(preset_variants(FIRST_PRESET, D["seed"])), headers=[h for h, _ in TABLE],
                                   datatype="str", type="array", interactive=True, row_count=3,
                                   label=f"Variants (2–{MAX_VARIANTS} rows; a blank cell keeps the base's value; "
                                         f"greedy yes/no; flip scales counted from 1, e.g. 2,3)", elem_id="cmp-table")
    _outputs(c)
    c.controls = {"variants": c.variants}
    c.outputs = [c.finals, c.video, c.grid, c.diffs, c.downloads, c.json, c.info, c.variants]
    return c


def _outputs(c) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            c.finals = gr.Gallery(label="Final images", columns=MAX_VARIANTS, rows=1, height=210, format="png",
                                  elem_id="cmp-finals", elem_classes="pixelated", object_fit="contain")
        with gr.Column(scale=5, min_width=320):
            gr.Markdown("**Scale by scale, side by side**")
            c.video = gr.Video(show_label=False, autoplay=True, loop=True, elem_id="cmp-video",
                               elem_classes="pixelated", height=260)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            gr.Markdown("**Every scale** (rows) of every variant (columns)")
            c.grid = gr.Image(show_label=False, type="filepath", format="png", interactive=False, elem_id="cmp-grid",
                              elem_classes="pixelated")
        with gr.Column(scale=5, min_width=320):
            c.diffs = gr.Markdown(elem_id="cmp-diffs")
            c.downloads = gr.File(label="Downloads: PNG per variant (settings in its metadata), row, grid, MP4, GIF",
                                  file_count="multiple", interactive=False)
            with gr.Accordion("Comparison (JSON)", open=False):
                c.json = gr.JSON(show_label=False)


def diff_table(info) -> str:
    labels = info["labels"]
    head = "| scale | grid (w×h) | " + " | ".join(labels) + " |\n|---|---|" + "---|" * len(labels)
    body = "\n".join(f"| {r['scale'] + 1} | {r['grid'][1]}×{r['grid'][0]} | — | "
                     + " | ".join(f"{d:.1f}" for d in r["mean_abs_diff"][1:]) + " |" for r in info["scales"])
    return f"**Mean pixel difference from *{labels[0]}*** (0–255, per scale)\n\n{head}\n{body}"


def render(c, event: Union[Started, Scale, Compared], n: int) -> dict:
    """One update of the outputs for one event of `Studio.compare_iter`."""
    from .service import wh

    if isinstance(event, Started):
        return {c.finals: None, c.video: None, c.grid: None, c.diffs: "", c.downloads: None,
                c.info: f"{len(event.labels)} variants · starting…"}
    if isinstance(event, Scale):
        run, k, K = event.run, len(event.run.previews), len(event.run.schedule)
        done = (event.index * K + k) / (n * K)
        bar = "▰" * round(done * BAR) + "▱" * (BAR - round(done * BAR))
        return {c.info: f"{bar} variant {event.index + 1}/{n} · scale {k}/{K} ({wh(run.schedule[k - 1])}) · "
                        f"{run.seconds:.2f} s"}
    r, first = event, event.runs[0]
    if r.info["prompt_truncated"]:
        gr.Warning("The prompt is longer than the text encoder reads; only its beginning was used.")
    W, H = first.image.size
    return {c.finals: list(zip(r.pngs, r.labels)), c.video: r.mp4, c.grid: r.grid_png,
            c.diffs: diff_table(r.info), c.downloads: r.pngs + [r.row_png, r.grid_png, r.mp4, r.gif],
            c.json: r.info, c.variants: format_variants(r.variants),
            c.info: f"{len(r.runs)} variants · {W}×{H} px · {len(first.schedule)} scales · "
                    f"{r.info['seconds']:.2f} s"}


def run_compare(studio, c, s: CompareSettings):
    """Stream one comparison's updates; a refused request becomes one notice and a status line."""
    try:
        n = 0
        for event in studio.compare_iter(s):
            n = len(event.labels) if isinstance(event, Started) else n
            yield render(c, event, n)
    except (InvalidInput, torch.OutOfMemoryError) as e:
        yield {c.info: notify(e)}


def settings(studio, base_values, variants) -> CompareSettings:
    return settings_from_page(studio, CompareSettings, list(base_values) + [variants, ""])


def wire(studio, c, gen) -> SimpleNamespace:
    """`gen`: the Generate tab, whose controls are the base. Returns the compare event (for Cancel and links)."""
    base = [gen.controls[n] for n in BASE]

    def ui_compare(*values):
        try:
            variants = from_table(values[-1])
        except InvalidInput as e:
            yield {c.info: notify(e)}
            return
        yield from run_compare(studio, c, settings(studio, values[:-1], variants))

    events = SimpleNamespace()
    c.btn.click(None, js=texts.CLEAR_TOASTS_JS)
    events.compare = gr.on([c.btn.click], ui_compare, base + [c.table], c.outputs, api_visibility="private",
                           show_progress="hidden", **MODEL_EVENTS)
    def fill(preset, seed):  # "four seeds" counts from the Generate tab's seed; a cleared box changes nothing
        if preset not in PRESETS:
            return gr.skip()
        return to_table(preset_variants(preset, seed if isinstance(seed, (int, float)) and seed >= 0 else 0))

    c.preset.input(fill, [c.preset, gen.seed], [c.table], **QUIET)
    # a restored link fills the table; a Generate run makes the link describe the image again
    c.variants.change(lambda t: to_table(parse_variants(t)) if t else gr.skip(), [c.variants], [c.table], **QUIET)
    gr.on([gen.run_btn.click, gen.prompt.submit], lambda: "", None, [c.variants], **QUIET)
    return events


def autorun(studio, c, tabs):
    """After a link is restored: a link that names a prompt and variants opens this tab and regenerates the
    comparison; any other link leaves the page as it is."""
    from .links import settings_from_query

    def run(request: gr.Request, *values):
        query = dict(request.query_params) if request else {}
        if not settings_from_query(studio, query)["compare"]:
            yield {c.info: gr.skip()}
            return
        yield {tabs: gr.Tabs(selected="compare")}
        yield from run_compare(studio, c, settings(studio, values[:-1], parse_variants(values[-1])))

    return run


def cancelled():
    return "**Cancelled.** Press **Compare** to start again."
