"""Controls built from the registry: one component per parameter name any model takes,
shown, bounded and defaulted for whichever model is selected, with the help its tab needs; and the
shape (size preset, width and height, or aspect ratio) carried from one model to the next."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import gradio as gr
from gradio.events import Dependency

from flux_ui.registry import MODELS, AspectRatioSize, Mode, ModelSpec, Param, PixelSize, parse_aspect_ratio
from flux_ui.ui.icons import labelled

#: Shapes offered as size presets for models that take width and height.
SIZE_PRESETS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16", "21:9")
#: The size preset's value when the width and height are no preset's.
CUSTOM = "custom"
CUSTOM_LABEL = "Custom: the width and height below"
#: What a slider's ↺ button does, as its title and accessible name (Gradio gives it only the second).
RESET_LABEL = "Reset to default value"
#: The controls that hold a shape, by the names the registry gives them.
SIZE_NAMES = ("width", "height", "aspect_ratio")
#: What the registry's help (written for the tab that edits an input image) says instead on a tab that
#: makes an image from a prompt alone, where there is no input image.
_PROMPT_ONLY = (("Empty matches the input image (square without one).", "Empty makes a square image."),)


def all_param_names(models: Sequence[str] | None = None) -> tuple[str, ...]:
    """Every parameter any of these models takes (None: every model in the registry, as it is when
    called), in registry order, seed first."""
    names: list[str] = []
    for model_id in MODELS if models is None else models:
        for p in MODELS[model_id].all_params:
            if p.name not in names:
                names.append(p.name)
    return tuple(sorted(names, key=lambda n: (n != "seed", n not in SIZE_NAMES)))


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


def tab_help(p: Param, mode: Mode = Mode.GENERATE) -> str:
    """A parameter's help as it reads on a tab of this mode.

    The registry writes each help once, for every use of the parameter; on a tab that makes an image
    from a prompt alone (Text to image) nothing is edited, so what it says of an input image or of the
    edit maximum is left out or said for that tab. tests/test_ui_controls.py checks that no such words
    are left, so a reworded registry help cannot slip back in unnoticed.
    """
    if mode is not Mode.GENERATE:
        return p.help
    text = p.help
    if p.edit_maximum is not None:
        text = text.replace(f" ({p.edit_maximum:g} at most when editing an image)", "")
    for edit_words, prompt_words in _PROMPT_ONLY:
        text = text.replace(edit_words, prompt_words)
    return text


def make_component(p: Param, mode: Mode = Mode.GENERATE) -> gr.components.Component:
    """An unrendered-in-place component for a parameter (bounds are set per model later)."""
    common: dict[str, Any] = {"label": p.label, "info": tab_help(p, mode), "visible": False, "key": f"param-{p.name}",
                              "elem_id": f"param-{p.name}"}
    if p.name == "seed":
        # Gradio 6.31 shows (and sends) an empty Number as 0: the form shows it only with Randomize
        # seed off, and a box saying "random" while seeds are drawn (image_form.param_controls).
        return gr.Number(value=None, precision=0, minimum=p.minimum, maximum=p.maximum, **common)
    if p.name in ("width", "height"):
        return gr.Number(value=p.default, precision=0, step=p.step, **common)
    if p.kind == "aspect_ratio":
        return gr.Dropdown(choices=list(p.choices), value=p.default, allow_custom_value=True, **common)
    if p.kind in ("int", "float"):
        return gr.Slider(minimum=p.minimum, maximum=p.maximum, step=p.step, value=p.default,
                         elem_classes=labelled(RESET_LABEL), **common)  # its ↺ button gets a title too
    if p.kind == "bool":
        return gr.Checkbox(value=bool(p.default), **common)
    if p.kind == "choice":
        return gr.Radio(choices=list(p.choices), value=p.default, **common)
    return gr.Textbox(value=p.default, lines=1, **common)


def update_for(spec: ModelSpec, name: str, mode: Mode = Mode.GENERATE) -> dict[str, Any]:
    """A gr.update that shows, bounds and resets one control for a model (or hides it)."""
    p = spec.param(name)
    if p is None:
        return gr.update(visible=False)
    change: dict[str, Any] = {"visible": True, "label": p.label, "info": tab_help(p, mode)}
    if name == "seed":
        return gr.update(**change)
    if name in ("width", "height") or p.kind in ("int", "float"):
        change.update(value=p.default, minimum=p.minimum, maximum=p.maximum, step=p.step)
    elif p.kind in ("choice", "aspect_ratio"):
        change.update(value=p.default, choices=list(p.choices))
    else:
        change.update(value=p.default)
    return gr.update(**change)


# --- shapes: the size preset, width and height, the aspect ratio ---------------------------------------

def preset_sizes(spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, "WxH") size presets on the model's grid near its default pixel count."""
    rule = spec.size
    if not isinstance(rule, PixelSize):
        return []
    out = []
    for text in SIZE_PRESETS:
        ratio = parse_aspect_ratio(text)
        assert ratio is not None
        w, h = rule.at_ratio(ratio)
        if min(w, h) >= rule.min_side:
            out.append((f"{text}  ·  {w}×{h}", f"{w}x{h}"))
    return out


