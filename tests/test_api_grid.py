"""The /grid endpoint through gradio_client and MCP, as developers call it: the contact sheet, the ZIP and
the cells, and exactly the requests the grid's cells stand for."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import httpx
from gradio_client import Client
from PIL import Image

from app_fixtures import AppUnderTest, call_mcp_tool, running_app
from flux_ui.exports import Axis
from flux_ui.exports.sheet import layout_for
from flux_ui.images import read_metadata
from flux_ui.registry import MODELS

PRO, FLEX = "FLUX.2-pro", "FLUX.2-flex"
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def sent_for(app: AppUnderTest, prompt: str) -> list[dict]:
    return [r for r in app.emulator.requests() if r.get("prompt") == prompt]


def test_two_models_by_three_seeds_make_a_sheet_a_zip_and_six_requests(app: AppUnderTest) -> None:
    prompt = "a brass telescope on a rooftop"
    client = Client(app.url, verbose=False)
    sheet, archive, cells, message = client.predict(
        prompt=prompt, x_axis="model", x_values=f"{PRO}, {FLEX}", y_axis="seed", y_values="1, 2, 3",
        api_name="/grid")
    assert message == ""
    names = tuple(MODELS[m].display_name for m in (PRO, FLEX))
    expected = layout_for(Axis("Model", names), Axis("Seed", ("1", "2", "3")), None, title=prompt).size
    with Image.open(sheet) as img:
        assert img.size == expected and img.format == "PNG"
    assert read_metadata(Path(sheet).read_bytes())["cells"][0]["shown"] == [names[0], "1"]  # the grid's settings
    with zipfile.ZipFile(archive) as zf:
        listed = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
    originals = [n for n in listed if n.endswith((".jpg", ".png")) and n != "contact-sheet.png"]
    assert len(originals) == 6 and {"manifest.json", "manifest.csv"} <= set(listed)
    assert [c["outcome"] for c in manifest["cells"]] == ["ok"] * 6
    assert cells["shape"] == [2, 3, 1] and [c["outcome"] for c in cells["cells"]] == ["ok"] * 6
    assert sorted(c["file"] for c in cells["cells"]) == sorted(originals)
    assert [(c["model"], c["seed"]) for c in cells["cells"]] == [(m, s) for s in (1, 2, 3) for m in (PRO, FLEX)]
    sent = sent_for(app, prompt)
    assert len(sent) == 6  # one request per cell, no more
    assert sorted((r["model"], r["params"]["seed"]) for r in sent) == sorted(
        (m, s) for m in (PRO, FLEX) for s in (1, 2, 3))
    saved = app.runtime.history.list(text=prompt)
    assert {e.tab for e in saved} == {"text-to-image"} and {e.settings["group"]["id"] for e in saved} == {cells["id"]}


def test_a_guidance_axis_is_sent_only_to_the_model_that_takes_it(app: AppUnderTest) -> None:
    prompt = "a glass hummingbird"
    client = Client(app.url, verbose=False)
    sheet, archive, cells, message = client.predict(
        prompt=prompt, seed=9, x_axis="model", x_values=f"{PRO}, {FLEX}", y_axis="guidance", y_values="2, 5",
        api_name="/grid")
    assert message == "" and Path(sheet).is_file()
    by_place = {(c["x"], c["y"]): c for c in cells["cells"]}
    for y in (0, 1):
        pro = by_place[(0, y)]
        assert pro["outcome"] == "na" and pro["file"] is None and "takes no guidance" in pro["message"]
        assert by_place[(1, y)]["outcome"] == "ok"
    sent = sent_for(app, prompt)
    assert len(sent) == 2 and {r["model"] for r in sent} == {FLEX}
    assert sorted(r["params"]["guidance"] for r in sent) == [2, 5] and {r["params"]["seed"] for r in sent} == {9}
    with zipfile.ZipFile(archive) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".jpg")]) == 2


def test_a_large_grid_needs_confirm_and_bad_axes_send_nothing(app: AppUnderTest) -> None:
    client = Client(app.url, verbose=False)
    before = len(app.emulator.requests())
    for kwargs, expected in [
        ({"x_values": f"{PRO}, {FLEX}", "y_axis": "seed", "y_values": "1-16 (+1)"}, "confirm=True"),
        ({"x_axis": "guidance", "x_values": "2, 5", "model": PRO}, "X axis"),
        ({"x_values": "FLUX.3-ultra"}, "Unknown model 'FLUX.3-ultra'"),
        ({"x_axis": "seed", "x_values": "1", "y_axis": "seed", "y_values": "2"}, "Seed is on two axes"),
    ]:
        sheet, archive, cells, message = client.predict(prompt="never sent", api_name="/grid", **kwargs)
        assert expected in message and (sheet, archive, cells["cells"]) == (None, None, []), message
    assert len(app.emulator.requests()) == before


def test_the_readme_grid_example_runs(app: AppUnderTest) -> None:
    section = re.search(r"### Grids \(X/Y/Z plots\).*?```python\n(.*?)```", README, re.DOTALL)
    assert section, "the README lost its /grid example"
    source = section.group(1).replace('"http://127.0.0.1:7860/"', repr(app.url))
    scope: dict[str, object] = {}
    exec(compile(source, "README.md", "exec"), scope)
    assert scope["message"] == "" and Path(str(scope["sheet"])).is_file() and zipfile.is_zipfile(str(scope["archive"]))
    cells = scope["cells"]
    assert isinstance(cells, dict) and {c["outcome"] for c in cells["cells"]} <= {"ok", "na"}


def test_mcp_serves_grid_as_a_tool(tmp_path: Path) -> None:
    with running_app(tmp_path, mcp=True) as app, httpx.Client(timeout=60) as http:
        tools = {t["name"]: t for t in http.get(app.url + "/gradio_api/mcp/schema").json()}
        assert "grid" in tools and tools["grid"]["description"].startswith("Run an X/Y/Z grid")
        assert {"prompt", "x_axis", "x_values", "y_axis", "confirm"} <= set(tools["grid"]["inputSchema"]["properties"])
        raw = call_mcp_tool(http, app.url, "grid", {"prompt": "two herons by MCP", "x_axis": "seed",
                                                    "x_values": "1, 2"})
        answer = next(m for m in map(json.loads, (line.removeprefix("data: ") for line in raw.splitlines()
                                                  if line.startswith("data: "))) if m.get("id") == 3)["result"]
        text = "\n".join(c.get("text", "") for c in answer["content"])
        assert not answer.get("isError") and ".png" in text and ".zip" in text and "'__type__'" not in text
        assert len(sent_for(app, "two herons by MCP")) == 2
