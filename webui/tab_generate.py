"""The Generate tab: prompt and settings on the left, the image streamed scale by scale on the right."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Union

import gradio as gr
import torch

from infinity.validation import MAX_GUIDANCE, MAX_IMAGES, MAX_TEMPERATURE, InvalidInput

from . import texts
from .results import Generated, Scale, Seeded
from .settings import GenerateSettings, make, names
from .widgets import MODEL_EVENTS, QUIET, enlarge, notify

BAR = 12  # characters of the text progress bar in the status line


def choice_sliders(studio, D) -> tuple[gr.Slider, gr.Slider, gr.Markdown]:
    """Aspect ratio and resolution as sliders over what the model supports (positions in its lists), with a
    line that says what they give in pixels."""
    ratios, budgets = studio.ratio_choices(), studio.pipe.budgets()
    r0 = [r for _, r in ratios].index(D["aspect_ratio"])
    ratio = gr.Slider(0, len(ratios) - 1, value=r0, step=1, label="Aspect ratio (width:height)",
                      info=f"{ratios[0][0]} ← → {ratios[-1][0]}", elem_id="ratio", elem_classes="choice-slider")
    budget = gr.Slider(0, max(1, len(budgets) - 1), value=budgets.index(D["resolution"]), step=1,
                       label="Resolution", info=f"{budgets[0]} ← → {budgets[-1]}", elem_id="resolution",
                       elem_classes="choice-slider", interactive=len(budgets) > 1)
    size = gr.Markdown(size_line(studio, r0, budgets.index(D["resolution"])), elem_id="size-line",
                       elem_classes="size-line")
    return ratio, budget, size


def ratio_of(studio, index) -> float:
    return studio.ratio_choices()[int(round(float(index)))][1]


def budget_of(studio, index) -> str:
    return studio.pipe.budgets()[int(round(float(index)))]


def size_line(studio, ratio_index, budget_index) -> str:
    label = studio.ratio_choices()[int(round(float(ratio_index)))][0]
    budget = budget_of(studio, budget_index)
    return f"**{label}** at {studio.budget_label(ratio_of(studio, ratio_index), budget)}"


def settings_from_page(studio, cls, values):
    """A settings object from the page's controls (given in the order of `cls`'s fields)."""
    s = dict(zip(names(cls), values))
    if "aspect_ratio" in s:
        s["aspect_ratio"] = ratio_of(studio, s["aspect_ratio"])
    if "resolution" in s:
        s["resolution"] = budget_of(studio, s["resolution"])
    return cls(**s)


def build(studio, D) -> SimpleNamespace:
    """The tab's components; `c.controls` maps each GenerateSettings field to its control."""
    c = SimpleNamespace()
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            c.prompt = gr.Textbox(texts.EXAMPLES[0], label="Prompt", placeholder=texts.PROMPT_PLACEHOLDER, lines=1,
                                  max_lines=4, autofocus=True, elem_id="prompt")
            with gr.Row():
                c.run_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn", scale=3)
                c.stop_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn", scale=1)
            c.negative = gr.Textbox("", label="Negative prompt", placeholder="optional", lines=1, max_lines=3)
            with gr.Row():
                c.seed = gr.Number(label="Seed", value=D["seed"], elem_id="seed", scale=3)
                c.randomize = gr.Checkbox(label="Random seed", value=D["randomize_seed"], scale=2)
            c.ratio, c.budget, c.size = choice_sliders(studio, D)
            _number_controls(c, D)
            with gr.Row():
                c.copy_btn = gr.Button("Copy link to these settings", size="sm", scale=1)
                c.link = gr.Textbox(show_label=False, placeholder="share link", interactive=False, container=False,
                                    scale=2, elem_id="share-link")
            c.examples_at = gr.Column()  # filled by `wire`, which knows the outputs an example shows
        with gr.Column(scale=6, min_width=320):
            _outputs(c)
    c.controls = dict(zip(names(GenerateSettings), [
        c.prompt, c.negative, c.seed, c.randomize, c.guidance, c.temperature, c.top_p, c.greedy, c.ratio, c.budget,
        c.num_images]))
    return c


def _number_controls(c, D) -> None:
    # number boxes, not sliders: a typed value reaches the pipeline as typed, so it is judged there with the
    # same words as through the API instead of being clamped silently by the slider
    with gr.Row():
        c.guidance = gr.Number(D["guidance"], label="Guidance (CFG)", step=0.5, elem_id="guidance",
                               info=f"0–{MAX_GUIDANCE:g}; 1 = no guidance")
        c.temperature = gr.Number(D["temperature"], label="Temperature", step=0.05, elem_id="temperature",
                                  info=f"above 0, up to {MAX_TEMPERATURE:g}; lower: safer bits")
        c.num_images = gr.Number(1, label="Number of images", step=1, elem_id="num-images",
                                 info=f"1–{MAX_IMAGES}: seeds seed, seed+1, …")
    with gr.Accordion("Advanced", open=False):
        c.top_p = gr.Number(D["top_p"], label="Top-p per bit", step=0.01, elem_id="top-p",
                            info="0–1: drop the less likely value of a bit when its probability is ≤ 1 − top-p (0 = off)")
        c.greedy = gr.Checkbox(label="Greedy (most likely value of every bit)", value=False)


