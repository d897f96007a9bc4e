"""The /history endpoint through gradio_client: entries newest first, filters, and the files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from app_fixtures import AppUnderTest, raw_get
from conftest import SAMPLES
from flux_ui.images import read_metadata

MADE = [("FLUX.2-pro", "an orange tram at night", 101, "jpeg"),
        ("FLUX.2-flex", "an orange kite on a beach", 202, "png"),
        ("FLUX-1.1-pro", "a green tram in the rain", 303, "png")]


@pytest.fixture(scope="module")
def client(app: AppUnderTest) -> Client:
    client = Client(app.url, verbose=False)
    for model, prompt, seed, fmt in MADE:
        result = client.predict(model=model, prompt=prompt, randomize_seed=False, seed=seed, output_format=fmt,
                                api_name="/generate")
        assert Path(result[0]).is_file()  # the image (the other outputs are the text-to-image tab's business)
    return client


def test_history_lists_newest_first_with_the_files(app: AppUnderTest, client: Client) -> None:
    entries, files = client.predict(api_name="/history")
    assert [e["prompt"] for e in entries] == [p for _, p, _, _ in reversed(MADE)]
    assert len(files) == len(entries)
    for entry, file in zip(entries, files, strict=True):
        saved = app.outputs / entry["file"]
        assert Path(file).read_bytes() == saved.read_bytes()  # the original bytes, not a re-encoding
        img = Image.open(file)
        assert img.format == entry["format"].upper() and img.size == (entry["width"], entry["height"])
        meta = read_metadata(Path(file).read_bytes())
        assert meta and meta["seed"] == entry["seed"] and meta["model"] == entry["model"]
    first = entries[0]
    assert first["model"] == "FLUX-1.1-pro" and first["seed"] == 303 and first["tab"] == "text-to-image"
    assert first["settings"]["params"]["output_format"] == "png"
    assert str(app.outputs) not in json.dumps(entries)  # paths are relative to the outputs folder


def test_history_filters_by_model_and_text(client: Client) -> None:
    entries, files = client.predict(model="FLUX.2-flex", api_name="/history")
    assert [e["seed"] for e in entries] == [202] and len(files) == 1
    entries, _ = client.predict(text="tram", api_name="/history")
    assert [e["seed"] for e in entries] == [303, 101]
    entries, _ = client.predict(model="FLUX.2-pro", text="orange", api_name="/history")
    assert [e["seed"] for e in entries] == [101]
    entries, files = client.predict(text="submarine", api_name="/history")
    assert entries == [] and files == []


def test_history_limit(client: Client) -> None:
    entries, files = client.predict(limit=2, api_name="/history")
    assert [e["seed"] for e in entries] == [303, 202] and len(files) == 2


def test_history_names_an_unknown_model(client: Client) -> None:
    with pytest.raises(AppError, match=r"Unknown model 'FLUX\.3'"):
        client.predict(model="FLUX.3", api_name="/history")


def test_history_is_documented_with_real_parameter_names(client: Client) -> None:
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/history"]
    assert [p["parameter_name"] for p in info["parameters"]] == ["model", "text", "limit"]
    assert info["parameters"][2]["parameter_default"] == 50
    assert "newest first" in info["description"]


@pytest.mark.parametrize("wrong", [0, -1, 501, 100_000])
def test_history_refuses_a_limit_out_of_range_and_states_the_range(client: Client, wrong: int) -> None:
    with pytest.raises(AppError, match=rf"limit must be a whole number of entries from 1 to 500; got {wrong}\."):
        client.predict(limit=wrong, api_name="/history")


def test_history_takes_the_whole_range(app: AppUnderTest, client: Client) -> None:
    assert len(client.predict(limit=1, api_name="/history")[0]) == 1
    assert len(client.predict(limit=500, api_name="/history")[0]) == app.runtime.history.count() >= len(MADE)
    info = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/history"]
    assert "from 1 to 500" in info["description"]


def test_stored_inputs_are_served_and_nothing_else_beside_them(app: AppUnderTest, client: Client) -> None:
    """The page shows an entry's input images from the outputs folder: the file gate serves those (flux-ui
    wrote them and the index lists them) and still refuses any other file put there."""
    from gradio_client import handle_file

    client.predict(model="FLUX.2-pro", prompt="the cat", references=[handle_file(SAMPLES / "chelsea.png")],
                   randomize_seed=False, seed=9, api_name="/edit")
    entry = app.runtime.history.list(limit=1)[0]
    assert len(entry.inputs) == 1
    status, body = raw_get(app, f"/gradio_api/file={entry.inputs[0]}")
    assert status == 200 and body == (SAMPLES / "chelsea.png").read_bytes()
    stray = entry.inputs[0].with_name("f" * 64 + ".png")  # a file nobody indexed, beside the stored one
    stray.write_bytes(body)
    try:
        assert raw_get(app, f"/gradio_api/file={stray}")[0] in (403, 404)
    finally:
        stray.unlink()
