"""Typed settings, one dataclass per request kind. Their fields are the single list of a request's settings: the
order of the page's inputs, the API endpoint's parameters (names, types, defaults), the share-link keys
(`link` metadata) and what a link restores all come from here, so a new setting is added in one place.

No gradio here: the service layer and the share links use these too.
"""
from __future__ import annotations

import inspect
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, Optional, get_type_hints


def setting(default: Any = None, *, link: Optional[str] = None, doc: str = "") -> Any:
    """A field: its default, the share-link key that carries it (None: not in links) and one line for the API."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"link": link, "doc": doc})
    return field(default=default, metadata={"link": link, "doc": doc})


@dataclass
class GenerateSettings:
    """/generate and the Generate tab. None means the model's default."""

    prompt: str = setting("", link="prompt", doc="what to draw")
    negative_prompt: str = setting("", link="negative", doc="what to steer away from (optional)")
    seed: int = setting(0, link="seed", doc="seed of the first image (0 … 2³¹−1)")
    randomize_seed: bool = setting(True, doc="draw a fresh seed instead of `seed`")
    guidance: Optional[float] = setting(None, link="guidance", doc="classifier-free guidance (1 = none)")
    temperature: Optional[float] = setting(None, link="temperature", doc="> 0; lower: safer bits")
    top_p: Optional[float] = setting(None, link="top_p", doc="nucleus filter per bit (0 = off)")
    greedy: bool = setting(False, link="greedy", doc="the more likely value of every bit")
    aspect_ratio: float = setting(1.0, link="ratio", doc="height / width (nearest template the model has)")
    resolution: Optional[str] = setting(None, link="resolution", doc="a pixel budget name the model declares")
    num_images: int = setting(1, link="n", doc="images with seeds seed, seed+1, …")


@dataclass
class FlipSettings:
    """/flip and the Bit flips tab (which reuses the Generate tab's prompt, seed and sampling settings)."""

    prompt: str = setting("", link="prompt")
    negative_prompt: str = setting("", link="negative")
    seed: int = setting(0, link="seed")
    guidance: Optional[float] = setting(None, link="guidance")
    temperature: Optional[float] = setting(None, link="temperature")
    top_p: Optional[float] = setting(None, link="top_p")
    greedy: bool = setting(False, link="greedy")
    aspect_ratio: float = setting(1.0, link="ratio")
    resolution: Optional[str] = setting(None, link="resolution")
    flip_share: float = setting(0.2, link="flip_share", doc="share of the sampled bits to flip (0 … 1]")
    flip_scales: list = setting([], link="flip_scales", doc="0-based scale indices to flip bits at")
    inspect_scale: Optional[int] = setting(None, link="inspect", doc="scale whose bit planes are drawn")
    flip_seed: int = setting(0, link="flip_seed", doc="seed of which bits are flipped")


@dataclass
class TokenizeSettings:
    """/tokenize and the Tokenizer tab."""

    image: Any = setting(None, doc="an image file")
    resolution: Optional[str] = setting(None, doc="a pixel budget name the model declares")
    flip_share: float = setting(0.2, doc="share of one scale's bits to flip (0: no flip)")
    flip_scale: Optional[int] = setting(None, doc="0-based scale to flip bits at (default: the middle one)")
    flip_seed: int = setting(0, doc="seed of which bits are flipped")


@dataclass
class VariationSettings:
    """/variation: keep the first scales of an image, let the model draw the rest."""

    image: Any = setting(None, doc="an image file")
    prompt: str = setting("", doc="what to draw on top of the kept scales")
    keep_scales: int = setting(2, doc="how many of the image's scales to keep (0 … all)")
    seed: int = setting(0, doc="seed of the drawn scales")
    resolution: Optional[str] = setting(None, doc="a pixel budget name the model declares")


@dataclass
class CompareSettings:
    """/compare and the Compare tab (which reuses the Generate tab's prompt and settings as the base): the base run
    under 2–4 variants, each changing some of its settings (`webui.compare.VARIANT_KEYS`)."""

    prompt: str = setting("", link="prompt")
    negative_prompt: str = setting("", link="negative")
    seed: int = setting(0, link="seed", doc="the base's seed")
    guidance: Optional[float] = setting(None, link="guidance", doc="the base's guidance")
    temperature: Optional[float] = setting(None, link="temperature", doc="the base's temperature")
    top_p: Optional[float] = setting(None, link="top_p", doc="the base's top-p")
    greedy: bool = setting(False, link="greedy", doc="the base's greedy")
    aspect_ratio: float = setting(1.0, link="ratio", doc="height / width, one for every variant")
    resolution: Optional[str] = setting(None, link="resolution", doc="a pixel budget name, one for every variant")
    variants: list = setting([], link="variants", doc="2–4 dicts, each changing some of seed, guidance, temperature, "
                                                     "top_p, greedy, flip_share, flip_scales (0-based), flip_seed; "
                                                     "optional label")
    preset: str = setting("", doc="used when variants is empty: 'guidance 1 / 3 / 6', 'temperature 0.5 / 1.0 / "
                                  "1.5' or 'four seeds'")


KINDS = {"generate": GenerateSettings, "flip": FlipSettings, "tokenize": TokenizeSettings,
         "variation": VariationSettings, "compare": CompareSettings}


def names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def defaults(cls) -> dict:
    return {f.name: (f.default_factory() if f.default is MISSING else f.default) for f in fields(cls)}


def link_keys() -> dict[str, str]:
    """Share-link key → field name, over every kind that lives in links (generate first, then flip, compare)."""
    out: dict[str, str] = {}
    for cls in (GenerateSettings, FlipSettings, CompareSettings):
        for f in fields(cls):
            if f.metadata.get("link"):
                out.setdefault(f.metadata["link"], f.name)
    return out


def field_types(cls) -> dict[str, Any]:
    return get_type_hints(cls)


def signature(cls, overrides: Optional[dict] = None) -> inspect.Signature:
    """The API function's signature: one keyword per field, the dataclass's (or `overrides`') defaults."""
    hints, values = field_types(cls), {**defaults(cls), **(overrides or {})}
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=values[n],
                                                annotation=hints[n]) for n in names(cls)])


def as_function(cls, run: Callable, doc: str, name: str, overrides: Optional[dict] = None) -> Callable:
    """A plain function whose parameters are `cls`'s fields (what Gradio shows as the endpoint's signature);
    it builds the settings object and hands it to `run`."""
    sig = signature(cls, overrides)

    def endpoint(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return run(cls(**bound.arguments))

    endpoint.__signature__ = sig
    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = doc + "\n\nParameters:\n" + "\n".join(
        f"    {f.name}: {f.metadata['doc']}" for f in fields(cls) if f.metadata.get("doc"))
    return endpoint


def make(cls, values: dict):
    """`cls` from a dict that may hold other kinds' settings too (the page's linked settings)."""
    return cls(**{n: values[n] for n in names(cls) if n in values})
