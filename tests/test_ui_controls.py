"""Controls come from the registry: one per parameter name, with every model's bounds."""

from __future__ import annotations

from flux_ui.registry import MODELS
from flux_ui.ui.controls import all_param_names, merged_declaration, preset_sizes, update_for
from flux_ui.ui.handlers import collect_params


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
    assert presets["visible"] is True and ("1:1  ·  1024×1024", "1024x1024") in presets["choices"]
    assert prompt["value"] == "a heron" and randomize["value"] is False
    assert seed["value"] == 22 and guidance["value"] == 3.0 and ratio == {"__type__": "update", "visible": False}
    _, _, _, randomize, *_ = reuse_updates(spec, names, {"model": "FLUX.2-flex", "prompt": "x", "params": {}})
    assert randomize["value"] is True  # no saved seed: keep randomizing
