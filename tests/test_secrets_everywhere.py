"""Canary drill: a distinctive key is configured, every tab, error path and API endpoint is driven
with every logger at DEBUG, and then every HTTP response (bodies and headers), all log and console
output, the history database and every image file (bytes and metadata) are searched for the key in
any encoding. It must appear nowhere.

tests/test_secrets.py checks the client and the redaction helpers on their own; this is the whole
app, as gradio_client, raw HTTP (the page included) and MCP meet it, plus the Entra sign-in path.
One app serves the module.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import logging
import secrets
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app_fixtures import AppUnderTest, call_mcp_tool, running_app
from conftest import solid_files
from flux_ui.emulator import Emulator, EmulatorConfig, Fault
from flux_ui.emulator.auth import make_entra_token
from flux_ui.errors import FluxError
from flux_ui.history import DB_NAME
from flux_ui.images import read_metadata
from flux_ui.runtime import start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import handlers

# '+', '/' and '=' make the URL-encoded and JSON-escaped forms differ from the plain one.
CANARY = f"cnry+{secrets.token_hex(12)}/{secrets.token_hex(4)}="
KONTEXT = "FLUX.1-Kontext-pro"
LOGGERS = ("", "flux_ui", "httpx", "httpcore", "gradio", "gradio_client", "uvicorn", "uvicorn.error",
           "uvicorn.access", "uvicorn.asgi", "fastapi", "starlette", "mcp", "asyncio")
SMALL = {"width": 256, "height": 256}  # quick to render; sizes play no part in where a key could go


@functools.cache
def leak_forms(secret: str) -> dict[str, bytes]:
    """Every byte pattern the secret would show up as: plain, URL-quoted, JSON-escaped, UTF-16, and
    base64 (standard and URL-safe) at each of the three alignments it can have inside a longer text."""
    raw = secret.encode()
    forms = {"plain": raw, "url": quote(secret, safe="").encode(), "url-form": quote_plus(secret).encode(),
             "json-escaped": secret.replace("/", "\\/").encode(), "utf-16-le": secret.encode("utf-16-le"),
             "utf-16-be": secret.encode("utf-16-be")}
    for shift in range(3):
        first = -(-shift * 8 // 6)  # the first character made only of the secret's bits
        last = (shift + len(raw)) * 8 // 6  # after the last one
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name}@{shift}"] = encode(b"\0" * shift + raw)[first:last]
    return forms


def leaks_in(blob: bytes | str, secret: str = CANARY) -> list[str]:
    data = blob.encode("utf-8", "surrogatepass") if isinstance(blob, str) else blob
    return [name for name, pattern in leak_forms(secret).items() if pattern in data]


# --- collecting the evidence ------------------------------------------------------------------------------


@dataclass
class RecordedResponse:
    method: str
    path: str
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)


class ResponseRecorder:
    """ASGI wrapper around the app's whole middleware stack: keeps every response as it leaves.

    It drops ``Accept-Encoding`` from requests so bodies leave uncompressed and can be searched.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.responses: list[RecordedResponse] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]}
        record = RecordedResponse(scope["method"], scope["path"])
        self.responses.append(record)

        async def recording_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status, record.headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                record.body += message.get("body", b"")
            elif message["type"] == "http.response.pathsend":
                record.body += Path(message["path"]).read_bytes()
            await send(message)

        await self.app(scope, receive, recording_send)


def response_leaks(response: RecordedResponse) -> list[str]:
    """Where in one response the key shows, and in which form: ["headers:plain", "body:base64@1", ...]."""
    headers = b"\n".join(name + b": " + value for name, value in response.headers)
    return [f"headers:{form}" for form in leaks_in(headers)] + [f"body:{form}" for form in leaks_in(bytes(
        response.body))]


def record_responses(app: AppUnderTest) -> ResponseRecorder:
    """Wrap the running app's built middleware stack (Gradio builds the app inside launch, so a
    middleware cannot be added before it serves; Starlette calls whatever stack it holds)."""
    server = app.demo.app
    recorder = ResponseRecorder(server.middleware_stack or server.build_middleware_stack())
    server.middleware_stack = recorder
    return recorder


