"""Controls come from the registry: one per parameter name, with every model's bounds, the help their tab
needs, and the shape carried from one model to the next."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import gradio as gr
import pytest

from flux_ui.client.sizes import check_aspect_ratio, snap_size
from flux_ui.errors import ValidationError
from flux_ui.registry import MODELS, AspectRatioSize, Mode, PixelSize, parse_aspect_ratio
from flux_ui.ui.controls import (
    CUSTOM,
    CUSTOM_LABEL,
    RESET_LABEL,
    SIZE_PRESETS,
    all_param_names,
    carried_shape,
    make_component,
    merged_declaration,
    model_info,
    preset_choices,
    preset_for,
    preset_size,
    preset_sizes,
    tab_help,
    update_for,
)
from flux_ui.ui.handlers import collect_params
from flux_ui.ui.icons import labelled


def test_every_parameter_of_every_model_has_a_control() -> None:
    names = set(all_param_names())
    assert names == {p.name for spec in MODELS.values() for p in spec.all_params}
    assert all_param_names()[0] == "seed"


def test_a_name_means_the_same_kind_in_every_model() -> None:
    for name in all_param_names():
        kinds = {p.kind for spec in MODELS.values() if (p := spec.param(name)) is not None}
        assert len(kinds) == 1, (name, kinds)


def test_merged_bounds_cover_every_model() -> None:
    safety = merged_declaration("safety_tolerance")
    assert (safety.minimum, safety.maximum) == (0, 6)
    assert set(merged_declaration("output_format").choices) == {"jpeg", "png", "webp"}
    width = merged_declaration("width")
    assert width.minimum == 64 and width.maximum >= 2048


def test_update_for_shows_only_what_the_model_takes() -> None:
    flex, kontext = MODELS["FLUX.2-flex"], MODELS["FLUX.1-Kontext-pro"]
    assert update_for(flex, "guidance")["visible"] is True and update_for(flex, "guidance")["maximum"] == 10
    assert update_for(kontext, "guidance") == {"__type__": "update", "visible": False}
    assert update_for(kontext, "safety_tolerance")["maximum"] == 6


def test_size_presets_are_on_the_grid_and_within_limits() -> None:
    for spec in MODELS.values():
        for label, value in preset_sizes(spec):
            w, h = (int(v) for v in value.split("x"))
            assert w % spec.size.multiple == 0 and h % spec.size.multiple == 0, (spec.id, label)  # type: ignore[union-attr]
            if spec.size.max_side:  # type: ignore[union-attr]
                assert max(w, h) <= spec.size.max_side  # type: ignore[union-attr]
    assert preset_sizes(MODELS["FLUX.1-Kontext-pro"]) == []


def test_collect_params_keeps_what_the_model_takes() -> None:
    values = {"seed": 5, "guidance": 3.0, "steps": None, "aspect_ratio": "", "width": 512}
    assert collect_params("FLUX.2-flex", values) == {"seed": 5, "guidance": 3.0, "width": 512}
    assert collect_params("FLUX.2-flex", values, randomize_seed=True) == {"guidance": 3.0, "width": 512}
    assert collect_params("FLUX.1-Kontext-pro", values) == {"seed": 5}
    assert collect_params("nope", {"a": 1, "b": None}) == {"a": 1}


def test_size_note_shows_the_snap_before_sending() -> None:
    from flux_ui.ui.handlers import size_note

    assert size_note("FLUX.2-pro", 1000, 1000).startswith("Size 1000×1000 rounded down to 992×992")
    assert size_note("FLUX.2-pro", 1024, 1024) == "1024×1024, 1.05 MP."
    assert "Try 2496×1664" in size_note("FLUX.2-pro", 3000, 2000)
    assert size_note("FLUX.1-Kontext-pro", 1000, 1000) == ""  # sized by aspect ratio


def test_reuse_updates_restore_the_model_its_presets_prompt_and_seed() -> None:
    from flux_ui.ui.controls import reuse_updates

    spec = MODELS["FLUX.2-flex"]
    names = ["seed", "guidance", "aspect_ratio"]
    model, presets, prompt, randomize, seed, guidance, ratio = reuse_updates(
        spec, names, {"model": "FLUX.2-flex", "prompt": "a heron", "seed": 22, "params": {"guidance": 3.0}})
    assert model["value"] == "FLUX.2-flex" and model["info"] == spec.summary
    assert presets["visible"] is True and ("1:1  ·  1024×1024", "1:1") in presets["choices"]
    assert presets["value"] == "1:1"  # no size saved: the model's default, which is the 1:1 preset
    assert prompt["value"] == "a heron" and randomize["value"] is False
    assert seed["value"] == 22 and guidance["value"] == 3.0 and ratio == {"__type__": "update", "visible": False}
    _, _, _, randomize, *_ = reuse_updates(spec, names, {"model": "FLUX.2-flex", "prompt": "x", "params": {}})
    assert randomize["value"] is True  # no saved seed: keep randomizing


# --- the shape carried from one model to the next ---------------------------------------------------

PIXEL = [m for m, spec in MODELS.items() if isinstance(spec.size, PixelSize)]
RATIO = [m for m, spec in MODELS.items() if isinstance(spec.size, AspectRatioSize)]
PAIRS = [(a, b) for a in MODELS for b in MODELS if a != b]
#: Sizes a person might have typed: off every grid, at the largest budget, very wide, the smallest.
TYPED = [(1000, 562), (2048, 2048), (2496, 1664), (3000, 256), (64, 64), (1440, 1440)]


def assert_admitted(model: str, width: int, height: int) -> None:
    """The size is what the service makes of it: on the model's grid, within its limits (nothing to snap)."""
    assert snap_size(MODELS[model], width, height) == ((width, height), []), (model, width, height)


