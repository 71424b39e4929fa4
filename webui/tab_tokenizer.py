"""The Tokenizer tab: an upload's bits scale by scale, the effect of flipping some, and variations."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import torch

from infinity.validation import InvalidInput

from . import texts
from .results import Tokenized
from .settings import TokenizeSettings, VariationSettings, names
from .widgets import MODEL_EVENTS, QUIET, enlarge, notify, upload_image


def build(studio, D) -> SimpleNamespace:
    c = SimpleNamespace()
    K0 = studio.scale_choices(D["aspect_ratio"], D["resolution"])
    budgets = studio.pipe.budgets()
    gr.Markdown(texts.TOKENIZER_NOTE)
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            c.upload = upload_image(label="Image", sources=["upload", "clipboard"], height=260, elem_id="upload")
            c.budget = gr.Radio([(studio.budget_label(D["aspect_ratio"], b), b) for b in budgets],
                                value=D["resolution"], label="Resolution")
            c.share = gr.Number(0.2, label="Share of bits to flip", step=0.05, info="0 (none) to 1")
            c.scale = gr.Dropdown(K0, value=len(K0) // 2, label="Flip at scale (w×h)")
            c.seed = gr.Number(0, label="Flip seed")
            c.btn = gr.Button("Tokenize", variant="primary", elem_id="tokenize-btn")
            c.md = gr.Markdown(elem_id="tok-info")
        with gr.Column(scale=6, min_width=320):
            c.recon = gr.Gallery(label="Reconstruction after each scale", columns=4, height="auto", format="png",
                                 elem_classes="pixelated", object_fit="contain")
            c.effect = gr.Gallery(label="Effect of the flip", columns=4, height="auto", format="png",
                                  elem_classes="pixelated", object_fit="contain")
            gr.Markdown("**Bit planes of the flipped scale** (flipped bits in red)")
            c.planes = gr.Image(show_label=False, type="pil", format="png", interactive=False, elem_id="tok-planes",
                                elem_classes="pixelated", height=220)
            with gr.Accordion("Bit maps of every scale", open=False):
                c.bitmaps = gr.Gallery(show_label=False, columns=3, height="auto", format="png",
                                       elem_classes="pixelated", object_fit="contain")
    _variation(c, K0)
    c.tok_controls = {"image": c.upload, "resolution": c.budget, "flip_share": c.share, "flip_scale": c.scale,
                      "flip_seed": c.seed}
    c.var_controls = {"image": c.upload, "prompt": c.var_prompt, "keep_scales": c.var_keep, "seed": c.var_seed,
                      "resolution": c.budget}
    return c


def _variation(c, K0) -> None:
    gr.Markdown("### Variations\nKeep the first scales of the uploaded image (its layout and colours) and let the "
                "model draw the finer scales from a prompt.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            c.var_prompt = gr.Textbox(texts.EXAMPLES[0], label="Prompt", lines=1)
            c.var_keep = gr.Slider(0, len(K0), value=min(2, len(K0)), step=1, label="Scales to keep")
            c.var_seed = gr.Number(0, label="Seed")
            c.var_btn = gr.Button("Make a variation", variant="primary", elem_id="variation-btn")
            c.var_md = gr.Markdown(elem_id="var-info")
        with gr.Column(scale=6, min_width=320):
            gr.Markdown("**Uploaded vs variation**")
            c.var_video = gr.Video(show_label=False, autoplay=True, loop=True, elem_classes="pixelated", height=300)
            c.var_image = gr.Image(label="Variation", type="filepath", interactive=False, height=320,
                                   elem_id="var-image", elem_classes="pixelated")


def tokenize_view(r: Tokenized) -> tuple:
    """The tab's pictures and summary for one tokenize result."""
    from .service import wh

    info, hws = r.info, r.hws
    md = f"{info['size'][0]}×{info['size'][1]} px · {len(hws)} scales · reconstruction PSNR " \
         f"{info['psnr_reconstruction']:.1f} dB"
    effect = [(enlarge(r.input), "input"), (enlarge(r.recon[-1]), "reconstruction")]
    if r.kept is not None:
        effect += [(enlarge(r.kept), "flipped, later kept"), (enlarge(r.requantized), "flipped, re-quantized")]
        md += (f"  \n{info['flipped_bits']} bits flipped at scale {r.scale + 1} ({wh(hws[r.scale])}). PSNR to "
               f"the reconstruction: later scales kept {info['psnr_flipped_later_kept']:.1f} dB, re-quantized after "
               f"the flip {info['psnr_flipped_later_requantized']:.1f} dB.")
    recon = [(enlarge(im), f"scale {k + 1}: {wh(hw)}") for k, (im, hw) in enumerate(zip(r.recon, hws))]
    bitmaps = [(b, f"scale {k + 1}: {wh(hw)}") for k, (b, hw) in enumerate(zip(r.bitmaps, hws))]
    return recon, effect, r.planes, bitmaps, md


def wire(studio, c) -> None:
    tok_inputs = [c.tok_controls[n] for n in names(TokenizeSettings)]
    var_inputs = [c.var_controls[n] for n in names(VariationSettings)]

    def ui_tokenize(*values):
        try:
            r = studio.tokenize(TokenizeSettings(*values))
        except (InvalidInput, torch.OutOfMemoryError) as e:
            return {c.md: notify(e)}
        return dict(zip([c.recon, c.effect, c.planes, c.bitmaps, c.md], tokenize_view(r)))

    def ui_variation(*values):
        try:
            r = studio.variation(VariationSettings(*values))
        except (InvalidInput, torch.OutOfMemoryError) as e:
            return {c.var_md: notify(e)}
        return {c.var_video: r.mp4, c.var_image: r.png, c.var_md: f"Seed **{r.info['seed']}** · first "
                f"{r.info['keep_scales']} of {len(r.info['scales'])} scales kept"}

    for btn in (c.btn, c.var_btn):
        btn.click(None, js=texts.CLEAR_TOASTS_JS)
    gr.on([c.btn.click], ui_tokenize, tok_inputs, [c.recon, c.effect, c.planes, c.bitmaps, c.md],
          api_visibility="private", show_progress_on=[c.md], **MODEL_EVENTS)
    gr.on([c.var_btn.click, c.var_prompt.submit], ui_variation, var_inputs, [c.var_video, c.var_image, c.var_md],
          api_visibility="private", show_progress_on=[c.var_md], **MODEL_EVENTS)
    _wire_choices(studio, c)


def _wire_choices(studio, c) -> None:
    """An upload's ratio relabels the resolutions in pixels; ratio and resolution decide which scales exist."""
    def relabel(image, budget):
        r = studio.image_ratio(image)
        return gr.Radio(choices=[(studio.budget_label(r, b), b) for b in studio.pipe.budgets()], value=budget)

    def scales(image, budget, scale, keep):
        choices = studio.scale_choices(studio.image_ratio(image), budget)
        K = len(choices)
        one = scale if isinstance(scale, int) and scale < K else K // 2
        return gr.Dropdown(choices=choices, value=one), gr.Slider(maximum=K, value=min(keep, K))

    c.upload.change(relabel, [c.upload, c.budget], [c.budget], **QUIET)
    gr.on([c.upload.change, c.budget.change], scales, [c.upload, c.budget, c.scale, c.var_keep], [c.scale, c.var_keep],
          **QUIET)