@contextmanager
def every_logger_at_debug() -> Iterator[list[str]]:
    """Every logger at DEBUG, and every record kept as it is made: before any handler, filter or
    non-propagating logger (uvicorn's) could drop or change it. Levels are restored afterwards."""
    lines: list[str] = []
    make_record = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def keeping_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the message: keep both raw
            message = f"{record.msg!r} {record.args!r}"
        trace = formatter.formatException(record.exc_info) if record.exc_info else ""
        lines.append(f"{record.levelname} {record.name}: {message}\n{trace}{record.stack_info or ''}".rstrip())
        return record

    loggers = [logging.getLogger(name) for name in (*LOGGERS, *list(logging.root.manager.loggerDict))]
    levels = {logger: logger.level for logger in loggers}
    for logger in levels:
        logger.setLevel(logging.DEBUG)
    logging.setLogRecordFactory(keeping_factory)
    try:
        yield lines
    finally:
        logging.setLogRecordFactory(make_record)
        for logger, level in levels.items():
            logger.setLevel(level)


@dataclass
class Output:
    """Everything the process said meanwhile: log records, the console, warnings."""

    log_lines: list[str] = field(default_factory=list)
    console: str = ""
    warnings: list[str] = field(default_factory=list)


@contextmanager
def all_output() -> Iterator[Output]:
    output = Output()
    console = io.StringIO()
    with (every_logger_at_debug() as logs, redirect_stdout(console), redirect_stderr(console),
          warnings.catch_warnings(record=True) as caught):
        warnings.simplefilter("always")
        try:
            yield output
        finally:
            output.log_lines += logs
            output.console += console.getvalue()
            output.warnings += [str(w.message) for w in caught]


@dataclass
class Drill:
    responses: list[RecordedResponse]
    output: Output  # from the launch and the drive
    stored: dict[str, bytes]  # outputs folder: database, WAL, images
    metadata: dict[str, str]  # each image's embedded settings and PIL-decoded text chunks / EXIF
    emulator_log: list[dict[str, Any]]
    answers: dict[str, Any]


def call_raw(http: httpx.Client, base: str, api_name: str, data: list[Any]) -> str:
    """The documented two-step call API: POST the inputs, then read the answer's SSE stream."""
    posted = http.post(f"{base}/gradio_api/call/{api_name}", json={"data": data})
    posted.raise_for_status()
    return http.get(f"{base}/gradio_api/call/{api_name}/{posted.json()['event_id']}").text


def with_fault(app: AppUnderTest, fault: Fault, call: Any) -> Any:
    app.emulator.set_faults("*", [fault])
    try:
        return call()
    finally:
        app.emulator.set_faults("*", [])


