"""The /compare endpoint through gradio_client, as developers call it."""

from __future__ import annotations

from pathlib import Path

from gradio_client import Client
from PIL import Image

from app_fixtures import AppUnderTest
from flux_ui.images import read_metadata


def test_compare_returns_each_models_saved_original_and_a_record(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    models = ["FLUX.2-pro", "FLUX.1-Kontext-pro", "FLUX-1.1-pro"]
    gallery, results, message = client.predict(prompt="a paper crane on a desk", models=models,
                                               aspect_ratio="16:9", randomize_seed=False, seed=1234,
                                               api_name="/compare")
    assert message == ""
    assert [item["caption"] for item in gallery] == models
    assert results["seed"] == 1234 and results["aspect_ratio"] == "16:9"
    records = results["results"]
    assert [r["model"] for r in records] == models and sorted(r["arrival"] for r in records) == [0, 1, 2]
    expected = {"FLUX.2-pro": ("JPEG", (1360, 768)), "FLUX-1.1-pro": ("JPEG", (1152, 640))}
    saved = {p.read_bytes() for p in app.outputs.rglob("*") if p.suffix in (".jpg", ".png")}
    for record in records:
        assert record["error"] is None and record["seed"] == 1234
        path = Path(gallery[record["image_index"]]["image"])
        img = Image.open(path)
        assert (img.width, img.height) == (record["width"], record["height"])
        if record["model"] in expected:
            assert (img.format, img.size) == expected[record["model"]]
        else:  # Kontext makes its own size for the ratio
            assert img.format == "PNG" and img.width > img.height
        assert path.read_bytes() in saved  # the bytes returned are the bytes saved, not re-encoded
        meta = read_metadata(path.read_bytes())
        assert meta and meta["model"] == record["model"] and meta["seed"] == 1234 and meta["tab"] == "compare"
    logged = [r for r in app.emulator.requests() if r["prompt"] == "a paper crane on a desk"]
    assert sorted(r["model"] for r in logged) == sorted(models)
    assert all(r["params"]["seed"] == 1234 for r in logged)


def test_randomize_gives_every_model_the_same_fresh_seed(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    _, results, message = client.predict(prompt="a snow owl", models=["FLUX.2-flex", "FLUX.1-schnell"],
                                         api_name="/compare")
    assert message == ""
    seeds = {r["seed"] for r in results["results"]}
    assert seeds == {results["seed"]}
    logged = [r for r in app.emulator.requests() if r["prompt"] == "a snow owl"]
    assert len(logged) == 2


def test_one_failing_model_does_not_hide_the_others(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    gallery, results, message = client.predict(prompt="a kettle", models=["FLUX.2-pro", "FLUX.1-Kontext-pro"],
                                                aspect_ratio="1:4", api_name="/compare")
    assert message == ""
    pro, kontext = results["results"]
    assert pro["error"] is None and pro["image_index"] == 0 and len(gallery) == 1
    assert kontext["image_index"] is None and "aspect ratio" in kontext["error"].lower()


def test_bad_selections_send_nothing(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    before = len(app.emulator.requests())
    for kwargs, expected in [
        ({"models": ["FLUX.2-pro"]}, "Pick 2 to 5 models"),
        ({"models": ["FLUX.2-pro", "FLUX.3-ultra"]}, "FLUX.3-ultra cannot be compared"),
        ({"models": ["FLUX.2-pro", "FLUX-1.1-pro"], "aspect_ratio": "wide"}, "width:height ratio"),
        ({"models": ["FLUX.2-pro", "FLUX-1.1-pro"], "randomize_seed": False, "seed": -3}, "whole number"),
    ]:
        gallery, results, message = client.predict(prompt="x", api_name="/compare", **kwargs)
        assert expected in message and gallery == [] and results["results"] == []
    assert len(app.emulator.requests()) == before