@pytest.mark.parametrize(("before", "after"), PAIRS)
def test_a_preset_carries_over_as_its_shape(before: str, after: str) -> None:
    """Each preset (or, from a model sized by ratio, each of its ratios) is the same shape on the next model."""
    held = ([(shape, None) for shape in SIZE_PRESETS if preset_size(MODELS[before], shape)] if before in PIXEL
            else [(None, ratio) for ratio in MODELS[before].size.presets])  # type: ignore[union-attr]
    for preset, ratio in held:
        width, height = preset_size(MODELS[before], preset) or (1, 1)
        chosen, sizes = carried_shape(MODELS[after], preset, width, height, ratio)
        shape = preset or ratio
        if after in RATIO:
            rule = MODELS[after].size
            assert chosen is None and sizes == {"aspect_ratio": rule.ratio_text(*parse_aspect_ratio(shape))}
            assert check_aspect_ratio(MODELS[after], sizes["aspect_ratio"]) == sizes["aspect_ratio"]
            continue
        assert_admitted(after, sizes["width"], sizes["height"])
        if preset_size(MODELS[after], shape):  # the next model has that preset: it shows, with its own size
            assert chosen == shape and (sizes["width"], sizes["height"]) == preset_size(MODELS[after], shape)
        else:  # a ratio no preset has (9:21): that shape, said to be custom
            assert chosen == CUSTOM and abs(sizes["width"] / sizes["height"] - ratio_of(shape)) < 0.05


@pytest.mark.parametrize(("before", "after"), [(a, b) for a, b in PAIRS if a in PIXEL])
def test_a_typed_size_carries_over_snapped_to_the_next_models_grid(before: str, after: str) -> None:
    for width, height in TYPED:
        chosen, sizes = carried_shape(MODELS[after], CUSTOM, width, height, None)
        if after in RATIO:  # the ratio of the size, in lowest terms, clamped to the model's range
            assert chosen is None
            assert sizes["aspect_ratio"] == MODELS[after].size.ratio_text(width, height)  # type: ignore[union-attr]
            assert check_aspect_ratio(MODELS[after], sizes["aspect_ratio"]) is not None
            continue
        w, h = sizes["width"], sizes["height"]
        assert_admitted(after, w, h)
        rule = MODELS[after].size
        assert isinstance(rule, PixelSize)
        if snap_fits(after, width, height):  # a size the next model takes stays that size, on its grid
            assert (w, h) == (rule.on_grid(width), rule.on_grid(height))
        assert chosen == preset_for(MODELS[after], w, h)