def drive_everything(app: AppUnderTest, client: Client, http: httpx.Client, refs: list[str]) -> dict[str, Any]:
    """Every tab's endpoint, every error path a user can meet, and every page and schema route."""
    emu = app.emulator

    def generate(model: str = "FLUX.2-pro", prompt: str = "a canary in a coal mine", **params: Any) -> Any:
        return client.predict(model=model, prompt=prompt, **{**SMALL, **params}, api_name="/generate")

    answers: dict[str, Any] = {
        "generate": generate(),
        "schnell": generate("FLUX.1-schnell", "a quick canary"),
        "edit": client.predict(model="FLUX.2-flex", prompt="image 1 beside image 2", **SMALL,
                               references=[handle_file(p) for p in refs], api_name="/edit"),
        "kontext": client.predict(model=KONTEXT, prompt="make it night", image=handle_file(refs[0]),
                                  output_format="jpeg", api_name="/kontext"),
        "compare": client.predict(prompt="two canaries", models=["FLUX.2-pro", "FLUX-1.1-pro"], aspect_ratio="9:21",
                                  api_name="/compare"),
    }
    # the key on polls and result downloads too
    emu.configure(bfl_style="polling", polling_pending_polls=0, image_api_result="url")
    answers["polling"] = generate(prompt="a polled canary")
    answers["kontext-url"] = client.predict(model=KONTEXT, prompt="make it dawn", image=handle_file(refs[1]),
                                            route="images/edits", output_format="jpeg", api_name="/kontext")
    emu.configure(bfl_style="sync", image_api_result="b64_json")
    answers["invalid"] = generate("FLUX.2-flex", "x", guidance=42)
    answers["refused"] = generate(prompt="a canary, refuse-me")
    echo = f"upstream echoed Authorization: Bearer {CANARY}"  # a service or proxy repeating the header
    answers["400-echo"] = with_fault(app, Fault("status", status=400, count=1, message=echo), generate)
    answers["500"] = with_fault(app, Fault("status", status=500, count=1), generate)
    answers["429"] = with_fault(app, Fault("status", status=429, retry_after_s=9999, count=1), generate)
    answers["malformed"] = with_fault(app, Fault("malformed", count=1), generate)
    emu.rotate_key()
    try:
        answers["401"] = generate(prompt="after the key was rotated")
    finally:
        emu.rotate_key(CANARY)
    answers["history"] = client.predict(limit=3, api_name="/history")
    for path in ("/", "/config", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/mcp/schema",
                 "/theme.css", "/manifest.json", "/gradio_api/app_id", "/gradio_api/user"):
        http.get(app.url + path)
    for entry in answers["history"][0]:  # the saved files, as the page fetches them
        http.get(f"{app.url}/gradio_api/file={app.outputs / entry['file']}")
    raw = ["FLUX.2-pro", "a raw canary", True, None, 256, 256, None, 2, "png", 4.5, 50, True, 4, 0.0, "", 1, False]
    answers["raw-generate"] = call_raw(http, app.url, "generate", raw)
    mcp_args = {"model": "FLUX.2-pro", "prompt": "an mcp canary", "width": 256, "height": 256}
    answers["mcp-generate"] = call_mcp_tool(http, app.url, "generate", mcp_args)
    answers["mcp-history"] = call_mcp_tool(http, app.url, "history", {"limit": 2})
    return answers


def image_texts(data: bytes) -> str:
    """What an image says about itself: flux-ui's label, PNG text chunks and EXIF, decoded."""
    parts = [json.dumps(read_metadata(data))]
    try:
        with Image.open(io.BytesIO(data)) as img:
            parts += [repr(img.info), repr(dict(img.getexif()))]
    except OSError:
        parts.append("(not an image)")
    return "\n".join(parts)


@dataclass
class CanaryApp:
    app: AppUnderTest
    recorder: ResponseRecorder
    launch_output: Output


@pytest.fixture(scope="module")
def canary_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CanaryApp]:
    """The app on an emulator whose key is the canary, with MCP on; its launch output is kept."""
    with ExitStack() as stack:
        with all_output() as launch_output:
            app = stack.enter_context(running_app(tmp_path_factory.mktemp("outputs"), mcp=True,
                                                  emulator=EmulatorConfig(api_key=CANARY, rng_seed=5)))
        yield CanaryApp(app, record_responses(app), launch_output)


@pytest.fixture(scope="module")
def drill(canary_app: CanaryApp, tmp_path_factory: pytest.TempPathFactory) -> Drill:
    app = canary_app.app
    refs = solid_files(tmp_path_factory.mktemp("refs"), [(200, 40, 40), (40, 40, 200)])
    with all_output() as output, httpx.Client(timeout=60) as http:
        client = Client(app.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))
        answers = drive_everything(app, client, http, refs)
        # read while the app runs: closing the database folds its WAL back in
        stored = {str(p.relative_to(app.outputs)): p.read_bytes() for p in app.outputs.rglob("*") if p.is_file()}
    launched = canary_app.launch_output
    output = Output(launched.log_lines + output.log_lines, launched.console + output.console,
                    launched.warnings + output.warnings)
    metadata = {name: image_texts(data) for name, data in stored.items() if not name.startswith(DB_NAME)}
    return Drill(list(canary_app.recorder.responses), output, stored, metadata, app.emulator.requests(), answers)


# --- the tests ---------------------------------------------------------------------------------------------


