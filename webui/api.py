"""The named API endpoints (/generate, /flip, /compare, /tokenize, /variation): plain values in (the settings
dataclasses' fields, so names and defaults follow them), files and one JSON dict out. Their inputs are hidden
components of their own, so the page's controls (sliders over positions, number boxes) can change without changing
the API."""
from __future__ import annotations

from dataclasses import fields

import gradio as gr

from .compare import PRESETS
from .settings import (CompareSettings, FlipSettings, GenerateSettings, TokenizeSettings, VariationSettings,
                       as_function, defaults)
from .widgets import MODEL_EVENTS, api_errors, upload_image

FILE_OUTPUTS = ("image_pngs", "animation_mp4", "animation_gif", "clean_png", "flipped_png", "side_by_side_mp4",
                "bit_planes_png", "reconstruction_png", "scale_pngs", "flipped_kept_png", "flipped_requantized_png",
                "variation_png", "row_png", "grid_png", "compare_mp4", "compare_gif")


def _input(name: str, kind: str, default):
    """A hidden input for one field, by its type: what gradio_client sends arrives unchanged (no clamping)."""
    if name == "image":
        return upload_image(label=name)
    if "list" in kind:
        return gr.JSON(default, label=name)
    if "bool" in kind:
        return gr.Checkbox(default, label=name)
    if "int" in kind or "float" in kind:
        return gr.Number(default, label=name)
    return gr.Textbox(default, label=name)


def inputs_for(cls, values: dict) -> list:
    from .settings import field_types

    types = field_types(cls)
    return [_input(f.name, str(types[f.name]), values.get(f.name)) for f in fields(cls)]


def register(studio) -> None:
    """Adds the five endpoints to the Blocks being built (call inside it)."""
    D = studio.defaults()
    out = {n: gr.File(label=n, file_count="multiple" if n.endswith("pngs") else "single") for n in FILE_OUTPUTS}
    info = gr.JSON(label="info")

    def files(*names_):
        return [out[n] for n in names_] + [info]

    endpoints = (
        ("generate", GenerateSettings, _generate(studio), files("image_pngs", "animation_mp4", "animation_gif")),
        ("flip", FlipSettings, _flip(studio), files("clean_png", "flipped_png", "side_by_side_mp4", "bit_planes_png")),
        ("compare", CompareSettings, _compare(studio),
         files("image_pngs", "row_png", "grid_png", "compare_mp4", "compare_gif")),
        ("tokenize", TokenizeSettings, _tokenize(studio),
         files("reconstruction_png", "scale_pngs", "flipped_kept_png", "flipped_requantized_png")),
        ("variation", VariationSettings, _variation(studio), files("variation_png", "side_by_side_mp4")),
    )
    for name, cls, (run, doc), outputs in endpoints:
        values = {**defaults(cls), **{k: v for k, v in D.items() if k in defaults(cls)}}
        if cls in (TokenizeSettings, VariationSettings):
            values["resolution"] = D["resolution"]
        if cls is CompareSettings:  # a plain call compares something
            values["preset"] = next(iter(PRESETS))
        fn = as_function(cls, run, doc, f"api_{name}", overrides=values)
        gr.on([], fn, inputs_for(cls, values), outputs, api_name=name, **MODEL_EVENTS)


def _generate(studio):
    def run(s):
        with api_errors():
            r = studio.generate(s)
        return r.pngs, r.mp4, r.gif, r.info

    return run, ("Generate num_images images (seeds seed, seed+1, …). Returns the PNGs (prompt, seed and settings in "
                 "their metadata), the scale animation as MP4 and GIF (of the first image), and a JSON dict with the "
                 "seed used and every setting.")


def _flip(studio):
    def run(s):
        with api_errors():
            r = studio.flip(s)
        return r.clean_png, r.flipped_png, r.mp4, r.planes_png, r.info

    return run, ("Clean and bit-flipped run from one seed (flip_scales: 0-based scale indices). Returns the clean "
                 "PNG, the flipped PNG, the side-by-side MP4, the bit planes of inspect_scale (flipped bits in red) "
                 "and a JSON dict with, per scale, the flipped bit count and the mean absolute difference.")


def _compare(studio):
    def run(s):
        with api_errors():
            r = studio.compare(s)
        return r.pngs, r.row_png, r.grid_png, r.mp4, r.gif, r.info

    return run, ("The base settings run under 2–4 variants, one after another (variants: list of dicts changing "
                 "seed, guidance, temperature, top_p, greedy, flip_share, flip_scales (0-based), flip_seed; label "
                 "optional; or a preset when variants is empty). Each variant's PNG equals /generate (or /flip's "
                 "flipped PNG) with its settings. Returns the PNGs, the final images in a labelled row, the grid of "
                 "every scale (rows) of every variant (columns), the side-by-side MP4 and GIF, and a JSON dict with "
                 "labels, each variant's settings, and per scale the mean absolute difference from the first.")


def _tokenize(studio):
    def run(s):
        with api_errors():
            r = studio.tokenize(s)
        return r.recon_png, r.scale_pngs, r.kept_png, r.requantized_png, r.info

    return run, ("Tokenize an image. Returns the reconstruction PNG, the per-scale reconstructions, the image flipped "
                 "at flip_scale with later scales kept and with later scales re-quantized (None when flip_share is "
                 "0), and a JSON dict (sizes, scales, PSNRs).")


def _variation(studio):
    def run(s):
        with api_errors():
            r = studio.variation(s)
        return r.png, r.mp4, r.info

    return run, ("Keep the first keep_scales scales of the image's bits, generate the rest from prompt. Returns the "
                 "PNG, the side-by-side MP4 and a JSON dict.")
