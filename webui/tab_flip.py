"""The Bit flips tab: the Generate tab's request run clean and with a share of bits flipped at chosen scales."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import torch

from infinity.validation import InvalidInput

from . import texts
from .settings import FlipSettings, names
from .tab_generate import budget_of, ratio_of, settings_from_page
from .widgets import MODEL_EVENTS, QUIET, enlarge, notify


def build(studio, D) -> SimpleNamespace:
    c = SimpleNamespace()
    K0 = studio.scale_choices(D["aspect_ratio"], D["resolution"])
    gr.Markdown(texts.FLIP_NOTE)
    gr.Markdown("Uses the prompt, seed and settings of the **Generate** tab. Grids are written width×height.",
                elem_id="model-line")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            c.share = gr.Number(D["flip_share"], label="Share of bits to flip", step=0.05, elem_id="flip-share",
                                info="above 0, up to 1")
            c.scales = gr.CheckboxGroup(K0, value=D["flip_scales"], label="Flip at scales (w×h)")
            c.inspect = gr.Dropdown(K0, value=D["inspect_scale"], label="Show the bit planes of scale")
            c.seed = gr.Number(D["flip_seed"], label="Flip seed (which bits)", elem_id="flip-seed")
            c.btn = gr.Button("Compare clean and flipped", variant="primary", elem_id="flip-btn")
            c.md = gr.Markdown(elem_id="flip-info")
        with gr.Column(scale=6, min_width=320):
            gr.Markdown("**Clean vs flipped, scale by scale**")
            c.video = gr.Video(show_label=False, autoplay=True, loop=True, elem_classes="pixelated", height=320)
            c.pairs = gr.Gallery(label="Scale by scale (clean | flipped)", columns=2, height="auto", format="png",
                                 elem_classes="pixelated", object_fit="contain")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            gr.Markdown("**Bit planes of the flipped run** at the chosen scale: one tile per bit, white 1, black 0; "
                        "flipped bits in red (bright: now 1, dark: now 0).")
            c.planes = gr.Image(show_label=False, type="pil", format="png", interactive=False, elem_id="planes",
                                elem_classes="pixelated", height=260)
        with gr.Column(scale=6, min_width=320):
            gr.Markdown("**Difference clean vs flipped** after each scale (black: equal, white: far apart). Scales "
                        "before the first flip are identical.")
            c.diffs = gr.Gallery(show_label=False, columns=4, height="auto", format="png", elem_classes="pixelated",
                                 object_fit="contain")
    c.controls = {"flip_share": c.share, "flip_scales": c.scales, "inspect_scale": c.inspect, "flip_seed": c.seed}
    c.outputs = [c.video, c.pairs, c.planes, c.diffs, c.md]
    return c


def table(rows) -> str:
    from .service import wh

    body = "\n".join(f"| {r['scale'] + 1} | {wh(r['grid'])} | {r['flipped_bits']} / {r['bits']} | "
                     f"{r['mean_abs_diff']:.1f} |" for r in rows)
    return "| scale | grid (w×h) | bits flipped | mean abs. difference (0–255) |\n|---|---|---|---|\n" + body


def wire(studio, c, gen) -> None:
    """`gen`: the Generate tab, whose controls supply the prompt, seed and sampling settings."""
    from .service import wh

    controls = {**gen.controls, **c.controls}
    inputs = [controls[n] for n in names(FlipSettings)]

    def ui_flip(*values):
        try:
            r = studio.flip(settings_from_page(studio, FlipSettings, values))
        except (InvalidInput, torch.OutOfMemoryError) as e:
            return {c.md: notify(e)}
        hws = r.clean.schedule
        diffs = [(enlarge(d), f"scale {k + 1}: {wh(hw)}") for k, (d, hw) in enumerate(zip(r.diffs, hws))]
        pairs = [(p, f"scale {k + 1}: {wh(hw)}") for k, (p, hw) in enumerate(zip(r.pairs, hws))]
        return {c.video: r.mp4, c.pairs: pairs, c.planes: r.planes, c.diffs: diffs, c.md: table(r.info["scales"])}

    c.btn.click(None, js=texts.CLEAR_TOASTS_JS)
    gr.on([c.btn.click], ui_flip, inputs, c.outputs, api_visibility="private", show_progress_on=[c.md],
          **MODEL_EVENTS)
    gr.on([gen.ratio.change, gen.budget.change], lambda r, b, sel, one: scale_updates(studio, r, b, sel, one),
          [gen.ratio, gen.budget, c.scales, c.inspect], [c.scales, c.inspect], **QUIET)


def scale_updates(studio, ratio_index, budget_index, selected, single):
    """Scale choices for a ratio and resolution, keeping the chosen scales that still exist (choices and values
    together, so a value is never outside the choices shown)."""
    choices = studio.scale_choices(ratio_of(studio, ratio_index), budget_of(studio, budget_index))
    K = len(choices)
    keep = [k for k in (selected or []) if isinstance(k, int) and k < K]
    one = single if isinstance(single, int) and single < K else K // 2
    return gr.CheckboxGroup(choices=choices, value=keep), gr.Dropdown(choices=choices, value=one)
