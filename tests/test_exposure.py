"""Exposure: what a stranger who reaches the port can do. Nothing without a session, no file
outside the app's folders even with one, no upload past the limit, and no result link that
makes flux-ui fetch from anywhere but the service.

tests/test_launch.py already covers loopback detection, --share / a public host refused without
a login (also through app.py), weak logins, and the login on /config, /gradio_api/info and
/gradio_api/queue/join; tests/test_client.py covers result links on 169.254.169.254, a private
https IP, evil.example.com and plain-http blob storage. This module adds the rest; one app serves it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio.utils import is_allowed_file
from PIL import Image
from starlette.routing import Mount

import app as app_module
from app_fixtures import AppUnderTest, raw_get, running_app
from conftest import REPO, FakeService, foundry_env, solid_image
from flux_ui.client import FoundryClient, GenerationRequest
from flux_ui.errors import MalformedResponseError
from flux_ui.history import DB_NAME
from flux_ui.settings import load_settings
from flux_ui.ui.launch import exposure_problem, is_loopback, launch_options

PASSWORD = f"exposure-{secrets.token_hex(8)}"
USERS = {"FLUX_UI_USERS": f"alice:{PASSWORD}"}
SAVED_PROMPT = f"a heron only alice may see {secrets.token_hex(4)}"
#: What only a signed-in person may see: the tabs, the history, the files. (Not the model IDs: see
#: test_the_login_page_shows_only_the_login.)
APP_CONTENT = (SAVED_PROMPT, "Text to image", "Edit with references", "Quota", DB_NAME)

#: Routes Gradio 6.31 answers without a session, and why that is safe. Every other route it mounts
#: must refuse a request without one (so a route a Gradio upgrade adds is held to that by default).
OPEN_ROUTES: dict[str, str] = {
    "/": "the login page",
    "/login": "signing in", "/login/": "signing in", "/logout": "signing out",
    "/gradio_api/runs": "the login page again", "/gradio_api/runs/": "the login page again",
    "/favicon.ico": "front-end file", "/theme.css": "front-end file", "/gradio_api/theme.css": "front-end file",
    "/robots.txt": "front-end file", "/manifest.json": "front-end file", "/pwa_icon": "front-end file",
    "/pwa_icon/{size}": "front-end file", "/static/{path:path}": "Gradio's packaged files, path-checked",
    "/assets/{path:path}": "Gradio's packaged files, path-checked", "/svelte/{path:path}": "Gradio's packaged files",
    "/gradio_api/custom_component/{id}/{environment}/{type}/{file_name}": "custom components' own files (none here)",
    "/openapi.json": "FastAPI's list of Gradio's generic routes, none of the app's",
    "/gradio_api/user": "who is signed in (nobody)", "/gradio_api/user/": "who is signed in (nobody)",
    "/gradio_api/token": "the caller's own cookie", "/gradio_api/token/": "the caller's own cookie",
    "/gradio_api/app_id": "a random number", "/gradio_api/app_id/": "a random number",
    "/gradio_api/login_check": "answers 401 itself", "/gradio_api/login_check/": "answers 401 itself",
    "/gradio_api/startup-events": "runs the app's startup events (it has none) once",
    "/monitoring/{key}": "needs monitoring switched on and its secret key",
    "/gradio_api/heartbeat/{session_hash}": "keeps an unguessable session alive",
    "/gradio_api/cancel": "cancels an unguessable session's event", "/gradio_api/reset": "a no-op",
    "/gradio_api/reset/": "a no-op", "/gradio_api/stream/{event_id}": "feeds an unguessable event",
    "/gradio_api/stream/{event_id}/close": "closes an unguessable event",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8": "an unguessable session's stream",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}": "an unguessable session's stream",
    "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file": "an unguessable session's stream",
    "/gradio_api/run-history/connect": "needs a Hugging Face token", "/gradio_api/run-history/buckets": "same",
    "/gradio_api/run-history/records": "same",
    "/gradio_api/run-history/records/{endpoint}/{record_id}/assets/{asset_id}": "same",
    **{f"/gradio_api/{name}{slash}": "403 unless Gradio runs with --vibe"
       for name in ("vibe-edit", "undo-vibe-edit", "vibe-code", "vibe-starter-queries") for slash in ("", "/")},
}
#: Bodies that get the vibe routes past validation, so they answer for real.
VIBE_BODIES = {"vibe-edit": {"prompt": "rewrite the app"}, "undo-vibe-edit": {"hash": "0" * 32},
               "vibe-code": {"code": "import os"}, "vibe-starter-queries": {}}


@dataclass
class Guarded:
    app: AppUnderTest
    session: httpx.Client  # signed in as alice
    saved: Path  # an image History saved in the outputs folder, which must be served
    outside: Path  # a file beside the outputs folder, which must not


def call_with_a_session(guarded: Guarded, api_name: str, **values: Any) -> str:
    """The documented two-step call API, every input not given at its default."""
    parameters = guarded.session.get("/gradio_api/info").json()["named_endpoints"][f"/{api_name}"]["parameters"]
    data = [values.get(p["parameter_name"], p.get("parameter_default")) for p in parameters]
    posted = guarded.session.post(f"/gradio_api/call/{api_name}", json={"data": data})
    assert posted.status_code == 200, posted.text
    return guarded.session.get(f"/gradio_api/call/{api_name}/{posted.json()['event_id']}").text


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    root = tmp_path_factory.mktemp("exposure")
    outputs, outside = root / "outputs", root / "secret.env"
    outside.write_text("AZURE_API_KEY=not-for-strangers\n")
    outputs.mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(outputs / "planted.png")  # not flux-ui's: never served
    (outputs / "passwd").symlink_to("/etc/passwd")
    (outputs / "etc").symlink_to("/etc")
    (outputs / "sibling").symlink_to(outside)
    with running_app(outputs, env=USERS) as app, httpx.Client(base_url=app.url, timeout=30) as session:
        signed_in = session.post("/login", data={"username": "alice", "password": PASSWORD})
        assert signed_in.status_code == 200 and session.cookies
        guarded = Guarded(app, session, outputs, outside)
        made = call_with_a_session(guarded, "generate", prompt=SAVED_PROMPT, width=256, height=256)
        assert "event: complete" in made and app.emulator.requests()[-1]["prompt"] == SAVED_PROMPT
        guarded.saved = app.runtime.history.list()[0].path
        yield guarded


# --- binding and launch refusals ---------------------------------------------------------------------------


def test_the_default_bind_is_loopback_and_private() -> None:
    args = app_module.parse_args([])
    assert is_loopback(args.host) and not args.share and not args.mcp
    options = launch_options(load_settings({}, dotenv_path=None), args.host, args.port, args.share, args.mcp)
    assert options["server_name"] == "127.0.0.1" and options["share"] is False and "auth" not in options


def test_the_key_file_and_the_index_are_never_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with FLUX_OUTPUT_DIR=. (the outputs folder is the app's own), Gradio's file rules keep
    the .env with the key and the history index out, and still serve the images."""
    monkeypatch.chdir(tmp_path)
    options = launch_options(load_settings({"FLUX_OUTPUT_DIR": "."}, dotenv_path=None), "127.0.0.1", 7860, False,
                             False)
    rules = {"blocked_paths": options["blocked_paths"], "allowed_paths": options["allowed_paths"],
             "created_paths": []}
    for name in (".env", DB_NAME, f"{DB_NAME}-wal"):
        assert is_allowed_file(tmp_path / name, **rules) == (False, "in_blocklist"), name
    assert is_allowed_file(tmp_path / "2026-01-01" / "image.png", **rules) == (True, "allowed")


