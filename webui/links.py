"""Share links: every linked setting (fields of `GenerateSettings`, `FlipSettings` and `CompareSettings` with a
`link` key) in the page's URL. Parsing, formatting and the page's JavaScript live together here so the three
cannot drift apart.

A value is accepted only if the pipeline accepts it (`check_inputs`, the one validation path); anything else
falls back to its default and is listed under `ignored`.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional
from urllib.parse import urlencode

from infinity.validation import InvalidInput, check_scale, clean_prompt

from .compare import format_variants, parse_variants
from .settings import CompareSettings, FlipSettings, GenerateSettings, field_types, link_keys, make

KEYS = link_keys()  # link key -> field name, in the order the page lists them
FIELDS = list(KEYS.values())
_TYPES = {**field_types(GenerateSettings), **field_types(FlipSettings), **field_types(CompareSettings)}


def _convert(studio, name: str, text: str) -> Any:
    """A link's text → the field's type (ValueError when it does not parse)."""
    kind = str(_TYPES[name])
    if name == "variants":  # a comparison's variants: 'guidance:1;guidance:3' (webui.compare)
        return parse_variants(text)
    if name == "aspect_ratio":  # a label as the page writes it ('4:3') or a template's h/w ('0.75')
        for label, r in studio.ratio_choices():
            if text == label or (text.replace(".", "", 1).isdigit() and abs(float(text) - r) < 1e-6):
                return r
        raise ValueError(text)
    if "bool" in kind:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if "list" in kind:
        return sorted({float(x) for x in text.split(",") if x.strip()})
    if "int" in kind or "float" in kind:
        return float(text)
    return text


def _check(studio, s: dict) -> None:
    """Raises InvalidInput unless the pipeline accepts these settings (an empty prompt is fine in a link)."""
    _, d = studio.pipe.check_inputs(
        s["prompt"] or "x", s["seed"], negative_prompt=s["negative_prompt"], guidance=s["guidance"],
        temperature=s["temperature"], top_p=s["top_p"], greedy=s["greedy"], h_div_w=s["aspect_ratio"],
        budget=s["resolution"], flip_share=s["flip_share"], flip_scales=s["flip_scales"], flip_seed=s["flip_seed"],
        num_images=s["num_images"])
    check_scale(s["inspect_scale"], len(studio.pipe.schedule(d["h_div_w"], d["budget"])))
    if s["variants"]:
        studio.compare_variants(make(CompareSettings, {**s, "prompt": s["prompt"] or "x"}))


def _whole(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def settings_from_query(studio, query: Mapping[str, str]) -> dict:
    """Page settings (by field name) from a link's query. Keys are taken in page order, each judged together
    with those before it (scale indices depend on the ratio and resolution). Extra entries: `given` (fields the
    link set), `ignored` (its keys that were refused), `autorun` (it names a prompt), `compare` (it names a prompt
    and a comparison's variants: the Compare tab regenerates instead) and `randomize_seed` (off when the link
    names a valid seed, so that seed is used)."""
    s, given, ignored = studio.defaults(), [], []
    for key, name in KEYS.items():
        if key not in query:
            continue
        try:
            value = _convert(studio, name, str(query[key]).strip())
            value = [_whole(v) for v in value] if isinstance(value, list) and name != "variants" else _whole(value)
            _check(studio, {**s, name: value})
        except (ValueError, TypeError, InvalidInput):
            ignored.append(key)
            continue
        s[name] = value
        given.append(name)
    s["prompt"] = clean_prompt(s["prompt"], allow_empty=True)
    s["negative_prompt"] = clean_prompt(s["negative_prompt"], "negative prompt", allow_empty=True)
    s.update(given=given, ignored=ignored, autorun=bool(s["prompt"]), randomize_seed="seed" not in given,
             compare=bool(s["prompt"]) and "variants" in given)
    return s


def query_from_settings(studio, settings: Mapping[str, Any]) -> str:
    """The inverse of `settings_from_query` (without the leading '?'). Takes field names or the pipeline's
    (`h_div_w`, `budget`)."""
    settings = {"aspect_ratio": settings.get("h_div_w"), "resolution": settings.get("budget"), **settings}
    labels = {r: label for label, r in studio.ratio_choices()}
    out = {}
    for key, name in KEYS.items():
        v = settings.get(name)
        if v is None or v == "" or (name in ("flip_share", "flip_scales", "variants") and not v):
            continue
        if name == "variants":
            v = format_variants(v)
        elif name == "aspect_ratio":
            v = labels.get(v, v)
        elif isinstance(v, bool):
            v = int(v)
        elif isinstance(v, (list, tuple)):
            v = ",".join(str(int(x)) for x in v)
        out[key] = v
    return urlencode(out)


def url_js(ratio_labels: list[str], budgets: list[str]) -> str:
    """Page JS: writes the linked settings (the controls of `FIELDS`, in order) into the address bar, and inside a
    Space's iframe into the Space page's URL. The ratio and resolution sliders hold indices: written as labels.
    Runs only once the page has read its own link (`window.__infinityLinkRead`, set by `LINK_READ_JS`): writing
    earlier would replace the link before it was read."""
    return f"""
(...values) => {{
  if (!window.__infinityLinkRead) return;
  const keys = {json.dumps(list(KEYS))};
  const ratios = {json.dumps(ratio_labels)}, budgets = {json.dumps(budgets)};
  const params = new URLSearchParams();
  keys.forEach((k, i) => {{
    let v = values[i];
    if (v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) return;
    if (k === 'ratio') v = ratios[Math.round(v)] ?? v;
    if (k === 'resolution') v = budgets[Math.round(v)] ?? v;
    if (Array.isArray(v)) v = v.join(',');
    if (typeof v === 'boolean') v = v ? 1 : 0;
    params.set(k, String(v));
  }});
  const query = params.toString();
  history.replaceState(history.state, '', location.pathname + (query ? '?' + query : '') + location.hash);
  if (window.parent !== window) {{
    // a Space shows the app in an iframe; this message is how Spaces lets it update the page's own URL
    window.parent.postMessage({{queryString: query}}, 'https://huggingface.co');
  }}
}}
"""


LINK_READ_JS = "() => { window.__infinityLinkRead = true; }"


def copy_js(share_base: Optional[str]) -> str:
    """Copies the page's link (on a Space: the Space page's, not the iframe's) and shows it in the link box."""
    base = json.dumps(share_base) if share_base else "location.origin + location.pathname"
    return f"""
() => {{
  const link = {base} + location.search;
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(link).catch(() => {{}});
  return link;
}}
"""