def snap_fits(model: str, width: int, height: int) -> bool:
    try:
        snap_size(MODELS[model], width, height)
    except ValidationError:
        return False
    return True


def ratio_of(shape: str) -> float:
    ratio = parse_aspect_ratio(shape)
    assert ratio is not None
    return ratio[0] / ratio[1]


def test_carrying_over_keeps_the_examples_the_issue_gives() -> None:
    kontext = MODELS["FLUX.1-Kontext-pro"]
    assert carried_shape(MODELS["FLUX-1.1-pro"], "16:9", 1360, 768, None) == ("16:9", {"width": 1152, "height": 640})
    assert carried_shape(kontext, "16:9", 1360, 768, None) == (None, {"aspect_ratio": "16:9"})
    assert carried_shape(kontext, CUSTOM, 1024, 576, None) == (None, {"aspect_ratio": "16:9"})
    assert carried_shape(kontext, CUSTOM, 3000, 256, None) == (None, {"aspect_ratio": "21:9"})  # clamped
    assert carried_shape(MODELS["FLUX.2-pro"], None, 1, 1, "16:9") == ("16:9", {"width": 1360, "height": 768})
    assert carried_shape(MODELS["FLUX-1.1-pro"], CUSTOM, 2048, 2048, None) == (CUSTOM, {"width": 1440,
                                                                                          "height": 1440})
    assert carried_shape(MODELS["FLUX-1.1-pro"], CUSTOM, 1000, 562, None) == (CUSTOM, {"width": 992, "height": 576})
    # nothing held (an empty ratio, broken boxes): the next model's default, which its preset names
    assert carried_shape(MODELS["FLUX-1.1-pro"], None, 1, 1, "") == ("4:3", {"width": 1024, "height": 768})
    assert carried_shape(MODELS["FLUX.2-pro"], CUSTOM, None, 0, None) == ("1:1", {"width": 1024, "height": 1024})
    assert carried_shape(kontext, None, 1, 1, "wide") == (None, {"aspect_ratio": "wide"})  # kept: the run says why


def test_a_ratio_carries_to_another_ratio_model_clamped_to_its_range() -> None:
    kontext = MODELS["FLUX.1-Kontext-pro"]
    narrower = replace(kontext, id="FLUX.1-Kontext-narrow", size=replace(kontext.size, widest=(16, 9), tallest=(9, 16)))
    assert carried_shape(narrower, None, 1, 1, "21:9") == (None, {"aspect_ratio": "16:9"})
    assert carried_shape(narrower, None, 1, 1, "9:21") == (None, {"aspect_ratio": "9:16"})
    assert carried_shape(narrower, None, 1, 1, "8:6") == (None, {"aspect_ratio": "4:3"})


def test_the_preset_names_the_size_or_says_custom() -> None:
    pro, older = MODELS["FLUX.2-pro"], MODELS["FLUX-1.1-pro"]
    assert preset_for(pro, 1024, 1024) == "1:1" and preset_for(pro, 1360, 768) == "16:9"
    assert preset_for(older, 1024, 768) == "4:3" and preset_for(older, 1024, 1024) == CUSTOM
    assert preset_for(pro, 1000, 1000) == CUSTOM and preset_for(pro, None, 1024) == CUSTOM
    assert preset_for(MODELS["FLUX.1-Kontext-pro"], 1024, 1024) is None  # no presets to name
    choices = preset_choices(pro)
    assert choices[-1] == (CUSTOM_LABEL, CUSTOM) and [v for _, v in choices[:-1]] == list(SIZE_PRESETS)