def test_mcp_with_a_login_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Gradio's MCP routes do not take the login (its tool list answers anyone): the combination is
    refused, so every route of a guarded app is behind the login."""
    guarded_settings = load_settings(USERS, dotenv_path=None)
    assert "--mcp" in (exposure_problem("127.0.0.1", False, guarded_settings, mcp=True) or "")
    assert exposure_problem("127.0.0.1", False, load_settings({}, dotenv_path=None), mcp=True) is None
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("FLUX_UI_USERS", USERS["FLUX_UI_USERS"])
    monkeypatch.setenv("FLUX_OUTPUT_DIR", str(tmp_path))
    assert app_module.main(["--mcp"]) == 2
    assert "will not start" in capsys.readouterr().err


# --- the login on every route ------------------------------------------------------------------------------


def mounted_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app answers, included routers and mounts too."""
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            yield from mounted_routes(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            yield "MOUNT", prefix + route.path
        else:
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                yield method, prefix + route.path


def ask_without_session(stranger: httpx.Client, method: str, path: str) -> tuple[int, bytes]:
    """One request with placeholder path parameters and no cookie; only the first bytes of a stream."""
    name = path.removeprefix("/gradio_api/").strip("/")
    body = VIBE_BODIES.get(name, {}) if method in ("POST", "PUT", "PATCH", "DELETE") else None
    with stranger.stream("GET" if method == "MOUNT" else method, re.sub(r"\{[^}]+\}", "x", path),
                         json=body) as response:
        return response.status_code, next(response.iter_bytes(), b"")[:100_000]


def test_every_route_refuses_a_stranger(guarded: Guarded) -> None:
    app = guarded.app
    routes = sorted(set(mounted_routes(app.demo.app.routes)))
    assert len(routes) > 60 and ("POST", "/gradio_api/upload") in routes  # the walk found Gradio's routes
    before = len(app.emulator.requests())
    let_in, showed = [], []
    with httpx.Client(base_url=app.url, timeout=30) as stranger:
        answers = {(method, path): ask_without_session(stranger, method, path) for method, path in routes}
    for (method, path), (status, body) in answers.items():
        if path not in OPEN_ROUTES and status not in (401, 403):
            let_in.append((method, path, status))
        if any(marker.encode() in body for marker in (*APP_CONTENT, str(app.outputs))):
            showed.append((method, path, status))
        if path.removeprefix("/gradio_api/").strip("/") in VIBE_BODIES:
            assert status == 403, (method, path, status)  # refused for real, not just a malformed body
    assert let_in == [] and showed == []
    assert len(app.emulator.requests()) == before  # and nothing reached the service


def test_the_login_page_shows_only_the_login(guarded: Guarded) -> None:
    page = httpx.get(guarded.app.url + "/").text
    config = json.loads(re.search(r"window\.gradio_config = (.*?);</script>", page, re.DOTALL).group(1))
    assert config["auth_required"] is True and config["components"] == [] and config["dependencies"] == []
    # Gradio 6.31 also embeds the API description here (endpoint and parameter names, the deployed
    # model IDs), which /gradio_api/info withholds without a session; launch.py empties it (see
    # tests/test_login_guard.py), and it never held anyone's images or prompts.
    api_info = re.search(r"window\.gradio_api_info = (.*?);</script>", page, re.DOTALL)
    assert api_info is not None and SAVED_PROMPT not in api_info.group(1)
    assert json.loads(api_info.group(1)) == {"named_endpoints": {}, "unnamed_endpoints": {}}  # no endpoint named


# --- files ---------------------------------------------------------------------------------------------------


def test_the_outputs_folder_is_served_to_a_signed_in_person(guarded: Guarded) -> None:
    """The positive control for the refusals below: the route works, for the app's own files."""
    status, body = raw_get(guarded.app, f"/gradio_api/file={guarded.saved}", guarded.session.cookies)
    assert status == 200 and body == guarded.saved.read_bytes()
    assert raw_get(guarded.app, f"/gradio_api/file={guarded.saved}")[0] == 401  # and only with a session


@pytest.mark.parametrize("target", [
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=/proc/self/environ",
    "/gradio_api/file={repo}/app.py",
    "/gradio_api/file={repo}/.env",
    "/gradio_api/file={repo}/.env.example",
    "/gradio_api/file=app.py",  # relative to the working directory
    "/gradio_api/file=~/.bashrc",
    "/gradio_api/file=//etc/passwd",
    "/gradio_api/file=file:///etc/passwd",
    "/gradio_api/file={outside}",
    "/gradio_api/file={outputs}/../{outside_name}",
    "/gradio_api/file={outputs}/etc/../../{outside_name}",
    "/gradio_api/file={outputs}/%2e%2e/{outside_name}",
    "/gradio_api/file={outputs}/..%2f{outside_name}",
    "/gradio_api/file={outputs}%2f..%2f{outside_name}",
    "/gradio_api/file={outputs}/%252e%252e/{outside_name}",
    "/gradio_api/file/{outputs}/../{outside_name}",  # the deprecated spelling
    "/gradio_api/file={outputs}/passwd",  # symlinks in the outputs folder pointing out of it
    "/gradio_api/file={outputs}/etc/passwd",
    "/gradio_api/file={outputs}/sibling",
    "/gradio_api/file={outputs}/history.sqlite3",  # inside, but the index is never served whole
    "/gradio_api/file={outputs}/history.sqlite3-wal",
    "/gradio_api/file={outputs}/planted.png",  # inside, but not a file flux-ui wrote (tests/test_edge.py has more)
    "/gradio_api/file=http://169.254.169.254/latest/meta-data/",  # Gradio fetching for the caller
    "/gradio_api/file=http://127.0.0.1:1/",
    "/gradio_api/proxy=http://169.254.169.254/latest/meta-data/",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/assets/..%2f..%2f..%2f..%2fetc/passwd",
])
def test_files_outside_the_apps_folders_are_not_served(guarded: Guarded, target: str) -> None:
    target = target.format(repo=REPO, outputs=guarded.app.outputs, outside=guarded.outside,
                           outside_name=guarded.outside.name)
    status, body = raw_get(guarded.app, target, guarded.session.cookies)
    assert status in (400, 403, 404), (status, body[:200])
    assert b"root:" not in body and b"not-for-strangers" not in body and b"SQLite format" not in body


def file_data(path: str | Path) -> dict[str, Any]:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def test_file_inputs_take_uploads(guarded: Guarded) -> None:
    """The positive control for the refusals below: the same call with an uploaded file goes through."""
    reference = solid_image(size=(64, 48))
    uploaded = guarded.session.post("/gradio_api/upload", files={"files": ("ref.png", reference)}).json()
    edited = call_with_a_session(guarded, "edit", prompt="image 1 on a table", references=[file_data(uploaded[0])],
                                 width=256, height=256)
    assert "event: complete" in edited and guarded.app.emulator.requests()[-1]["prompt"] == "image 1 on a table"


@pytest.mark.parametrize("path", ["/etc/passwd", "{outside}"])
def test_file_inputs_cannot_name_files_outside_the_uploads(guarded: Guarded, path: str) -> None:
    """An API caller cannot hand the edit and Kontext tabs a server-side path instead of an upload."""
    file = file_data(path.format(outside=guarded.outside))
    before = len(guarded.app.emulator.requests())
    edited = call_with_a_session(guarded, "edit", prompt="image 1 on a table", references=[file])
    kontext = call_with_a_session(guarded, "kontext", prompt="make it night", image=file)
    for answer in (edited, kontext):
        assert "event: error" in answer and "root:" not in answer and "not-for-strangers" not in answer
    assert len(guarded.app.emulator.requests()) == before


# --- uploads ---------------------------------------------------------------------------------------------------


def test_uploads_over_the_limit_are_refused(guarded: Guarded) -> None:
    limit = guarded.app.demo.max_file_size
    assert limit == 50 * 1024 * 1024  # launch.MAX_UPLOAD, as Gradio parsed it
    small = guarded.session.post("/gradio_api/upload", files={"files": ("small.png", solid_image(size=(64, 48)))})
    assert small.status_code == 200  # the session may upload, so the refusal below is the size's
    try:
        big = guarded.session.post("/gradio_api/upload", files={"files": ("big.png", b"\0" * (limit + 1))})
    except httpx.TransportError:  # the server may close the connection before reading it all
        pytest.fail("an upload over the limit should be answered with 413, not a dropped connection")
    assert big.status_code == 413 and "maximum allowed size" in big.text


# --- result links ----------------------------------------------------------------------------------------------

EMULATOR = "http://127.0.0.1:8123"  # a configured emulator (never contacted: the transport is mocked)


async def _no_wait(_: float) -> None:
    return None


def client_for(fake: FakeService, emulator: bool) -> FoundryClient:
    settings = load_settings(foundry_env(), dotenv_path=None)
    if emulator:
        settings = load_settings({}, dotenv_path=None).with_emulator(EMULATOR, "emulator-key-5c1d2e3f")
    return FoundryClient(settings, transport=fake.transport, sleep=_no_wait, deadline_s=30)


def answer_with(url: str, flow: str) -> list[httpx.Response]:
    if flow == "polling":
        return [httpx.Response(200, json={"id": "t1", "polling_url": url})]
    return [httpx.Response(200, json={"data": [{"url": url}]})]


FOREIGN = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.1/r.png",
    "http://127.0.0.1:8124/r.png",  # loopback, but not the emulator's port
    "http://localhost:8123/r.png",  # the emulator's port under another name
    "https://127.0.0.1:8123/r.png",  # and under another scheme
    "http://[::1]:8123/r.png",
    "https://[::ffff:169.254.169.254]/r.png",
    "https://evil.example/r.png",
    "https://azure.com.evil.example/r.png",  # look-alikes of the service's hosts
    "https://x.blob.core.windows.net.evil.example/r.png",
    "https://evilazure.com/r.png",
    "https://x.blob.core.windows.net@evil.example/r.png",
    "ftp://x.blob.core.windows.net/r.png",
    "//evil.example/r.png",
    "/r.png",
]