def preset_choices(spec: ModelSpec) -> list[tuple[str, str]]:
    """The size preset's choices for a model: (label, shape) for each preset, then "custom"."""
    presets = [(label, label.split()[0]) for label, _ in preset_sizes(spec)]
    return [*presets, (CUSTOM_LABEL, CUSTOM)] if presets else []


def preset_size(spec: ModelSpec, shape: Any) -> tuple[int, int] | None:
    """The width and height a size preset (a shape such as "16:9") sets for a model; None for "custom"."""
    for label, value in preset_sizes(spec):
        if label.split()[0] == shape:
            w, h = value.split("x")
            return int(w), int(h)
    return None


def preset_for(spec: ModelSpec, width: Any, height: Any) -> str | None:
    """The size preset a width and height are (its shape), "custom" when they are no preset's; None for a
    model sized by aspect ratio, which has no presets."""
    if not isinstance(spec.size, PixelSize):
        return None
    size = (_whole(width), _whole(height))
    return next((label.split()[0] for label, value in preset_sizes(spec) if value == "{}x{}".format(*size)), CUSTOM)


def carried_shape(spec: ModelSpec, preset: Any, width: Any, height: Any,
                  ratio: Any) -> tuple[str | None, dict[str, Any]]:
    """(size preset, size values) for ``spec`` keeping the shape the form holds for the model before it.

    A preset (value not None: the model before takes width and height) carries as that shape; a custom
    width and height as that size; an aspect ratio (preset None: the model before is sized by ratio) as
    that ratio. Each is put in the new model's terms by its size rule: a pixel size on its grid and within
    its limits (``PixelSize.admit``), a ratio clamped to its range (``AspectRatioSize.ratio_text``). A
    ratio the person typed that is no ratio is kept as typed (the run then says what is wrong with it);
    with no shape held, the new model's default.
    """
    rule = spec.size
    held_ratio, held_size, raw = _held(preset, width, height, ratio)
    if isinstance(rule, AspectRatioSize):
        if held_ratio is not None:
            return None, {"aspect_ratio": rule.ratio_text(*held_ratio)}
        if held_size is not None:
            return None, {"aspect_ratio": rule.ratio_text(*held_size)}
        return None, {"aspect_ratio": raw if raw is not None else rule.default}
    if held_ratio is not None:
        w, h = rule.admit(*rule.at_ratio(held_ratio))  # a preset's own size, for a preset's shape
    elif held_size is not None:
        w, h = rule.admit(*held_size)
    else:
        w, h = rule.default
    return preset_for(spec, w, h), {"width": w, "height": h}


