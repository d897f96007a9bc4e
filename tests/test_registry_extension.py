"""A model added to the registry, and nothing else, reaches every layer.

The test lays two entries over the registry for a while (``MODELS.including``): a FLUX.2 model
on the BFL route alone, with 8 references, a 1 MP budget and a tighter safety range, and a second
model on an Azure ML endpoint of its own. With no other change, the settings find its endpoint,
the client validates against its limits, the emulator serves it and enforces them, the tabs whose
mode it has offer it (and the others do not), and the README's tables list it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest

from conftest import FAST_QUOTA, solid_image
from emulator_fixtures import KEY, b64, bearer, bfl_url, decode_image, own_emulator
from flux_ui.client import GenerationRequest, validate
from flux_ui.docs import config_table, models_table
from flux_ui.emulator import EmulatorConfig
from flux_ui.errors import ValidationError
from flux_ui.hosts import emulator_endpoint_path
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS, Mode, ModelSpec, PixelSize, Route
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import SettingsError, load_settings, variables
from flux_ui.ui import build_demo
from flux_ui.ui.handlers import generate

NEW_FLUX2 = "FLUX.2-test"
NEW_ENDPOINT = "FLUX.1-schnell-eu"


def _extra_models() -> tuple[ModelSpec, ModelSpec]:
    """Two entries shaped from the built-in ones, with limits of their own."""
    pro, schnell = MODELS["FLUX.2-pro"], MODELS["FLUX.1-schnell"]
    safety = pro.param("safety_tolerance")
    assert safety is not None
    flux2 = replace(
        pro, id=NEW_FLUX2, display_name="FLUX.2 [test]", summary="A test entry: BFL route only, 8 references.",
        bfl_path="flux-2-test", max_references=8, max_input_pixels=1024 * 1024, max_output_mp=1,
        size=PixelSize(multiple=32, min_side=64, max_side=None, max_pixels=1024 * 1024, default=(768, 768),
                       snap="floor"),
        params=tuple(replace(p, maximum=3, help="0 to 3.") if p is safety else p for p in pro.params),
        rpm_tiers={"low": 7}, default_tier="low",
    )
    endpoint = replace(schnell, id=NEW_ENDPOINT, display_name="FLUX.1 [schnell] EU",
                       summary="A second Azure ML endpoint.", endpoint_env="FLUX_SCHNELL_EU",
                       size=replace(schnell.size, max_side=1024, default=(512, 512)))
    return flux2, endpoint


@pytest.fixture
def extended() -> Iterator[None]:
    with MODELS.including(*_extra_models()):
        yield


@pytest.fixture
async def runtime(extended: None, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None)
    running = start_runtime(settings, EmulatorConfig(rng_seed=3), {m: FAST_QUOTA for m in MODELS})
    yield running
    await running.aclose()


def test_the_entries_declare_what_they_do(extended: None) -> None:
    assert MODELS[NEW_FLUX2].routes == (Route.BFL,)
    assert MODELS[NEW_FLUX2].does(Mode.MULTI_REFERENCE_EDIT) and not MODELS[NEW_FLUX2].does(Mode.INSTRUCTION_EDIT)
    assert [m.id for m in MODELS.on_route(Route.AML)] == ["FLUX.1-schnell", NEW_ENDPOINT]
    assert NEW_FLUX2 in MODELS.foundry and NEW_ENDPOINT not in MODELS.foundry


def test_the_overlay_ends_with_its_block() -> None:
    before = tuple(MODELS)
    with MODELS.including(*_extra_models()):
        assert len(MODELS) == len(before) + 2 and f"`{NEW_FLUX2}`" in models_table()
    assert tuple(MODELS) == before and f"`{NEW_FLUX2}`" not in models_table()
    with pytest.raises(ValueError, match=r"already has FLUX\.2-pro"), MODELS.including(MODELS["FLUX.2-pro"]):
        pass


def test_settings_find_the_second_endpoint_and_document_it(extended: None) -> None:
    env = {"FLUX_SCHNELL_EU_ENDPOINT": "https://eu.westeurope.inference.ml.azure.com/score",
           "FLUX_SCHNELL_EU_KEY": "eu-endpoint-key-123", "FLUX_SCHNELL_EU_RPM": "12"}
    settings = load_settings(env, dotenv_path=None)
    assert list(settings.deployments) == [NEW_ENDPOINT]
    assert settings.deployments[NEW_ENDPOINT].endpoint == env["FLUX_SCHNELL_EU_ENDPOINT"]
    assert settings.deployments[NEW_ENDPOINT].quota == Quota.from_rpm(12)
    with pytest.raises(SettingsError, match="FLUX_SCHNELL_EU_KEY is not"):
        load_settings({"FLUX_SCHNELL_EU_ENDPOINT": env["FLUX_SCHNELL_EU_ENDPOINT"]}, dotenv_path=None)
    names = [row[0] for row in variables()]
    assert names.index("FLUX_SCHNELL_EU_ENDPOINT") == names.index("FLUX_SCHNELL_RPM") + 1
    assert "`FLUX_SCHNELL_EU_KEY`" in config_table()


def test_the_client_validates_against_the_new_limits(extended: None) -> None:
    rng = random.Random(1)
    refs = [solid_image()] * 9
    with pytest.raises(ValidationError, match=r"FLUX.2 \[test\] takes at most 8 reference"):
        validate(GenerationRequest(NEW_FLUX2, "a fox", references=refs), rng=rng)
    with pytest.raises(ValidationError, match=r"makes at most 1 MP\. Try 1024×1024"):
        validate(GenerationRequest(NEW_FLUX2, "a fox", params={"width": 2048, "height": 2048}), rng=rng)
    with pytest.raises(ValidationError, match="Safety tolerance must be"):
        validate(GenerationRequest(NEW_FLUX2, "a fox", params={"safety_tolerance": 4}), rng=rng)
    with pytest.raises(ValidationError, match="not served on the images/generations route"):
        validate(GenerationRequest(NEW_FLUX2, "a fox", route=Route.IMAGES_GENERATIONS), rng=rng)
    checked = validate(GenerationRequest(NEW_FLUX2, "a fox", params={"width": 1000, "height": 700}), rng=rng)
    assert checked.size == (992, 672) and "multiples of 32" in checked.adjustments[0]  # floored onto its grid
    with pytest.raises(ValidationError, match="largest side of 1024 px"):
        validate(GenerationRequest(NEW_ENDPOINT, "a fox", params={"width": 1536, "height": 512}), rng=rng)


def test_the_emulator_serves_both_with_their_limits(extended: None) -> None:
    with own_emulator() as emu, httpx.Client(timeout=30) as http:
        url = bfl_url(emu.base_url, "flux-2-test")
        ok = http.post(url, json={"model": NEW_FLUX2, "prompt": "a fox", "width": 640, "height": 480, "seed": 5},
                       headers=bearer())
        assert ok.status_code == 200, ok.text
        refs = {f"input_image{'' if i == 1 else f'_{i}'}": b64(solid_image()) for i in range(1, 10)}
        too_many = http.post(url, json={"model": NEW_FLUX2, "prompt": "a fox", **refs}, headers=bearer())
        assert too_many.status_code in (400, 422) and "at most 8 reference" in too_many.text
        too_large = http.post(url, json={"model": NEW_FLUX2, "prompt": "x", "width": 1536, "height": 1024},
                              headers=bearer())
        assert too_large.status_code == 422 and "1 MP" in too_large.text
        eu = f"{emu.base_url}{emulator_endpoint_path(NEW_ENDPOINT)}"
        image = http.post(eu, json={"inputs": "a fox", "parameters": {"width": 768, "height": 512}},
                          headers={**bearer(), "Accept": "image/png"})
        assert image.status_code == 200 and decode_image(image.content).size == (768, 512)
        wide = http.post(eu, json={"inputs": "a fox", "parameters": {"width": 1536, "height": 512}}, headers=bearer())
        assert wide.status_code == 400 and "at most 1024" in wide.text
        # The first endpoint model keeps its own, larger limit on its own path.
        first = http.post(f"{emu.base_url}/score", json={"inputs": "a fox", "parameters": {"width": 1536}},
                          headers=bearer())
        assert first.status_code == 200
        nowhere = http.post(f"{emu.base_url}{emulator_endpoint_path('FLUX.9-nothing')}", json={"inputs": "x"},
                            headers=bearer())
        assert nowhere.status_code == 404
        assert {r["model"] for r in emu.requests()} >= {NEW_FLUX2, NEW_ENDPOINT, "FLUX.1-schnell"}
        assert KEY not in repr(emu.requests())


async def test_both_generate_through_the_one_client(runtime: Runtime) -> None:
    assert {NEW_FLUX2, NEW_ENDPOINT} <= set(runtime.models)
    flux2 = await generate(runtime, NEW_FLUX2, "a red fox", {"seed": 11, "width": 640, "height": 448})
    endpoint = await generate(runtime, NEW_ENDPOINT, "a red fox", {"seed": 12})
    assert (flux2.entry.width, flux2.entry.height) == (640, 448)
    assert (endpoint.entry.width, endpoint.entry.height) == (512, 512)  # the entry's own default size
    assert {r["model"] for r in runtime.emulator.requests()} == {NEW_FLUX2, NEW_ENDPOINT}  # type: ignore[union-attr]
    assert Path(flux2.entry.path).is_file() and Path(endpoint.entry.path).is_file()


def _choices(demo: gr.Blocks, elem_id: str) -> list[str]:
    block: Any = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)
    return [value for _, value in block.choices]


async def test_every_tab_with_its_mode_offers_it(runtime: Runtime) -> None:
    demo = build_demo(runtime)
    assert {NEW_FLUX2, NEW_ENDPOINT} <= set(_choices(demo, "t2i-model"))
    assert NEW_FLUX2 in _choices(demo, "edit-model") and NEW_ENDPOINT not in _choices(demo, "edit-model")
    assert {NEW_FLUX2, NEW_ENDPOINT} <= set(_choices(demo, "compare-models"))
    assert not {NEW_FLUX2, NEW_ENDPOINT} & set(_choices(demo, "kontext-model"))
    assert {NEW_FLUX2, NEW_ENDPOINT} <= set(_choices(demo, "history-model"))


def test_the_readme_table_renders_them(extended: None) -> None:
    table = models_table()
    row = next(line for line in table.splitlines() if f"`{NEW_FLUX2}`" in line)
    assert "BFL `flux-2-test`" in row and "| 8 |" in row and "≤1 MP" in row and "low 7" in row
    endpoint_row = next(line for line in table.splitlines() if f"`{NEW_ENDPOINT}`" in line)
    assert "Azure ML endpoint" in endpoint_row and "256–1024 px" in endpoint_row