def step(demo: gr.Blocks, name: str, output_id: str) -> Any:
    """A page event of the Text to image tab, by its function's name and an output's element id."""
    return next(f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name
                and any(getattr(o, "elem_id", None) == output_id for o in f.outputs))


def test_the_preset_shows_the_shape_from_the_start(demo: gr.Blocks) -> None:
    on_load = step(demo, "on_load", "t2i-preset")
    for model, shape in (("FLUX.2-pro", "1:1"), ("FLUX-1.1-pro", "4:3"), ("FLUX.1-schnell", "1:1")):
        _, presets, *_ = on_load(model)
        assert presets["value"] == shape and presets["visible"] is True, model
        assert presets["value"] in [v for _, v in presets["choices"]]
    _, presets, *_ = on_load("FLUX.1-Kontext-pro")
    assert presets["visible"] is False and presets["value"] is None


def test_the_preset_follows_the_sizes_typed(demo: gr.Blocks) -> None:
    typed = next(f.fn for f in demo.fns.values()
                 if [getattr(o, "elem_id", None) for o in f.outputs] == ["t2i-preset"]
                 and [getattr(i, "elem_id", None) for i in f.inputs] == ["t2i-model", "param-width", "param-height"])
    assert typed("FLUX.2-pro", 1000, 1024)["value"] == CUSTOM
    assert typed("FLUX.2-pro", 1360, 768)["value"] == "16:9"
    on_preset = step(demo, "on_preset", "param-width")
    assert [u["value"] for u in on_preset("FLUX-1.1-pro", "16:9")] == [1152, 640]
    assert on_preset("FLUX-1.1-pro", CUSTOM) == [{"__type__": "update"}] * 2  # custom leaves the sizes typed


def test_switching_the_model_on_the_page_carries_the_shape(demo: gr.Blocks) -> None:
    on_model = step(demo, "on_model", "t2i-preset")
    names = [getattr(o, "elem_id", None) for o in next(f for f in demo.fns.values() if f.fn is on_model).outputs]
    updates = dict(zip(names, on_model("FLUX-1.1-pro", "16:9", 1360, 768, None), strict=True))
    assert updates["t2i-preset"]["value"] == "16:9" and updates["param-width"]["value"] == 1152
    assert updates["param-height"]["value"] == 640 and updates["param-guidance"]["visible"] is False
    updates = dict(zip(names, on_model("FLUX.1-Kontext-pro", "16:9", 1152, 640, None), strict=True))
    assert updates["param-aspect_ratio"]["value"] == "16:9" and updates["t2i-preset"]["visible"] is False
    assert updates["t2i-model"]["info"].endswith("Here it makes an image from the prompt alone.")


# --- help that fits the tab -------------------------------------------------------------------------

def test_help_on_a_prompt_only_tab_says_nothing_of_an_input_image() -> None:
    for spec in MODELS.values():
        for p in spec.all_params:
            text = tab_help(p, Mode.GENERATE)
            assert "input image" not in text and "editing" not in text and "edit" not in text, (spec.id, p.name)
            assert tab_help(p, Mode.INSTRUCTION_EDIT) == p.help
            assert update_for(spec, p.name)["info"] == text
    kontext = MODELS["FLUX.1-Kontext-pro"]
    ratio, safety = kontext.param("aspect_ratio"), kontext.param("safety_tolerance")
    assert ratio is not None and safety is not None
    assert tab_help(ratio, Mode.GENERATE).endswith("Empty makes a square image.")
    assert "Empty matches the input image" in tab_help(ratio, Mode.INSTRUCTION_EDIT)  # the Kontext tab's words
    assert tab_help(safety, Mode.GENERATE) == "Moderation strictness: 0 is strictest, 6 most permissive."
    assert model_info(kontext, Mode.INSTRUCTION_EDIT) == kontext.summary
    assert model_info(MODELS["FLUX.2-pro"]) == MODELS["FLUX.2-pro"].summary


def test_a_sliders_reset_button_is_labelled() -> None:
    slider = make_component(merged_declaration("safety_tolerance"))
    assert slider.elem_classes == labelled(RESET_LABEL)
