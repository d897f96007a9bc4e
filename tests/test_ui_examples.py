"""The examples without a browser: real models and photos, only deployed models, nothing sent or cached."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import pytest
from gradio.helpers import Examples

from conftest import FAST, foundry_env
from flux_ui.assets import EXAMPLES, example_photo
from flux_ui.emulator import EmulatorConfig
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import build_demo, examples
from flux_ui.ui.compare_run import MAX_MODELS, MIN_MODELS
from flux_ui.ui.controls import SIZE_PRESETS

ENDPOINTS = {"/generate", "/edit", "/kontext", "/compare", "/history", "/grid", "/generate_variations",
             "/edit_variations"}
TABLES = ("t2i-examples", "edit-examples", "kontext-examples", "compare-examples")


@contextmanager
def app_with(tmp_path: Path, deployments: str | None = None) -> Iterator[tuple[Runtime, gr.Blocks]]:
    """The whole app built (not launched): over the emulator, or over Foundry with only these deployments."""
    if deployments is None:
        settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None)
    else:  # the emulator deploys every model; a Foundry configuration lists its own (nothing is sent here)
        settings = load_settings(foundry_env(FLUX_DEPLOYMENTS=deployments, FLUX_SCHNELL_ENDPOINT="",
                                             FLUX_SCHNELL_KEY="", FLUX_SCHNELL_RPM="",
                                             FLUX_OUTPUT_DIR=str(tmp_path / "outputs")), dotenv_path=None)
    runtime = start_runtime(settings, EmulatorConfig(rng_seed=3), FAST)
    try:
        yield runtime, build_demo(runtime)
    finally:
        runtime.close_sync()


def tables(demo: gr.Blocks) -> dict[str, gr.Dataset]:
    return {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Dataset) and b.elem_id in TABLES}


# --- the data ---------------------------------------------------------------------------------

def test_every_example_names_a_real_model_and_real_photos() -> None:
    for e in examples.PROMPTS:
        spec = MODELS[e.model]
        assert e.shape is None or examples.shape_size(e.model, e.shape), (e.model, e.shape)
        for name, value in e.params.items():
            p = spec.param(name)
            assert p is not None and p.minimum <= value <= p.maximum, (e.model, name, value)
    for e in examples.EDITS:
        assert MODELS[e.model].max_references >= max(2, len(e.photos)), e
        assert all(example_photo(name).is_file() for name in e.photos)
    for e in examples.KONTEXT:
        assert MODELS[e.model].max_references == 1 and example_photo(e.photo).is_file()
    for e in examples.COMPARISONS:
        assert all(m in MODELS for m in e.models) and MIN_MODELS <= len(set(e.models)) <= MAX_MODELS
        assert e.shape in SIZE_PRESETS
    assert all(Path(p).parent == EXAMPLES for p in examples.photo_paths(["chelsea.png", "rocket.jpg"]))
    with pytest.raises(FileNotFoundError):
        examples.photo_paths(["no-such-photo.png"])


def test_each_model_is_shown_off_on_its_tab() -> None:
    assert {e.model for e in examples.PROMPTS} == {"FLUX.2-flex", "FLUX.2-pro", "FLUX-1.1-pro", "FLUX.1-schnell"}
    assert {e.model for e in examples.EDITS} == {"FLUX.2-pro", "FLUX.2-flex"}
    assert 2 <= len(examples.EDITS) <= 3 and all(2 <= len(e.photos) <= 3 for e in examples.EDITS)
    assert any("wizard hat" in e.prompt and e.photo == "chelsea.png" for e in examples.KONTEXT)


def test_prompts_naming_image_n_have_at_least_n_photos_and_name_each_one() -> None:
    assert examples.image_numbers("put the cat from image 2 on the sofa in Image 1") == [2, 1]
    for e in examples.EDITS:
        named = examples.image_numbers(e.prompt)
        assert named and max(named) <= len(e.photos), e
        assert set(named) == set(range(1, len(e.photos) + 1)), e  # no photo goes unmentioned


def test_an_example_sets_its_size_preset_and_parameters_after_the_model_reset() -> None:
    sign = next(e for e in examples.PROMPTS if e.model == "FLUX.2-flex")
    names = ["seed", "width", "height", "guidance", "steps"]
    preset, seed, width, height, guidance, steps = examples.extra_updates(sign, names)
    assert preset["value"] == "3:2" and (width["value"], height["value"]) == (1248, 832)  # the preset is its shape
    assert guidance["value"] == 5.0 and "value" not in seed and "value" not in steps
    plain = next(e for e in examples.PROMPTS if e.model == "FLUX-1.1-pro")
    assert all("value" not in u for u in examples.extra_updates(plain, names))
    assert examples.clicked((3, ["a", "b"])) == 3 and examples.clicked(2) == 2 and examples.clicked(None) == 0


# --- what each configuration offers -----------------------------------------------------------

def test_examples_for_undeployed_models_are_left_out() -> None:
    assert [e.model for e in examples.prompt_examples(("FLUX.2-pro",))] == ["FLUX.2-pro", "FLUX.2-pro"]
    assert {e.model for e in examples.edit_examples(("FLUX.2-flex", "FLUX-1.1-pro"))} == {"FLUX.2-flex"}
    assert examples.kontext_examples(("FLUX.2-pro",)) == []
    pair = examples.compare_examples(("FLUX.2-pro", "FLUX-1.1-pro"), MIN_MODELS)
    assert pair and all(set(e.models) == {"FLUX.2-pro", "FLUX-1.1-pro"} for e in pair)
    assert examples.compare_examples(("FLUX.2-pro",), MIN_MODELS) == []


def test_a_configuration_with_one_model_shows_only_its_examples(tmp_path: Path) -> None:
    with app_with(tmp_path, "FLUX.2-pro:1000/1s") as (runtime, demo):
        assert runtime.models == ("FLUX.2-pro",)
        shown = tables(demo)
        assert set(shown) == {"t2i-examples", "edit-examples"}  # no Kontext model; one model is no comparison
        assert {row[1] for row in shown["t2i-examples"].raw_samples} == {"FLUX.2-pro"}
        assert {row[1] for row in shown["edit-examples"].raw_samples} == {"FLUX.2-pro"}


def test_every_tab_has_its_examples_over_the_emulator(tmp_path: Path) -> None:
    with app_with(tmp_path) as (_, demo):
        shown = tables(demo)
        assert set(shown) == set(TABLES)
        assert len(shown["t2i-examples"].raw_samples) == len(examples.PROMPTS)
        photos = shown["edit-examples"].raw_samples[1][2]
        assert [Path(p).name for p in photos] == list(examples.EDITS[1].photos)  # in order, as image 1…N


# --- nothing sent, cached or listed -----------------------------------------------------------

async def test_a_click_runs_only_gradios_form_filler_and_no_endpoint_is_added(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_CACHE_EXAMPLES", "true")  # what Spaces set: must not turn caching on here
    monkeypatch.setenv("GRADIO_CACHE_MODE", "lazy")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an example was cached")

    monkeypatch.setattr(Examples, "cache", refuse)
    monkeypatch.setattr(Examples, "load_from_cache", refuse)
    with app_with(tmp_path) as (runtime, demo):
        for startup in demo.extra_startup_events:  # what launch runs: caching would start here
            await startup()
        ids = {d._id for d in tables(demo).values()}
        clicks = [f for f in demo.fns.values() if any(t[0] in ids for t in f.targets)]
        assert len(clicks) == len(TABLES)
        assert all(f.fn.__name__ == "load_example" and f.api_visibility == "private" and not f.queue
                   for f in clicks)  # Gradio's loader, not its cached one; no function of ours
        assert not any(getattr(f.fn, "__name__", "") in {"load_example_output", "load_example_input"}
                       for f in demo.fns.values())
        assert set(demo.get_api_info()["named_endpoints"]) == ENDPOINTS
        public = {f.api_name for f in demo.fns.values() if f.api_visibility != "private"}
        assert public == {e.strip("/") for e in ENDPOINTS}
        assert runtime.emulator is not None and runtime.emulator.requests() == []
