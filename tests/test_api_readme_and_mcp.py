"""The README's gradio_client example runs as written, and --mcp serves every action as a tool."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
from PIL import Image

from app_fixtures import AppUnderTest, running_app
from conftest import SAMPLES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readme_client_example_runs(app: AppUnderTest, tmp_path: Path, monkeypatch) -> None:
    code = re.search(r"### Calling it from code.*?```python\n(.*?)```", README, re.DOTALL)
    assert code, "the README lost its gradio_client example"
    source = code.group(1).replace('"http://127.0.0.1:7860/"', repr(app.url))
    # the example's file names, played by the sample photos
    for name, sample in {"cat.jpg": "chelsea.png", "sofa.jpg": "coffee.png", "street.png": "rocket.jpg"}.items():
        shutil.copy(SAMPLES / sample, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(source, "README.md", "exec"), scope)
    assert Image.open(scope["image"]).size[0] > 0 and scope["message"] == ""  # type: ignore[arg-type]
    results = scope["results"]
    assert isinstance(results, dict) and len(results["results"]) == 3
    assert all(r["error"] is None for r in results["results"])
    entries = scope["entries"]
    assert isinstance(entries, list) and entries and all(e["model"] == "FLUX.2-flex" for e in entries)
    assert "bfl" in {r["route"] for r in app.emulator.requests()}
    sent = [r for r in app.emulator.requests() if r.get("prompt", "").startswith("the cat from image 1")]
    assert sent and len(sent[0]["references"]) == 2


def test_mcp_serves_every_action(tmp_path: Path) -> None:
    with running_app(tmp_path, mcp=True) as app:
        tools = httpx.get(app.url + "/gradio_api/mcp/schema").json()
    names = {t["name"] for t in tools}
    assert {"generate", "edit", "kontext", "compare", "history"} <= names, names
    generate = next(t for t in tools if t["name"] == "generate")
    assert "prompt" in generate["inputSchema"]["properties"] and generate["description"]