def _held(preset: Any, width: Any, height: Any, ratio: Any) -> tuple[tuple[int, int] | None,
                                                                     tuple[int, int] | None, str | None]:
    """The shape the form holds: (a ratio, a pixel size, text that is no ratio), at most one of them."""
    if preset is not None:  # the model before takes width and height
        named = parse_aspect_ratio(preset) if isinstance(preset, str) and preset != CUSTOM else None
        if named is not None:
            return named, None, None
        w, h = _whole(width), _whole(height)
        return None, ((w, h) if w and h else None), None
    if isinstance(ratio, str) and ratio.strip():
        parsed = parse_aspect_ratio(ratio)
        return (parsed, None, None) if parsed else (None, None, ratio)
    return None, None, None


def _whole(value: Any) -> int | None:
    """A side as a whole positive number of pixels, or None (an empty or broken box)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if value == int(value) and value > 0 else None


# --- the model's controls as updates -------------------------------------------------------------------

def model_info(spec: ModelSpec, mode: Mode = Mode.GENERATE) -> str:
    """The model dropdown's info line on a tab of this mode: the model's summary, and on a tab that makes
    images from a prompt alone, what a model known for editing one image does there."""
    if mode is Mode.GENERATE and spec.does(Mode.INSTRUCTION_EDIT) and not spec.does(Mode.MULTI_REFERENCE_EDIT):
        return f"{spec.summary} Here it makes an image from the prompt alone."
    return spec.summary


def model_updates(spec: ModelSpec, select: bool = False, preset: str | None = None,
                  mode: Mode = Mode.GENERATE) -> list[dict[str, Any]]:
    """The model dropdown's info (and value, when ``select``) and its size presets, showing ``preset``."""
    choices = preset_choices(spec)
    model = gr.update(info=model_info(spec, mode), **({"value": spec.id} if select else {}))
    return [model, gr.update(choices=choices, value=preset if choices else None, visible=bool(choices))]


def shape_updates(spec: ModelSpec, names: Sequence[str], preset: str | None, sizes: Mapping[str, Any],
                  mode: Mode = Mode.GENERATE) -> list[dict[str, Any]]:
    """[model, presets, *controls] for a model: each control reset to its default but the shape, ``sizes``."""
    return [*model_updates(spec, preset=preset, mode=mode), *updates_with_values(spec, names, sizes, mode)]


def reuse_updates(spec: ModelSpec, names: Sequence[str], settings: Mapping[str, Any],
                  mode: Mode = Mode.GENERATE) -> list[dict[str, Any]]:
    """A saved image's settings as updates for [model, presets, prompt, randomize, *controls]."""
    values = saved_values(settings)
    default = spec.size.default if isinstance(spec.size, PixelSize) else (None, None)
    preset = preset_for(spec, values.get("width", default[0]), values.get("height", default[1]))
    return [*model_updates(spec, select=True, preset=preset, mode=mode), gr.update(value=settings.get("prompt", "")),
            gr.update(value="seed" not in values), *updates_with_values(spec, names, values, mode)]


def saved_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A History entry's parameters with its seed, as control values."""
    params = dict(settings.get("params") or {})
    if isinstance(settings.get("seed"), int):
        params["seed"] = settings["seed"]
    return params


def updates_with_values(spec: ModelSpec, names: Sequence[str], values: Mapping[str, Any],
                        mode: Mode = Mode.GENERATE) -> list[dict[str, Any]]:
    """update_for each control, carrying the given values where the model takes them."""
    updates = []
    for name in names:
        change = update_for(spec, name, mode)
        if name in values and spec.param(name) is not None:
            change["value"] = values[name]
        updates.append(change)
    return updates


# --- the seed ------------------------------------------------------------------------------------------

def seed_after_run(message: str | None, seed: Any) -> list[Any]:
    """[the seed "Reuse this seed" loads, that button] once a run has ended.

    An empty message means an image was made (the endpoints' contract), with ``seed``, which the
    button then offers; after a failure both stay as they were.
    """
    if message:
        return [gr.update(), gr.update()]
    return [seed, gr.update(visible=seed is not None)]