def test_the_search_finds_every_form_of_the_key() -> None:
    """The 'nowhere' tests below mean something only if the search would have found a leak."""
    for shift, prefix in enumerate((b"", b"x", b"xy")):
        wrapped = prefix + f"Authorization: Bearer {CANARY}".encode()
        assert f"base64@{(shift + 22) % 3}" in leaks_in(base64.b64encode(wrapped))
        assert f"base64url@{(shift + 22) % 3}" in leaks_in(base64.urlsafe_b64encode(wrapped + b"\n"))
    assert leaks_in(f"Bearer {CANARY}") == ["plain"]
    assert "url" in leaks_in(f"?key={quote(CANARY, safe='')}") and "json-escaped" in leaks_in(json.dumps(
        CANARY).replace("/", "\\/"))
    assert "utf-16-le" in leaks_in(CANARY.encode("utf-16-le")) and leaks_in("nothing to see") == []


def test_the_drill_sent_the_key_and_reached_every_path(drill: Drill) -> None:
    """The key really went out, and every endpoint and error path was played, so the searches below
    looked where a leak would be."""
    auth_kinds = {e["auth"] for e in drill.emulator_log}
    assert {"bearer-key", "bad"} <= auth_kinds  # the canary authenticated; the rotated-away key was refused
    statuses = [e["status"] for e in drill.emulator_log]
    assert {400, 401, 429, 500} <= set(statuses)
    assert {e["route"] for e in drill.emulator_log} >= {"bfl", "aml", "images/edits", "poll"}
    answers = drill.answers
    for ok in ("generate", "schnell", "edit", "polling", "500", "malformed"):
        assert answers[ok][2] == "" and Path(answers[ok][0]).is_file(), (ok, answers[ok])
    assert Path(answers["kontext"][0]).is_file() and Path(answers["kontext-url"][0]).is_file()
    assert all(r["error"] is None for r in answers["compare"][1]["results"])
    assert "Guidance" in answers["invalid"][2] and "refused" in answers["refused"][2]
    assert "upstream echoed Authorization: Bearer ***" in answers["400-echo"][2]  # shown, redacted
    assert "quota" in answers["429"][2].lower() and "key" in answers["401"][2].lower()
    assert "event: complete" in answers["raw-generate"] and '"isError":false' in answers["mcp-history"]
    assert '"isError":false' in answers["mcp-generate"]
    paths = {r.path for r in drill.responses}
    assert {"/", "/config", "/gradio_api/info", "/gradio_api/openapi.json", "/gradio_api/mcp/schema",
            "/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/call/generate"} <= paths
    assert any(p.startswith("/gradio_api/file=") for p in paths) and any(p.startswith("/gradio_api/mcp") for p in paths)


def test_no_http_response_carries_the_key(drill: Drill) -> None:
    leaks = [(f"{r.method} {r.path} → {r.status}", response_leaks(r)) for r in drill.responses if response_leaks(r)]
    assert sum(len(r.body) for r in drill.responses) > 100_000  # images, pages and streams were all searched
    assert leaks == []


def test_no_log_or_console_output_carries_the_key(drill: Drill) -> None:
    output = drill.output
    assert any(line.startswith("DEBUG httpcore") for line in output.log_lines)  # DEBUG really was on
    assert any("retrying FLUX.2-pro" in line for line in output.log_lines)
    assert any("using the local emulator" in line for line in output.log_lines)  # the launch was captured
    leaks = [(i, line) for i, line in enumerate(output.log_lines) if leaks_in(line)]
    leaks += [("console", form) for form in leaks_in(output.console)]
    leaks += [("warning", w) for w in output.warnings if leaks_in(w)]
    assert leaks == []


def test_history_database_and_image_files_carry_no_key(drill: Drill) -> None:
    images = [name for name in drill.metadata if Path(name).suffix in (".png", ".jpg", ".jpeg", ".webp")
              and not name.startswith("inputs/")]  # stored inputs are the uploads as sent: searched, not labelled
    assert len(images) >= 10 and DB_NAME in drill.stored and f"{DB_NAME}-wal" in drill.stored
    assert all('"generator": "flux-ui"' in drill.metadata[name] for name in images)  # labels were read
    leaks = [(name, form) for name, data in drill.stored.items() for form in leaks_in(data)]
    leaks += [(name, form) for name, text in drill.metadata.items() for form in leaks_in(text)]
    assert leaks == []


