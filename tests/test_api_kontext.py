"""The /kontext endpoint through gradio_client, as developers call it."""

from __future__ import annotations

from pathlib import Path

from gradio_client import Client, handle_file
from PIL import Image

from app_fixtures import AppUnderTest
from conftest import SAMPLES
from flux_ui.images import read_metadata
from flux_ui.registry import MODELS

KONTEXT = "FLUX.1-Kontext-pro"


def sample(name: str) -> str:
    return str(SAMPLES / name)


def test_the_endpoint_lists_real_parameter_names(app: AppUnderTest) -> None:
    info = Client(app.url, verbose=False).view_api(print_info=False, return_format="dict")
    endpoint = info["named_endpoints"]["/kontext"]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names == ["model", "prompt", "image", "route", "aspect_ratio", "randomize_seed", "seed",
                     "prompt_upsampling", "safety_tolerance", "output_format"]
    assert len(endpoint["returns"]) == 3


def test_kontext_returns_the_saved_original(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    path, caption, status = client.predict(model=KONTEXT, prompt="make the sky green", image=handle_file(sample(
        "astronaut.png")), aspect_ratio="16:9", randomize_seed=False, seed=11, output_format="jpeg",
        api_name="/kontext")
    assert status == ""  # an empty message when all went well, as from every endpoint
    img = Image.open(path)
    expected = MODELS[KONTEXT].size.size_for((16, 9))  # type: ignore[arg-type]
    assert img.format == "JPEG" and img.size == expected
    assert "seed 11" in caption and f"{expected[0]}×{expected[1]}" in caption
    meta = read_metadata(Path(path).read_bytes())
    assert meta and meta["model"] == KONTEXT and meta["seed"] == 11 and meta["tab"] == "kontext"
    assert meta["prompt"] == "make the sky green" and meta["route"] == "bfl"
    saved = list(app.outputs.rglob("*.jpg"))
    assert any(Path(path).read_bytes() == s.read_bytes() for s in saved)  # shown bytes are the saved bytes
    logged = app.emulator.requests()[-1]
    assert logged["route"] == "bfl" and logged["params"]["aspect_ratio"] == "16:9"
    assert logged["params"]["safety_tolerance"] == 2 and logged["params"]["seed"] == 11
    ref = logged["references"][0]
    assert (ref["width"], ref["height"]) == (512, 512)


def test_the_image_api_route_sends_to_images_edits(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    path, caption, status = client.predict(model=KONTEXT, prompt="paint the horse gold", route="images/edits",
                                           image=handle_file(sample("horse.png")), api_name="/kontext")
    assert path and status == ""
    assert "seed not reported" in caption  # the Image API carries no seed, and the caption says so
    assert "seed, prompt upsampling, safety tolerance did not apply" in caption  # a program reads it there
    assert Image.open(path).format == "PNG"  # Kontext's default output format
    logged = app.emulator.requests()[-1]
    assert logged["route"] == "images/edits" and logged["prompt"] == "paint the horse gold"
    assert "seed" not in logged["params"] and "safety_tolerance" not in logged["params"]
    assert len(logged["references"]) == 1


def test_problems_come_back_as_the_status(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    before = len(app.emulator.requests())
    path, _, status = client.predict(model=KONTEXT, prompt="make it night", image=None, api_name="/kontext")
    assert not isinstance(path, str) and "Input image" in status  # no file: the UI keeps its last result
    _, _, status = client.predict(model=KONTEXT, prompt="make it night", image=handle_file(sample("coffee.png")),
                                  aspect_ratio="50:1", api_name="/kontext")
    assert "outside" in status and "9:21 to 21:9" in status
    assert len(app.emulator.requests()) == before  # refused before sending
    _, _, status = client.predict(model=KONTEXT, prompt="a cup that says refuse-me",
                                  image=handle_file(sample("coffee.png")), api_name="/kontext")
    assert "refused" in status