@pytest.mark.parametrize("flow", ["url", "polling"])
@pytest.mark.parametrize("emulator", [False, True], ids=["foundry", "emulator"])
@pytest.mark.parametrize("url", FOREIGN)
async def test_result_links_off_the_service_are_never_fetched(url: str, emulator: bool, flow: str) -> None:
    fake = FakeService(queue=answer_with(url, flow))
    async with client_for(fake, emulator) as client:
        with pytest.raises(MalformedResponseError, match="flux-ui did not fetch it") as refused:
            await client.generate(GenerationRequest("FLUX.2-pro", "a fox", [], {}))
    assert [r.method for r in fake.requests] == ["POST"]  # no request went to the link, none was retried
    assert "not one of its own hosts" in str(refused.value)


@pytest.mark.parametrize("flow", ["url", "polling"])
async def test_the_configured_emulators_own_links_are_fetched(flow: str) -> None:
    image = solid_image(size=(64, 48))
    ready = httpx.Response(200, json={"status": "Ready", "result": {"sample": f"{EMULATOR}/d/r.png", "seed": 1}})
    fake = FakeService(queue=[*answer_with(f"{EMULATOR}/{'v1/get_result?id=t1' if flow == 'polling' else 'd/r.png'}",
                                           flow), *([ready] if flow == "polling" else []),
                              httpx.Response(200, content=image)])
    async with client_for(fake, emulator=True) as client:
        result = await client.generate(GenerationRequest("FLUX.2-pro", "a fox", [], {}))
    assert result.image == image and all(str(r.url).startswith(EMULATOR) for r in fake.requests)
