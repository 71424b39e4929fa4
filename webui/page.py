"""The whole page: the tabs, share links (restore on load, regenerate, keep the URL in step), the API endpoints."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import gradio as gr
from gradio import utils as gr_utils
from starlette.middleware import Middleware

from . import api, links, tab_compare, tab_flip, tab_generate, tab_tokenizer, texts
from .busy import BusyAnswer
from .service import OUTPUT_MAX_AGE_S, OutputStore, Studio
from .compare import format_variants
from .settings import GenerateSettings, names
from .widgets import AFTER_RUNS, MODEL_EVENTS, QUIET, wrap_gpu

HERE = Path(__file__).resolve().parent.parent


def default_output_root() -> Path:
    return Path(os.environ.get("INFINITY_OUTPUT_DIR") or HERE / "outputs")


def launch_kwargs(output_root: Optional[os.PathLike] = None) -> dict:
    """What `demo.launch` needs besides host and port: the look, the only folder files may be served from, and
    the words a full queue answers with (`busy.BusyAnswer`)."""
    root = Path(output_root) if output_root else default_output_root()
    root.mkdir(parents=True, exist_ok=True)
    return dict(theme=gr.themes.Soft(primary_hue="indigo"), css=texts.CSS, allowed_paths=[str(root.resolve())],
                max_file_size="20mb", app_kwargs={"middleware": [Middleware(BusyAnswer)]})


def make_studio(pipe, output_root: Optional[os.PathLike] = None) -> Studio:
    """The service the page runs on (scripts and tests can make their own the same way)."""
    store = OutputStore(Path(output_root) if output_root else default_output_root())
    return Studio(pipe, store, upload_dir=gr_utils.get_upload_folder)


def build_demo(pipe, output_root: Optional[os.PathLike] = None) -> gr.Blocks:
    """The whole page for one pipeline. Queued with one worker and a bounded queue (CPU-friendly); call
    `.queue(...)` again to change that, and launch with `**launch_kwargs(output_root)`."""
    studio = make_studio(pipe, output_root)
    wrap_gpu(studio)
    D = studio.defaults()
    cfg = pipe.config
    model_line = (f"Model **{cfg.name}** · {len(pipe.budgets())} resolution{'s' if len(pipe.budgets()) > 1 else ''}, "
                  f"{len(pipe.aspect_ratios())} aspect ratios · {pipe.device.type.upper()}")
    with gr.Blocks(title=texts.TITLE, delete_cache=(1800, OUTPUT_MAX_AGE_S)) as demo:
        gr.Markdown(f"# {texts.TITLE}")
        gr.Markdown(texts.INTRO, elem_id="intro")
        gr.Markdown(model_line + (f"  \n{cfg.card}" if cfg.card else ""), elem_id="model-line")
        with gr.Tabs() as tabs:
            with gr.Tab("Generate", id="generate"):
                gen = tab_generate.build(studio, D)
            with gr.Tab("Bit flips", id="flips"):
                flip = tab_flip.build(studio, D)
            with gr.Tab("Compare", id="compare"):
                cmp = tab_compare.build(studio, D)
            with gr.Tab("Tokenizer", id="tokenizer"):
                tok = tab_tokenizer.build(studio, D)
        gr.Markdown(texts.RESPONSIBLE_USE + "  \nProgrammatic use: see *Use via API* below (endpoints /generate, "
                    "/flip, /compare, /tokenize, /variation).", elem_id="footer")
        events = tab_generate.wire(studio, gen)
        tab_flip.wire(studio, flip, gen)
        tab_tokenizer.wire(studio, tok)
        cmp_events = tab_compare.wire(studio, cmp, gen)
        auto = _wire_links(studio, gen, flip, events, cmp)
        _wire_compare_links(studio, gen, cmp, cmp_events, tabs, auto)
        with gr.Column(visible=False):
            api.register(studio)
    demo.queue(default_concurrency_limit=1, max_size=20)
    return demo


def _restore_updates(studio, s: dict, controls: dict) -> list:
    """Updates for the linked controls (in link order) and the random-seed box: what the link set, nothing else."""
    ratios, budgets = [r for _, r in studio.ratio_choices()], studio.pipe.budgets()
    given = set(s["given"])
    shown = {**s, "aspect_ratio": ratios.index(s["aspect_ratio"]), "resolution": budgets.index(s["resolution"]),
             "variants": format_variants(s["variants"])}
    updates = [shown[n] if n in given else gr.skip() for n in links.FIELDS]
    if given & {"aspect_ratio", "resolution", "flip_scales", "inspect_scale"}:
        # choices and values together, so a value is never outside the choices shown
        choices = studio.scale_choices(s["aspect_ratio"], s["resolution"])
        updates[links.FIELDS.index("flip_scales")] = gr.CheckboxGroup(choices=choices, value=s["flip_scales"])
        updates[links.FIELDS.index("inspect_scale")] = gr.Dropdown(choices=choices, value=s["inspect_scale"])
    return updates + [gr.skip() if s["randomize_seed"] else False]


def _wire_links(studio, gen, flip, events, cmp):
    """Restore on load, regenerate, keep the URL in step; returns the regenerating event (compare links chain
    theirs after it)."""
    controls = {**gen.controls, **flip.controls, **cmp.controls}
    linked = [controls[n] for n in links.FIELDS]

    def restore(request: gr.Request):
        s = links.settings_from_query(studio, dict(request.query_params) if request else {})
        if s["ignored"]:
            gr.Warning("Ignored link settings this model does not support: " + ", ".join(s["ignored"]))
        return _restore_updates(studio, s, controls)

    def autorun(request: gr.Request, *values):
        """A link that names a prompt regenerates its image; a plain visit shows the first example's result."""
        query = dict(request.query_params) if request else {}
        s = links.settings_from_query(studio, query)
        if s["compare"]:  # the Compare tab regenerates this link (`_wire_compare_links`)
            yield {gen.info: gr.skip()}
        elif s["autorun"]:
            settings = tab_generate.settings_from_page(studio, GenerateSettings, values)
            yield from tab_generate.run_generate(studio, gen, settings)
        else:
            yield events.example(texts.EXAMPLES[0])

    demo = gr.context.Context.root_block
    restored = demo.load(restore, None, linked + [gen.randomize], **QUIET)
    auto = restored.then(autorun, [gen.controls[n] for n in names(GenerateSettings)], gen.outputs,
                         api_visibility="private", show_progress="hidden", **MODEL_EVENTS)
    gen.stop_btn.click(tab_generate.cancelled, None, [gen.image, gen.info], cancels=[events.generate, auto],
                       **AFTER_RUNS)
    restored.then(None, js=links.LINK_READ_JS)
    gr.on([c.change for c in linked], None, linked, None,
          js=links.url_js([label for label, _ in studio.ratio_choices()], studio.pipe.budgets()))
    space = os.environ.get("SPACE_ID")
    gen.copy_btn.click(None, None, [gen.link],
                       js=links.copy_js(f"https://huggingface.co/spaces/{space}" if space else None))
    return auto


def _wire_compare_links(studio, gen, cmp, cmp_events, tabs, auto) -> None:
    """A link that names variants opens the Compare tab and regenerates the comparison; Cancel stops either run."""
    base = [gen.controls[n] for n in tab_compare.BASE]
    auto_cmp = auto.then(tab_compare.autorun(studio, cmp, tabs), base + [cmp.variants], cmp.outputs + [tabs],
                         api_visibility="private", show_progress="hidden", **MODEL_EVENTS)
    cmp.stop_btn.click(tab_compare.cancelled, None, [cmp.info], cancels=[cmp_events.compare, auto_cmp], **AFTER_RUNS)
    space = os.environ.get("SPACE_ID")
    cmp.copy_btn.click(None, None, [cmp.link],
                       js=links.copy_js(f"https://huggingface.co/spaces/{space}" if space else None))
