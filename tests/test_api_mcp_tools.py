"""Every named endpoint as an MCP tool, called over streamable HTTP as an MCP client calls it, and
what gradio_client gets back from a call that made nothing.

Gradio serves a tool call through one of two code paths: without a progress token it waits for the
job's result, with one it follows the job's updates; both are driven. A call that makes an image
must answer with it (or a link to it) and its caption, once, billed once; a refused one must say
why, send nothing, and hold no Gradio update dicts (``{'__type__': 'update'}``) where values belong.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file

from app_fixtures import AppUnderTest, call_mcp_tool, running_app
from conftest import solid_image
from flux_ui.errors import ValidationError
from flux_ui.history import Entry
from flux_ui.ui import common

KONTEXT = "FLUX.1-Kontext-pro"
SMALL = {"width": 256, "height": 256}  # quick to render
LINK = re.compile(r"https?://[^\s'\"]+/gradio_api/file=[^\s'\",)]+")
UPDATE = "'__type__'"


def data_url(data: bytes) -> str:
    """A file as MCP clients send one inline: base64 data."""
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def mcp_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    with running_app(tmp_path_factory.mktemp("outputs"), mcp=True) as app:
        yield app


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


@dataclass
class ToolAnswer:
    is_error: bool
    texts: list[str]
    images: int  # ImageContent items
    sent: list[dict[str, Any]]  # what the emulator received during the call
    saved: list[Entry]  # what History gained during the call

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


def call_tool(app: AppUnderTest, http: httpx.Client, name: str, arguments: dict[str, Any],
              progress: bool) -> ToolAnswer:
    before, known = len(app.emulator.requests()), {e.id for e in app.runtime.history.list(limit=500)}
    raw = call_mcp_tool(http, app.url, name, arguments, "progress-1" if progress else None)
    messages = [json.loads(line.removeprefix("data: ")) for line in raw.splitlines() if line.startswith("data: ")]
    result = next(m for m in messages if m.get("id") == 3)["result"]
    content = result["content"]
    return ToolAnswer(result.get("isError", False), [c["text"] for c in content if c["type"] == "text"],
                      sum(c["type"] == "image" for c in content), app.emulator.requests()[before:],
                      [e for e in app.runtime.history.list(limit=500) if e.id not in known])


def served_files(http: httpx.Client, text: str) -> list[bytes]:
    """The bytes behind every Gradio file link in an answer."""
    return [http.get(link).content for link in dict.fromkeys(LINK.findall(text))]


def uploaded_link(app: AppUnderTest, http: httpx.Client, data: bytes) -> str:
    """A file uploaded the way Gradio's upload_file_to_gradio MCP helper does it: the link it hands the client."""
    path = http.post(f"{app.url}/gradio_api/upload", files={"files": ("sofa.png", data, "image/png")}).json()[0]
    return f"{app.url}/gradio_api/file={path}"


# --- every tool, both code paths --------------------------------------------------------------

def valid_call(name: str, app: AppUnderTest, http: httpx.Client) -> tuple[dict[str, Any], int, int]:
    """(arguments, requests the emulator must receive, images History must gain) for one tool."""
    red, blue = solid_image((200, 40, 40)), solid_image((40, 40, 200))
    if name == "generate":
        return {"model": "FLUX.2-pro", "prompt": "a fox over MCP", **SMALL}, 1, 1
    if name == "edit":  # references inline and as the link of an uploaded file
        return {"model": "FLUX.2-flex", "prompt": "image 1 beside image 2", **SMALL,
                "references": [data_url(red), uploaded_link(app, http, blue)]}, 1, 1
    if name == "kontext":
        return {"model": KONTEXT, "prompt": "make it night", "image": data_url(red), "output_format": "jpeg"}, 1, 1
    if name == "compare":
        return {"prompt": "two herons", "models": ["FLUX.2-pro", "FLUX-1.1-pro"]}, 2, 2
    return {"limit": 1}, 0, 0


@pytest.mark.parametrize("progress", [False, True], ids=["result", "progress"])
@pytest.mark.parametrize("name", ["generate", "edit", "kontext", "compare", "history"])
def test_every_tool_answers_with_its_image_and_caption(mcp_app: AppUnderTest, http: httpx.Client, name: str,
                                                       progress: bool) -> None:
    arguments, requests, images = valid_call(name, mcp_app, http)
    answer = call_tool(mcp_app, http, name, arguments, progress)
    assert not answer.is_error, answer.text
    assert len(answer.sent) == requests and len(answer.saved) == images, (answer.sent, answer.text)  # billed once
    assert UPDATE not in answer.text
    shown = served_files(http, answer.text)
    for entry in answer.saved or mcp_app.runtime.history.list(limit=1):
        assert entry.path.read_bytes() in shown, answer.text  # the saved original, linked
        if name != "history":
            assert f"seed {entry.seed}" in answer.text  # the caption
    if progress and name in ("generate", "edit", "kontext"):
        assert answer.images == 1  # the image itself, besides its link
    if name == "edit":
        assert len(answer.sent[0]["references"]) == 2  # inline data and an uploaded file's link
    if name == "kontext":
        assert "Added edit" not in answer.text  # a program's message is empty after a good edit


# --- refusals -------------------------------------------------------------------------------

