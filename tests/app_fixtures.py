"""The app as people and programs meet it: launched on a free port over the emulator, with
its outputs in a temporary folder; and a headless Chromium page (Debian's, via Playwright).

Its fixtures reach every test module through conftest (``pytest_plugins``); test modules import the
helpers they use: ``from app_fixtures import AppUnderTest, running_app``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
import pytest_asyncio

from conftest import FAST
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.pacing import Quota
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import build_demo, launch_queued
from flux_ui.ui.launch import launch_options

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class AppUnderTest:
    url: str
    runtime: Runtime
    demo: gr.Blocks
    outputs: Path

    @property
    def emulator(self) -> Emulator:
        assert self.runtime.emulator is not None
        return self.runtime.emulator


@contextmanager
def running_app(outputs: Path, env: dict[str, str] | None = None, emulator: EmulatorConfig | None = None,
                quotas: dict[str, Quota] | None = None, mcp: bool = False) -> Iterator[AppUnderTest]:
    """Launch flux-ui in this process the way app.py does, on a free port."""
    settings = load_settings({"FLUX_OUTPUT_DIR": str(outputs), **(env or {})}, dotenv_path=None)
    runtime = start_runtime(settings, emulator or EmulatorConfig(rng_seed=3), {**FAST, **(quotas or {})})
    demo = build_demo(runtime)
    options = launch_options(runtime.settings, "127.0.0.1", 0, False, mcp)
    options.pop("server_port")
    launch_queued(demo, prevent_thread_lock=True, quiet=True, **options)
    try:
        yield AppUnderTest(demo.local_url.rstrip("/"), runtime, demo, outputs)
    finally:
        demo.close()
        runtime.close_sync()


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A Runtime over its own emulator, for handler tests that need no web server."""
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None)
    running = start_runtime(settings, EmulatorConfig(rng_seed=3), FAST)
    yield running
    await running.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_runtime(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runtime]:
    """One Runtime over its own emulator for a whole module: handler and page-event tests share it."""
    settings = load_settings({"FLUX_OUTPUT_DIR": str(tmp_path_factory.mktemp("outputs"))}, dotenv_path=None)
    running = start_runtime(settings, EmulatorConfig(rng_seed=3), FAST)
    yield running
    await running.aclose()


@pytest.fixture(scope="module")
def demo(module_runtime: Runtime) -> gr.Blocks:
    """The page over :func:`module_runtime`, built (not launched) to call its events as the browser would."""
    return build_demo(module_runtime)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    with running_app(tmp_path_factory.mktemp("outputs")) as running:
        yield running


def raw_get(app: AppUnderTest, target: str, cookies: httpx.Cookies | None = None) -> tuple[int, bytes]:
    """GET a request target byte for byte: no client-side normalising of '..', '//' or percent-escapes."""
    url = httpx.URL(app.url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    try:
        cookie = "; ".join(f"{name}={value}" for name, value in (cookies or {}).items())
        connection.request("GET", target, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def call_mcp_tool(http: httpx.Client, base: str, name: str, arguments: dict[str, Any],
                  progress_token: str | None = None) -> str:
    """One MCP tool call over streamable HTTP, as an MCP client makes it: the raw answer (SSE).

    With ``progress_token`` the client asks for progress notifications, which Gradio answers
    through another code path (the streamed updates instead of the final result).
    """
    url = f"{base}/gradio_api/mcp/"
    opened = http.post(url, headers=MCP_HEADERS, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "canary", "version": "1"}}})
    session = {"mcp-session-id": opened.headers["mcp-session-id"]} if "mcp-session-id" in opened.headers else {}
    http.post(url, headers={**MCP_HEADERS, **session}, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    called = http.post(url, headers={**MCP_HEADERS, **session}, json={
        "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params})
    return called.text


def chromium_or_skip() -> str:
    """Debian's Chromium; missing is a failure in CI (which installs it) and a skip elsewhere."""
    if os.path.exists(CHROMIUM) and shutil.which("chromium"):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing: .ci/run installs Debian's chromium before the tests")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    path = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def screenshot(page: object, name: str) -> Path:
    """A full-page screenshot: into docs/screenshots/ (the README's) with FLUX_UI_SCREENSHOTS=1,
    otherwise into a temporary folder, so a test run leaves the checkout as it was."""
    folder = SCREENSHOTS if os.environ.get("FLUX_UI_SCREENSHOTS") else Path(tempfile.gettempdir()) / "flux-ui-shots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


#: Where an <img> paints its picture (object-fit: contain leaves bands inside its box): [x, y, w, h].
PAINTED = """img => {
  const r = img.getBoundingClientRect();
  const fit = getComputedStyle(img).objectFit;
  if (!["contain", "scale-down"].includes(fit) || !img.naturalWidth) return [r.x, r.y, r.width, r.height];
  const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
  const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
  return [r.x + (r.width - w) / 2, r.y + (r.height - h) / 2, w, h];
}"""


def overlaps(a: list[float], b: list[float]) -> bool:
    """Whether two [x, y, w, h] boxes share any pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
