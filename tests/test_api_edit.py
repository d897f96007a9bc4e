"""The /edit endpoint through gradio_client: references as a list of files, in order."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_fixtures import AppUnderTest
from conftest import solid_files
from flux_ui.images import read_metadata

COLOURS = [(240, 20, 20), (20, 240, 20), (20, 20, 240), (240, 240, 20), (20, 240, 240)]


@pytest.fixture(scope="module")
def solid(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return solid_files(tmp_path_factory.mktemp("solid"), COLOURS, (80, 64))


@pytest.fixture(scope="module")
def client(app: AppUnderTest) -> Client:
    return Client(app.url, verbose=False)


def colour_of(mean_rgb: list[float]) -> int:
    distances = [sum(abs(a - b) for a, b in zip(mean_rgb, c, strict=True)) for c in COLOURS]
    assert min(distances) < 12, mean_rgb
    return distances.index(min(distances))


def test_edit_returns_the_saved_original_with_references_in_order(app: AppUnderTest, client: Client,
                                                                  solid: list[str]) -> None:
    order = [solid[2], solid[0], solid[1]]
    path, caption, status, seed = client.predict(
        model="FLUX.2-flex", prompt="the red square from image 2 on top of image 1",
        references=[handle_file(p) for p in order], randomize_seed=False, seed=9, width=768, height=512,
        guidance=6.0, output_format="png", api_name="/edit")
    assert status == "" and seed == 9
    img = Image.open(path)
    assert img.format == "PNG" and img.size == (768, 512)
    assert "FLUX.2 [flex]" in caption and "seed 9" in caption and "768×512" in caption
    sent = app.emulator.requests()[-1]
    assert sent["model"] == "FLUX.2-flex" and sent["status"] == 200
    assert [colour_of(r["mean_rgb"]) for r in sent["references"]] == [2, 0, 1]
    assert sent["params"]["guidance"] == 6.0 and sent["params"]["seed"] == 9
    meta = read_metadata(Path(path).read_bytes())
    assert meta and meta["model"] == "FLUX.2-flex" and meta["seed"] == 9 and meta["tab"] == "edit"
    assert len(meta["references"]) == 3
    saved = list(app.outputs.rglob("*.png"))
    assert any(Path(path).read_bytes() == s.read_bytes() for s in saved)  # the bytes shown are the bytes saved


def test_a_model_is_sent_only_the_parameters_it_takes(app: AppUnderTest, client: Client, solid: list[str]) -> None:
    path, _, status, seed = client.predict(model="FLUX.2-pro", prompt="two squares",
                                           references=[handle_file(solid[0]), handle_file(solid[1])],
                                           guidance=3.0, steps=20, api_name="/edit")
    assert status == "" and Image.open(path).format == "JPEG"
    params = app.emulator.requests()[-1]["params"]
    assert isinstance(seed, int) and params["seed"] == seed  # a randomized seed comes back, reusable
    assert "guidance" not in params and "steps" not in params
    assert len(app.emulator.requests()[-1]["references"]) == 2


def test_more_references_than_the_model_takes_are_refused_not_trimmed(app: AppUnderTest, client: Client,
                                                                        solid: list[str]) -> None:
    before = len(app.emulator.requests())
    nine = [handle_file(solid[i % len(solid)]) for i in range(9)]
    path, _, status, _ = client.predict(model="FLUX.2-pro", prompt="nine", references=nine, api_name="/edit")
    assert not isinstance(path, str)  # no image: the earlier result is left as it was
    assert ("FLUX.2 [pro] takes at most 8 reference images and there are 9 (image 9 is over the limit): nothing "
            "will be sent until you remove one or switch back to FLUX.2 [flex]") in status
    assert len(app.emulator.requests()) == before


def test_a_file_that_is_not_an_image_is_named_by_its_slot(app: AppUnderTest, client: Client, solid: list[str],
                                                          tmp_path: Path) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_bytes(b"this is a text file with a png name")
    before = len(app.emulator.requests())
    path, _, status, _ = client.predict(model="FLUX.2-flex", prompt="x", references=[handle_file(solid[0]),
                                     handle_file(str(fake))], api_name="/edit")
    assert not isinstance(path, str) and "image 2" in status and "image 1" not in status
    assert len(app.emulator.requests()) == before


def test_a_value_outside_this_models_range_is_explained(app: AppUnderTest, client: Client, solid: list[str]) -> None:
    before = len(app.emulator.requests())
    _, _, status, _ = client.predict(model="FLUX.2-flex", prompt="x", references=[handle_file(solid[0])],
                                  safety_tolerance=6, api_name="/edit")
    assert "Safety tolerance" in status and "5" in status
    assert len(app.emulator.requests()) == before


def test_no_references_is_refused_with_a_way_forward(client: Client) -> None:
    path, _, status, _ = client.predict(model="FLUX.2-flex", prompt="x", references=[], api_name="/edit")
    assert not isinstance(path, str) and "Add at least one reference image" in status and "Text to image" in status
