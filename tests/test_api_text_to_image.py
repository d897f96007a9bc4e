"""The /generate endpoint through gradio_client, as developers call it."""

from __future__ import annotations

from pathlib import Path

from gradio_client import Client
from PIL import Image

from app_fixtures import AppUnderTest
from flux_ui.emulator import Fault
from flux_ui.images import read_metadata


def test_generate_returns_the_saved_original(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    path, caption, status, seed = client.predict(model="FLUX-1.1-pro", prompt="a heron in fog", randomize_seed=False,
                                           seed=7, width=1000, height=770, output_format="png",
                                           api_name="/generate")
    assert status == "" and seed == 7
    img = Image.open(path)
    assert img.format == "PNG" and img.size == (992, 768)
    assert "seed 7" in caption and "992×768" in caption and "rounded" in caption
    saved = list(app.outputs.rglob("*.png"))
    assert any(Path(path).read_bytes() == s.read_bytes() for s in saved)  # the bytes shown are the bytes saved
    meta = read_metadata(Path(path).read_bytes())
    assert meta and meta["prompt"] == "a heron in fog" and meta["seed"] == 7 and meta["model"] == "FLUX-1.1-pro"


def test_generate_refuses_bad_input_without_sending(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    before = len(app.emulator.requests())
    _, _, status, _ = client.predict(model="FLUX.2-flex", prompt="x", guidance=42, api_name="/generate")
    assert "Guidance must be a number from 1.5 to 10" in status
    assert len(app.emulator.requests()) == before


def test_a_model_with_a_wider_range_is_not_held_to_another_models_bounds(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    path, _, status, _ = client.predict(model="FLUX.1-Kontext-pro", prompt="a bridge", safety_tolerance=6,
                                           api_name="/generate")
    assert status == "" and path
    assert app.emulator.requests()[-1]["params"]["safety_tolerance"] == 6


def test_a_random_seed_is_returned_and_reproduces_the_image(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    first, _, _, seed = client.predict(model="FLUX.2-pro", prompt="same again", api_name="/generate")
    again, _, _, seed2 = client.predict(model="FLUX.2-pro", prompt="same again", randomize_seed=False, seed=seed,
                                        api_name="/generate")
    assert isinstance(seed, int) and seed2 == seed
    assert Path(first).read_bytes() != b"" and Image.open(first).tobytes() == Image.open(again).tobytes()


def test_unknown_model_is_named(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    _, _, status, _ = client.predict(model="FLUX.3-ultra", prompt="x", api_name="/generate")
    assert "Unknown model 'FLUX.3-ultra'" in status and "FLUX.2-pro" in status


def test_the_caption_lists_what_was_sent_and_says_each_costs_unit(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    path, caption, status, seed = client.predict(model="FLUX.2-flex", prompt="a wren", randomize_seed=False, seed=12,
                                                 guidance=3.0, steps=20, api_name="/generate")
    assert status == "" and seed == 12 and Path(path).is_file()  # the same four outputs, an empty message
    assert "Sent: guidance 3 · steps 20 · prompt upsampling on" in caption
    assert "(list price)" in caption and "(unit not documented)" in caption


def test_a_failed_call_keeps_the_outputs_and_says_why_in_the_message(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    app.emulator.set_faults("FLUX.2-pro", [Fault("status", status=422, count=1)])  # never retried
    try:
        path, caption, status, seed = client.predict(model="FLUX.2-pro", prompt="a wren", api_name="/generate")
    finally:
        app.emulator.set_faults("FLUX.2-pro", [])
    assert path is None and caption is None and seed is None
    assert status.startswith("⚠️ ") and "\\" not in status  # plain text for a program, not the page's Markdown