def seed_boxes(prefix: str, make: Callable[[], gr.components.Component]) -> tuple[gr.Column, gr.Column]:
    """The seed box (``make`` builds it), hidden while Randomize seed is on, and a box saying "random" shown
    in its place: Gradio 6.31 shows an empty Number as 0, even with a placeholder (see :func:`toggle_seed`)."""
    with gr.Column(visible=False, elem_id=f"{prefix}-seed-typed") as typed:
        make()
    seed = merged_declaration("seed")
    with gr.Column(visible=True, elem_id=f"{prefix}-seed-drawn") as drawn:
        gr.Textbox("", placeholder="random", label=seed.label, interactive=False, elem_id=f"{prefix}-seed-random",
                   info="A new seed for each image, shown in its caption. Untick Randomize seed to choose one.")
    return typed, drawn


def toggle_seed(randomize: gr.Checkbox, typed: gr.Column, drawn: gr.Column) -> None:
    """Randomize seed shows the "random" box; unticked (by a person or by loaded settings), the seed box."""
    randomize.change(lambda on: (gr.update(visible=not on), gr.update(visible=on)), randomize, [typed, drawn],
                     api_visibility="private", show_progress="hidden", queue=False)


def wire_seed(randomize: gr.Checkbox, reuse: gr.Button, used_seed: gr.State, seed: gr.components.Component,
              typed: gr.Column, drawn: gr.Column) -> None:
    """The seed boxes (:func:`seed_boxes`), and "Reuse this seed", which puts the last seed used in the seed
    box and stops randomizing."""
    reuse.click(lambda s: (gr.update(value=s), gr.update(value=False)), used_seed, [seed, randomize],
                api_visibility="private")
    toggle_seed(randomize, typed, drawn)


# --- wiring --------------------------------------------------------------------------------------------

def wire_model_controls(demo: gr.Blocks, model: gr.Dropdown, presets: gr.Dropdown,
                        controls: Mapping[str, gr.components.Component],
                        mode: Mode = Mode.GENERATE) -> Callable[[Dependency], Dependency]:
    """Show, bound and reset the controls for the chosen model, keeping the shape chosen (on load, the
    model's defaults; on a person's pick, ``.input``, so History's programmatic reuse keeps the values it
    loads); a size preset fills width and height, and follows them as they are typed.

    Returns ``follow(event)``, which chains the same step after an event that sets the model
    itself (an example), and returns that step."""
    names = list(controls)
    sizes = [n for n in SIZE_NAMES if n in controls]
    outputs = [model, presets, *controls.values()]
    inputs = [model, presets, *(controls[n] for n in sizes)]
    # preprocess=False: Gradio 6.31 fires a dropdown's .input twice for one pick, and the second call's
    # preset can be the one before the first call's answer changed the choices, which Gradio would refuse.
    # The steps below read the values as sent, and give the same answer from either call's.
    private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "preprocess": False}

    def on_model(model_id: str, preset: Any, *held: Any) -> list[Any]:
        spec = MODELS[model_id]
        values = dict(zip(sizes, held, strict=True))
        chosen, carried = carried_shape(spec, preset, values.get("width"), values.get("height"),
                                        values.get("aspect_ratio"))
        return shape_updates(spec, names, chosen, carried, mode)

    def on_load(model_id: str) -> list[Any]:
        spec = MODELS[model_id]
        default = spec.size.default if isinstance(spec.size, PixelSize) else (None, None)
        return shape_updates(spec, names, preset_for(spec, *default), {}, mode)

    model.input(on_model, inputs, outputs, **private)
    demo.load(on_load, model, outputs, **private)
    if "width" in controls:
        width, height = controls["width"], controls["height"]

        def on_preset(model_id: str, shape: Any) -> list[Any]:
            size = preset_size(MODELS[model_id], shape)
            return [gr.update(value=size[0]), gr.update(value=size[1])] if size else [gr.update(), gr.update()]

        presets.input(on_preset, [model, presets], [width, height], **private)
        for side in (width, height):
            side.input(lambda m, w, h: gr.update(value=preset_for(MODELS[m], w, h)), [model, width, height], presets,
                       trigger_mode="always_last", **private)

    def follow(event: Dependency) -> Dependency:
        return event.then(on_model, inputs, outputs, **private)

    return follow