def _outputs(c) -> None:
    c.image = gr.Image(label="Image", type="pil", format="png", height=420, interactive=False, elem_id="result",
                       elem_classes="pixelated")
    c.info = gr.Markdown("Press **Generate** (or Enter in the prompt). The preview sharpens scale by scale.",
                         elem_id="gen-info")
    c.images = gr.Gallery(label="Images", columns=4, height="auto", format="png", visible=False,
                          elem_classes="pixelated", object_fit="contain")
    gr.Markdown("**Scale animation**")
    c.video = gr.Video(show_label=False, autoplay=True, loop=True, elem_id="scale-video", elem_classes="pixelated",
                       height=320)
    with gr.Accordion("Every scale", open=True):
        c.scales = gr.Gallery(show_label=False, columns=4, height="auto", format="png", elem_id="scales",
                              elem_classes="pixelated", object_fit="contain", allow_preview=True)
    c.downloads = gr.File(label="Downloads: PNG (prompt, seed and settings in its metadata), GIF, MP4",
                          file_count="multiple", interactive=False)
    with gr.Accordion("Settings (JSON)", open=False):
        c.settings_json = gr.JSON(show_label=False)
    c.outputs = [c.image, c.images, c.scales, c.video, c.downloads, c.info, c.settings_json, c.seed]


def scale_gallery(previews, schedule) -> list:
    """Every scale, enlarged for display, its grid as a caption (written width×height like resolutions)."""
    from .service import wh

    return [(enlarge(p), f"scale {k + 1}: {wh(hw)}") for k, (p, hw) in enumerate(zip(previews, schedule))]


def render(c, event: Union[Seeded, Scale, Generated], n: int) -> dict:
    """One update of the outputs for one event of `Studio.generate_iter`."""
    from .service import wh

    if isinstance(event, Seeded):
        return {c.seed: event.seed, c.images: gr.Gallery(value=None, visible=False), c.scales: None, c.video: None,
                c.downloads: None, c.info: f"Seed **{event.seed}** · starting…"}
    if isinstance(event, Scale):
        run, k, K = event.run, len(event.run.previews), len(event.run.schedule)
        done = (event.index * K + k) / (n * K)
        bar = "▰" * round(done * BAR) + "▱" * (BAR - round(done * BAR))
        return {c.image: run.image, c.info: f"{bar} image {event.index + 1}/{n} · scale {k}/{K} "
                                            f"({wh(run.schedule[k - 1])}) · {run.seconds:.2f} s"}
    r, first = event, event.runs[0]
    if r.info["prompt_truncated"]:
        gr.Warning("The prompt is longer than the text encoder reads; only its beginning was used.")
    W, H = first.image.size
    seeds = ", ".join(str(s) for s in r.info["seeds"])
    return {c.image: r.pngs[0],
            c.images: gr.Gallery(visible=n > 1, value=[(p, f"seed {s}") for p, s in zip(r.pngs, r.info["seeds"])]),
            c.scales: scale_gallery(first.previews, first.schedule), c.video: r.mp4,
            c.downloads: r.pngs + [r.gif, r.mp4], c.settings_json: r.info,
            c.info: f"Seed{'s' if n > 1 else ''} **{seeds}** · {W}×{H} px · {len(first.schedule)} scales "
                    f"({wh(first.schedule[0])} → {wh(first.schedule[-1])}) · "
                    f"{sum(x.seconds for x in r.runs):.2f} s"}


def run_generate(studio, c, s: GenerateSettings):
    """Stream one request's updates; a refused request becomes one notice and a status line."""
    try:
        for event in studio.generate_iter(s):
            yield render(c, event, int(s.num_images))
    except (InvalidInput, torch.OutOfMemoryError) as e:
        yield {c.info: notify(e)}


def wire(studio, c) -> SimpleNamespace:
    """Events of the tab; returns the generate event (links regenerate through `run_generate` too)."""
    inputs = list(c.controls.values())

    def ui_generate(*values):
        yield from run_generate(studio, c, settings_from_page(studio, GenerateSettings, values))

    events = SimpleNamespace()
    c.run_btn.click(None, js=texts.CLEAR_TOASTS_JS)
    events.generate = gr.on([c.run_btn.click, c.prompt.submit], ui_generate, inputs, c.outputs,
                            api_visibility="private", show_progress="hidden", **MODEL_EVENTS)
    gr.on([c.ratio.change, c.budget.change], lambda r, b: size_line(studio, r, b), [c.ratio, c.budget], [c.size],
          **QUIET)

    def ui_example(prompt):
        try:
            r = studio.example(prompt)
        except (InvalidInput, torch.OutOfMemoryError) as e:
            return {c.info: notify(e)}
        return {**render(c, r, 1), c.seed: 0}

    events.example = ui_example
    with c.examples_at:
        gr.Examples([[e] for e in texts.EXAMPLES], inputs=[c.prompt], outputs=c.outputs, fn=ui_example,
                    run_on_click=True, cache_examples=False, api_visibility="private", label="Examples (click to run)")
    return events


def cancelled():
    """What Cancel leaves: no half-finished preview, and a status that says what happened."""
    return None, "**Cancelled.** Press **Generate** to start again."
