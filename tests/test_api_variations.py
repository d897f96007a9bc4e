"""Variations through gradio_client: ``count`` on /generate and /edit (the first image back, every one sent and
saved), /generate_variations and /edit_variations for all of them, and the old calls unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_fixtures import AppUnderTest, call_mcp_tool, running_app
from conftest import solid_image

SMALL = {"width": 256, "height": 256}


@pytest.fixture(scope="module")
def client(app: AppUnderTest) -> Client:
    return Client(app.url, verbose=False, ssl_verify=False)


def logged(app: AppUnderTest, prompt: str) -> list[dict]:
    return [r for r in app.emulator.requests() if r.get("prompt") == prompt]


def test_count_3_sends_seeds_s_s1_s2_and_returns_the_first(app: AppUnderTest, client: Client) -> None:
    prompt = "three lighthouses, one seed apart"
    image, caption, message, seed = client.predict(model="FLUX.2-pro", prompt=prompt, randomize_seed=False, seed=900,
                                                   count=3, consecutive_seeds=True, **SMALL, api_name="/generate")
    assert message == "" and seed == 900 and "seed 900" in caption
    sent = logged(app, prompt)
    assert len(sent) == 3 and sorted(r["params"]["seed"] for r in sent) == [900, 901, 902]
    assert all(r["status"] == 200 for r in sent)
    saved = app.runtime.history.list(text=prompt)
    assert len(saved) == 3 and len({e.settings["group"]["id"] for e in saved}) == 1
    first = next(e for e in saved if e.seed == 900)
    assert Path(image).read_bytes() == first.path.read_bytes()  # the first image, as saved


def test_generate_variations_returns_every_image(app: AppUnderTest, client: Client) -> None:
    prompt = "four kites over a beach"
    images, results, message = client.predict(model="FLUX.2-flex", prompt=prompt, randomize_seed=False, seed=70,
                                               consecutive_seeds=True, **SMALL, api_name="/generate_variations")
    assert message == "" and results["seeds"] == [70, 71, 72, 73]  # count defaults to 4 here
    assert len(images) == 4 and [r["image_index"] for r in results["results"]] == [0, 1, 2, 3]
    for item, record in zip(images, results["results"], strict=True):
        assert item["caption"].startswith(f"seed {record['seed']}")
        assert Image.open(item["image"]).size == (256, 256)
    saved = {e.id: e for e in app.runtime.history.list(text=prompt)}
    assert {r["history_id"] for r in results["results"]} == set(saved)
    assert {e.settings["group"]["id"] for e in saved.values()} == {results["group"]}
    assert sorted(r["params"]["seed"] for r in logged(app, prompt)) == [70, 71, 72, 73]


def test_edit_takes_count_and_edit_variations_returns_all(app: AppUnderTest, client: Client, tmp_path: Path) -> None:
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    red.write_bytes(solid_image((200, 40, 40)))
    blue.write_bytes(solid_image((40, 40, 200)))
    refs = [handle_file(str(red)), handle_file(str(blue))]
    prompt = "image 1 and image 2 side by side"
    image, _, message, seed = client.predict(model="FLUX.2-pro", prompt=prompt, references=refs, count=2,
                                             randomize_seed=False, seed=12, **SMALL, api_name="/edit")
    assert message == "" and seed == 12 and Path(image).is_file()
    sent = logged(app, prompt)
    assert len(sent) == 2 and sent[0]["params"]["seed"] != sent[1]["params"]["seed"]  # the first keeps 12
    assert 12 in {r["params"]["seed"] for r in sent} and all(len(r["references"]) == 2 for r in sent)
    images, results, message = client.predict(model="FLUX.2-flex", prompt=prompt + " again", references=refs,
                                              count=3, **SMALL, api_name="/edit_variations")
    assert message == "" and len(images) == 3 and len(set(results["seeds"])) == 3
    assert all(e.tab == "edit" for e in app.runtime.history.list(text=prompt + " again"))


def test_a_bad_count_is_refused_with_nothing_sent(app: AppUnderTest, client: Client) -> None:
    before = len(app.emulator.requests())
    for count, words in ((9, "Images per run (count) is 1 to 8; got 9"), (0, "got 0"), (2.5, "whole number")):
        image, caption, message, seed = client.predict(model="FLUX.2-pro", prompt="x", count=count,
                                                       api_name="/generate")
        assert image is None and caption is None and seed is None and words in message, message
        images, results, message = client.predict(model="FLUX.2-pro", prompt="x", count=count,
                                                  api_name="/generate_variations")
        assert images == [] and results == {"results": []} and words in message
    assert len(app.emulator.requests()) == before


def test_old_calls_are_unchanged_and_the_new_parameters_are_listed(app: AppUnderTest, client: Client) -> None:
    image, caption, message, seed = client.predict(model="FLUX.2-pro", prompt="one, as before", api_name="/generate")
    assert message == "" and isinstance(seed, int) and Path(image).is_file() and "seed" in caption
    assert len(logged(app, "one, as before")) == 1
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, default in (("/generate", 1), ("/edit", 1), ("/generate_variations", 4), ("/edit_variations", 4)):
        params = {p["parameter_name"]: p for p in info[name]["parameters"]}
        assert params["count"]["parameter_default"] == default, name
        assert params["consecutive_seeds"]["parameter_default"] is False, name
        assert "page" not in params and "request" not in params
    assert len(info["/generate"]["returns"]) == 4 and len(info["/edit"]["returns"]) == 4  # as before
    assert len(info["/generate_variations"]["returns"]) == 3


@pytest.fixture(scope="module")
def mcp_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    with running_app(tmp_path_factory.mktemp("outputs"), mcp=True) as running:
        yield running


def test_mcp_serves_generate_variations_as_a_tool(mcp_app: AppUnderTest) -> None:
    with httpx.Client(timeout=60) as http:
        tools = {t["name"]: t for t in http.get(f"{mcp_app.url}/gradio_api/mcp/schema").json()}
        assert {"generate_variations", "edit_variations"} <= set(tools)
        assert {"count", "consecutive_seeds"} <= set(tools["generate"]["inputSchema"]["properties"])
        answer = call_mcp_tool(http, mcp_app.url, "generate_variations",
                               {"model": "FLUX.2-pro", "prompt": "two moons over MCP", "count": 2,
                                "randomize_seed": False, "seed": 5, "consecutive_seeds": True, **SMALL})
    assert "seed 5" in answer and "seed 6" in answer, answer[:2000]
    assert sorted(r["params"]["seed"] for r in mcp_app.emulator.requests()) == [5, 6]