REFUSED = {  # name → (arguments, what the answer must say)
    "generate": ({"model": "FLUX.2-pro", "prompt": ""}, ["The prompt is empty"]),
    "edit": ({"model": "FLUX.2-pro", "prompt": "image 1 on a sofa", "references": ["https://example.com/cat.jpg"]},
             ["image 1 is a link to https://example.com/cat.jpg", "data:image/png;base64,", "handle_file("]),
    "kontext": ({"model": KONTEXT, "prompt": "", "image": data_url(solid_image((9, 9, 9)))}, ["The prompt is empty"]),
    "compare": ({"prompt": " ", "models": ["FLUX.2-pro", "FLUX-1.1-pro"]}, ["The prompt is empty"]),
    "history": ({"model": "FLUX.3-ultra"}, ["Unknown model 'FLUX.3-ultra'"]),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_refused_call_says_why_and_sends_nothing(mcp_app: AppUnderTest, http: httpx.Client, name: str) -> None:
    arguments, says = REFUSED[name]
    answer = call_tool(mcp_app, http, name, arguments, progress=False)
    assert all(part in answer.text for part in says) and UPDATE not in answer.text, answer.text
    assert answer.is_error == (name == "history")  # /history has no message output: its refusals are errors
    assert answer.sent == [] and answer.saved == []


# --- files sent as text (Gradio's MCP server leaves strings inside lists as they are) ----------

def test_base64_data_and_gradio_file_links_are_files(tmp_path: Path) -> None:
    roots = (Path(common.get_upload_folder()).resolve(), tmp_path.resolve())
    red, blue = solid_image((200, 40, 40)), solid_image((40, 40, 200))
    kept = tmp_path / "kept.png"
    kept.write_bytes(blue)
    paths = common.received_files([data_url(red), f"http://any.host/gradio_api/file={kept}"], roots, "image", "x")
    assert [Path(p).read_bytes() for p in paths] == [red, blue]
    assert Path(paths[0]).is_relative_to(roots[0])  # decoded into Gradio's uploads


@pytest.mark.parametrize(("text", "reason"), [
    ("data:image/png,abc", "image 1 is data but not base64 data"),
    ("data:image/png;base64,not*base64", "image 1 is not valid base64 data"),
    ("http://127.0.0.1:7860/gradio_api/file=/etc/passwd", "image 1 (passwd) is not a file uploaded to this app"),
    ("ftp://example.com/cat.jpg", "image 1 must be an uploaded file, not the text"),
])
def test_other_texts_are_refused_unread(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        common.received_files([text], (tmp_path,), "image", "x")


def test_base64_data_over_the_limit_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(common, "MAX_REFERENCE_BYTES", 1_048_576)
    with pytest.raises(ValidationError, match="image 1 is 2 MB; flux-ui reads at most 1 MB per image"):
        common.received_files(["data:image/png;base64," + "A" * 2_800_000], (tmp_path,), "image", "x")


# --- gradio_client: a call that made nothing returns None, not the page's "keep" ----------------

def test_a_failed_call_returns_none_for_the_image_caption_and_seed(mcp_app: AppUnderTest, tmp_path: Path) -> None:
    client = Client(mcp_app.url, verbose=False)
    red = tmp_path / "red.png"
    red.write_bytes(solid_image((200, 40, 40)))
    before = len(mcp_app.emulator.requests())
    answers = {
        "/generate": client.predict(model="FLUX.2-pro", prompt="", api_name="/generate"),
        "/edit": client.predict(model="FLUX.2-pro", prompt="", references=[handle_file(str(red))], api_name="/edit"),
        "/kontext": client.predict(model=KONTEXT, prompt="", image=handle_file(str(red)), api_name="/kontext"),
    }
    for api, (image, caption, message, *seed) in answers.items():
        assert image is None and caption is None and seed in ([], [None]), (api, answers[api])
        assert "The prompt is empty" in message, (api, message)
    assert len(mcp_app.emulator.requests()) == before


def test_a_failed_plain_http_call_returns_null_too(mcp_app: AppUnderTest, http: httpx.Client) -> None:
    """curl and friends, on Gradio's documented two-step /call/ route, are programs too."""
    inputs = next(f for f in mcp_app.demo.fns.values() if f.api_name == "generate").inputs
    posted = http.post(f"{mcp_app.url}/gradio_api/call/generate",
                       json={"data": ["FLUX.2-pro", "", *[None] * (len(inputs) - 2)]})
    stream = http.get(f"{mcp_app.url}/gradio_api/call/generate/{posted.json()['event_id']}").text
    data = json.loads(stream.split("event: complete\ndata: ", 1)[1].splitlines()[0])
    assert data[0] is None and data[1] is None and data[3] is None and "The prompt is empty" in data[2], data


def test_the_request_is_no_parameter(mcp_app: AppUnderTest, http: httpx.Client) -> None:
    """Gradio fills the handlers' gr.Request itself: neither the API nor an MCP tool lists it."""
    endpoints = Client(mcp_app.url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    tools = {t["name"]: t for t in http.get(f"{mcp_app.url}/gradio_api/mcp/schema").json()}
    for name in ("generate", "edit", "kontext"):
        names = [p["parameter_name"] for p in endpoints[f"/{name}"]["parameters"]]
        listed = set(tools[name]["inputSchema"]["properties"])
        assert names[:2] == ["model", "prompt"] and set(names) == listed, (names, listed)
        assert not listed & {"request", "page", "trail"}
