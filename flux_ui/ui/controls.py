"""Controls built from the registry: one component per parameter name any model takes,
shown, bounded and defaulted for whichever model is selected."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import gradio as gr
from gradio.events import Dependency

from flux_ui.registry import MODELS, ModelSpec, Param, PixelSize

#: Shapes offered as size presets for models that take width and height.
SIZE_PRESETS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9")


def all_param_names(models: Sequence[str] | None = None) -> tuple[str, ...]:
    """Every parameter any of these models takes (None: every model in the registry, as it is when
    called), in registry order, seed first."""
    names: list[str] = []
    for model_id in MODELS if models is None else models:
        for p in MODELS[model_id].all_params:
            if p.name not in names:
                names.append(p.name)
    return tuple(sorted(names, key=lambda n: (n != "seed", n not in ("width", "height", "aspect_ratio"))))


def merged_declaration(name: str) -> Param:
    """The parameter with every model's bounds and choices together.

    A component is built once with these, so Gradio's own checks refuse only values no model
    takes; each model's narrower range is the client's to check, with its clearer message.
    """
    declared = [p for spec in MODELS.values() for p in spec.all_params if p.name == name]
    first = declared[0]
    if first.kind in ("int", "float"):
        lows = [p.minimum for p in declared if p.minimum is not None]
        highs = [p.widest_maximum for p in declared if p.widest_maximum is not None]
        return replace(first, minimum=min(lows), maximum=max(highs))
    if first.choices:
        choices = tuple(dict.fromkeys(c for p in declared for c in p.choices))
        return replace(first, choices=choices)
    return first


def make_component(p: Param) -> gr.components.Component:
    """An unrendered-in-place component for a parameter (bounds are set per model later)."""
    common: dict[str, Any] = {"label": p.label, "info": p.help, "visible": False, "key": f"param-{p.name}",
                              "elem_id": f"param-{p.name}"}
    if p.name == "seed":
        # Gradio shows an empty Number as 0, so the box is greyed while seeds are randomized
        # and shows the seed each image was made with.
        return gr.Number(value=None, precision=0, minimum=p.minimum, maximum=p.maximum, interactive=False, **common)
    if p.name in ("width", "height"):
        return gr.Number(value=p.default, precision=0, step=p.step, **common)
    if p.kind == "aspect_ratio":
        return gr.Dropdown(choices=list(p.choices), value=p.default, allow_custom_value=True, **common)
    if p.kind in ("int", "float"):
        return gr.Slider(minimum=p.minimum, maximum=p.maximum, step=p.step, value=p.default, **common)
    if p.kind == "bool":
        return gr.Checkbox(value=bool(p.default), **common)
    if p.kind == "choice":
        return gr.Radio(choices=list(p.choices), value=p.default, **common)
    return gr.Textbox(value=p.default, lines=1, **common)


def update_for(spec: ModelSpec, name: str) -> dict[str, Any]:
    """A gr.update that shows, bounds and resets one control for a model (or hides it)."""
    p = spec.param(name)
    if p is None:
        return gr.update(visible=False)
    change: dict[str, Any] = {"visible": True, "label": p.label, "info": p.help}
    if name == "seed":
        return gr.update(**change)
    if name in ("width", "height") or p.kind in ("int", "float"):
        change.update(value=p.default, minimum=p.minimum, maximum=p.maximum, step=p.step)
    elif p.kind in ("choice", "aspect_ratio"):
        change.update(value=p.default, choices=list(p.choices))
    else:
        change.update(value=p.default)
    return gr.update(**change)


def preset_sizes(spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, "WxH") size presets on the model's grid near its default pixel count."""
    rule = spec.size
    if not isinstance(rule, PixelSize):
        return []
    from flux_ui.registry import parse_aspect_ratio

    target = rule.default[0] * rule.default[1]
    out = []
    for text in SIZE_PRESETS:
        ratio = parse_aspect_ratio(text)
        assert ratio is not None
        w = int((target * ratio[0] / ratio[1]) ** 0.5) // rule.multiple * rule.multiple
        h = int((target * ratio[1] / ratio[0]) ** 0.5) // rule.multiple * rule.multiple
        if rule.max_side and max(w, h) > rule.max_side:
            scale = rule.max_side / max(w, h)
            w, h = int(w * scale) // rule.multiple * rule.multiple, int(h * scale) // rule.multiple * rule.multiple
        if min(w, h) >= rule.min_side:
            out.append((f"{text}  ·  {w}×{h}", f"{w}x{h}"))
    return out


