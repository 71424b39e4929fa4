"""The Gradio UI of Infinity, beside the library (`import infinity` never imports gradio).

    page.py          build_demo(pipe), launch_kwargs(): the page and how to launch it
    tab_generate.py  tab_flip.py  tab_compare.py  tab_tokenizer.py   one module per tab (components, then events)
    api.py           the named endpoints /generate, /flip, /compare, /tokenize, /variation
    links.py         share links: keys, parsing, formatting and the page's JavaScript together
    settings.py      one dataclass per request kind; its fields drive inputs, API, link keys and restore
    service.py       tokens.py   compare.py   what the page does, as plain methods (no gradio)
    results.py       what those methods hand back: typed records, one per request kind and stream event
    widgets.py       texts.py    shared gradio pieces; the page's words and CSS
"""
__all__ = ["build_demo", "default_output_root", "launch_kwargs", "make_studio"]


def __getattr__(name):
    # gradio is imported only by what needs it: `webui.service`, `.settings` and `.links` stay importable without it
    if name in __all__:
        from . import page

        return getattr(page, name)
    raise AttributeError(name)