class TokenCanaries:
    """A sign-in that hands out JWT-shaped tokens: the first already expired at the service (as a
    token revoked mid-session would be), the next ones fresh."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def get_token(self, *scopes: str, **_: object) -> SimpleNamespace:
        token = make_entra_token(expires_in=-60 if not self.issued else 3600)
        token = token.rsplit(".", 1)[0] + "." + secrets.token_urlsafe(24)  # a unique signature part
        self.issued.append(token)
        return SimpleNamespace(token=token, expires_on=9e9)


async def test_entra_tokens_never_leak(tmp_path: Path) -> None:
    """The Entra path: a token refreshed after a 401, a refusal, and what is saved carry no token."""
    credential = TokenCanaries()
    with Emulator(EmulatorConfig(rng_seed=5, enforce_quotas=False)) as emu, every_logger_at_debug() as logs:
        settings = load_settings({"AZURE_ENDPOINT": emu.base_url, "AZURE_AUTH": "entra", "FLUX_OUTPUT_DIR": str(
            tmp_path), "FLUX_DEPLOYMENTS": "FLUX.2-pro:1000/1s"}, dotenv_path=None)
        runtime = start_runtime(settings, credential=credential)
        try:
            made = await handlers.generate(runtime, "FLUX.2-pro", "an entra canary", {"seed": 3})
            with pytest.raises(FluxError) as refused:
                await handlers.generate(runtime, "FLUX.2-pro", "refuse-me please", {})
        finally:
            await runtime.aclose()
    assert [e["auth"] for e in emu.requests()] == ["bad", "entra", "entra"]  # expired, refreshed, reused
    assert len(credential.issued) == 2
    texts = [*logs, str(refused.value), repr(refused.value), repr(made.result), json.dumps(made.entry.settings)]
    stored = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(stored) >= 2 and read_metadata(made.entry.path.read_bytes())
    for token in credential.issued:
        assert [t for t in texts if leaks_in(t, token)] == []
        assert [b for b in stored if leaks_in(b, token)] == []


async def test_the_content_safety_key_never_leaks(tmp_path: Path) -> None:
    """The Content Safety key, a canary of its own, through verdicts, a blocked prompt, a quarantined result,
    a 500 whose body echoes the key, a timeout and a wrong key: not in any message, log line, file or log entry."""
    from flux_ui.emulator.content_safety import KEY_HEADER, safety_fault
    from flux_ui.emulator.render import RenderRequest, render
    from flux_ui.safety import SafetyGuard

    cs_key = f"cs+{secrets.token_hex(12)}/{secrets.token_hex(4)}="
    marked = render(RenderRequest("FLUX.2-pro", "FLUX.2 [pro]", "safety-marker", 1, 256, 256, "png", (), True))
    texts: list[str] = []
    with Emulator(EmulatorConfig(content_safety_key=cs_key, rng_seed=5)) as emu, every_logger_at_debug() as logs:
        env = {"CONTENT_SAFETY_ENDPOINT": emu.base_url, "CONTENT_SAFETY_KEY": cs_key, "FLUX_EMULATOR": "on",
               "FLUX_OUTPUT_DIR": str(tmp_path)}
        settings = load_settings(env, dotenv_path=None)
        guard = SafetyGuard.from_settings(settings, public=True, timeout_s=0.5)
        assert guard is not None
        texts += [repr(settings), repr(settings.safety), repr(guard), repr(guard.client)]
        echo = f"upstream echoed {KEY_HEADER}: {cs_key}"
        steps = [("clean", lambda: guard.screen_prompt("a canary")),
                 ("blocked", lambda: guard.screen_prompt("a safety-violence canary")),
                 ("quarantined", lambda: guard.screen_image(marked, {"prompt": "safety-marker"})),
                 ("echo", lambda: guard.screen_prompt("x"), safety_fault("status", status=500, message=echo)),
                 ("unchecked", lambda: guard.screen_image(marked), safety_fault("status", status=500, message=echo)),
                 ("timeout", lambda: guard.screen_prompt("x"), safety_fault("latency", seconds=0.8, count=1))]
        outcomes: dict[str, str] = {}
        for name, call, *fault in steps:
            emu.set_faults("content-safety", fault)
            try:
                texts.append(repr(await call()))
                outcomes[name] = "passed"
            except FluxError as err:
                texts += [str(err), repr(err), repr(err.args)]
                logging.getLogger("flux_ui.test").exception("content safety step %s failed: %s", name, err)
                outcomes[name] = type(err).__name__
        await guard.aclose()
        wrong = SafetyGuard.from_settings(load_settings({**env, "CONTENT_SAFETY_KEY": f"{cs_key}-old"},
                                                        dotenv_path=None), public=True)
        assert wrong is not None
        with pytest.raises(FluxError) as refused:
            await wrong.screen_prompt("a canary")
        texts.append(str(refused.value))
        await wrong.aclose()
        log = emu.requests()
    assert outcomes == {"clean": "passed", "blocked": "SafetyBlockedError", "quarantined": "SafetyBlockedError",
                        "echo": "SafetyStatusError", "unchecked": "SafetyStatusError", "timeout": "SafetyTimeoutError"}
    assert any("upstream echoed Ocp-Apim-Subscription-Key: ***" in t for t in texts)  # shown, redacted
    assert {e["auth"] for e in log} == {"subscription-key", "bad"}  # the key went out, and a wrong one was refused
    stored = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert len([n for n in stored if n.endswith(".json")]) == 2  # the blocked result and the unchecked one
    leaks = [t for t in [*texts, *logs, json.dumps(log)] if leaks_in(t, cs_key)]
    leaks += [name for name, data in stored.items() if leaks_in(data, cs_key)]
    assert leaks == []


def test_the_content_safety_key_stays_out_of_the_wired_app(tmp_path: Path) -> None:
    """What wiring content safety in added: the banner (the page), the start-up lines, a refused prompt, a blocked
    result and its quarantine record through the launched app, the log, and the doctor's report."""
    import asyncio

    from app import startup_lines
    from app_fixtures import raw_get
    from flux_ui.doctor import Options, diagnose, render_json, render_text

    cs_key = f"cs+{secrets.token_hex(12)}/{secrets.token_hex(4)}="
    texts: list[str] = []
    with Emulator(EmulatorConfig(content_safety_key=cs_key, rng_seed=5)) as emu, every_logger_at_debug() as logs:
        env = {"CONTENT_SAFETY_ENDPOINT": emu.base_url, "CONTENT_SAFETY_KEY": cs_key}
        with running_app(tmp_path / "outputs", env=env) as app:
            assert app.runtime.safety is not None
            pages = [raw_get(app, target)[1] for target in ("/", "/config")]
            client = Client(app.url, verbose=False)
            for prompt in ("a canary, safety-hate", "a canary, safety-marker", "a canary"):
                texts.append(json.dumps(client.predict(model="FLUX.2-pro", prompt=prompt, api_name="/generate",
                                                       **SMALL)))
            texts += startup_lines(app.runtime.settings, app.url, None, False, public=True)
            kept = [k.record.read_text() for k in app.runtime.safety.quarantine.kept()]
        report = asyncio.run(diagnose(Options(env={**env, "FLUX_OUTPUT_DIR": str(tmp_path / "outputs")},
                                              dotenv_path=None)))
        texts += [render_text(report), render_json(report)]
        log = json.dumps(emu.requests())
    assert any("flagged this prompt for Hate" in t for t in texts) and any("flagged the result" in t for t in texts)
    assert len(kept) == 1 and report.ok and any("Content safety: on" in t for t in texts)
    assert b"Content safety on" in pages[0]  # the banner, naming the endpoint's host
    assert {e["auth"] for e in json.loads(log) if e["route"].endswith(":analyze")} == {"subscription-key"}
    stored = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    leaks = [t for t in [*texts, *kept, *logs, log] if leaks_in(t, cs_key)]
    leaks += [f"page {i}" for i, page in enumerate(pages) if leaks_in(page, cs_key)]
    leaks += [name for name, data in stored.items() if leaks_in(data, cs_key)]
    assert leaks == []