def model_updates(spec: ModelSpec, select: bool = False) -> list[dict[str, Any]]:
    """The model dropdown's summary (and value, when ``select``) and its size presets."""
    choices = preset_sizes(spec)
    model = gr.update(info=spec.summary, **({"value": spec.id} if select else {}))
    return [model, gr.update(choices=choices, value=None, visible=bool(choices))]


def reuse_updates(spec: ModelSpec, names: Sequence[str], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A saved image's settings as updates for [model, presets, prompt, randomize, *controls]."""
    values = saved_values(settings)
    return [*model_updates(spec, select=True), gr.update(value=settings.get("prompt", "")),
            gr.update(value="seed" not in values), *updates_with_values(spec, names, values)]


def saved_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A History entry's parameters with its seed, as control values."""
    params = dict(settings.get("params") or {})
    if isinstance(settings.get("seed"), int):
        params["seed"] = settings["seed"]
    return params


def updates_with_values(spec: ModelSpec, names: Sequence[str], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """update_for each control, carrying the given values where the model takes them."""
    updates = []
    for name in names:
        change = update_for(spec, name)
        if name in values and spec.param(name) is not None:
            change["value"] = values[name]
        updates.append(change)
    return updates


def seed_after_run(message: str | None, seed: Any) -> list[Any]:
    """[the seed "Reuse this seed" loads, that button] once a run has ended.

    An empty message means an image was made (the endpoints' contract), with ``seed``, which the
    button then offers; after a failure both stay as they were.
    """
    if message:
        return [gr.update(), gr.update()]
    return [seed, gr.update(visible=seed is not None)]


def wire_seed(seed: gr.components.Component, randomize: gr.Checkbox, reuse: gr.Button, used_seed: gr.State) -> None:
    """The seed box is greyed while randomizing; "reuse this seed" keeps the last one."""
    reuse.click(lambda s: (gr.update(value=s), gr.update(value=False)), used_seed, [seed, randomize],
                api_visibility="private")
    randomize.change(lambda on: gr.update(interactive=not on), randomize, seed, api_visibility="private")


def wire_model_controls(demo: gr.Blocks, model: gr.Dropdown, presets: gr.Dropdown,
                        controls: Mapping[str, gr.components.Component]) -> Callable[[Dependency], Dependency]:
    """Show, bound and reset the controls for the chosen model (on load and when a person picks
    one; ``.input``, so History's programmatic reuse keeps the values it loads), and let a size
    preset fill width and height.

    Returns ``follow(event)``, which chains the same step after an event that sets the model
    itself (an example), and returns that step."""
    names = list(controls)
    outputs = [model, presets, *controls.values()]

    def on_model(model_id: str) -> list[Any]:
        spec = MODELS[model_id]
        return [*model_updates(spec), *(update_for(spec, n) for n in names)]

    model.input(on_model, model, outputs, api_visibility="private")
    demo.load(on_model, model, outputs, api_visibility="private")

    def on_preset(value: str | None) -> list[Any]:
        if not value:
            return [gr.update(), gr.update()]
        w, h = (int(v) for v in value.split("x"))
        return [gr.update(value=w), gr.update(value=h)]

    if "width" in controls:
        presets.change(on_preset, presets, [controls["width"], controls["height"]], api_visibility="private")

    def follow(event: Dependency) -> Dependency:
        return event.then(on_model, model, outputs, api_visibility="private", show_progress="hidden")

    return follow
