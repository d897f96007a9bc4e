"""The built-in emulator is private to its app; the standalone one keeps its loopback controls.

Loopback is no boundary on a shared machine: any local user can reach the embedded emulator's
port. Its control routes hand out every prompt and can rotate the key the app relies on, so a
caller without the app's control token must get nothing from any of them, and the app must
keep working after such attempts. The routes are enumerated from the app's route table, so a
control route added later is covered without touching this file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from emulator_fixtures import bearer, bfl_url
from flux_ui.emulator import Emulator
from flux_ui.emulator.__main__ import config_from_args, parse_args
from flux_ui.emulator.auth import make_entra_token
from flux_ui.emulator.control import CONTROL_TOKEN_HEADER
from flux_ui.emulator.delivery import DELIVERY_PREFIX
from flux_ui.runtime import Runtime, start_runtime
from flux_ui.settings import load_settings
from flux_ui.ui import build_demo, handlers

REPO = Path(__file__).resolve().parents[1]
REFUSED = (401, 403, 404)
PROMPT = "a private lighthouse 5e1d"
#: Bodies that make each control route do something harmless (rotate-key gets the current key).
BODIES: dict[str, Any] = {"/_emulator/faults": {}, "/_emulator/faults/{key}": [], "/_emulator/config": {}}


def control_calls(emu: Emulator) -> Iterator[tuple[str, str, str]]:
    """(method, URL, route path) for every control route in the emulator's route table."""
    for route in emu.app.routes:
        if not isinstance(route, Route) or not route.path.startswith("/_emulator/"):
            continue
        if route.path.startswith(DELIVERY_PREFIX):
            continue  # signed result downloads: the app's client fetches them, not a control route
        for method in sorted((route.methods or set()) - {"HEAD"}):
            yield method, emu.base_url + route.path.replace("{key}", "FLUX.2-pro"), route.path


def emulator_of(runtime: Runtime) -> Emulator:
    assert runtime.emulator is not None
    return runtime.emulator


def body_for(path: str, emu: Emulator) -> Any:
    return {"key": emu.api_key} if path == "/_emulator/rotate-key" else BODIES.get(path)


def attack(emu: Emulator, headers: dict[str, str]) -> list[httpx.Response]:
    """Every control route, called as a local stranger would (rotate-key asks for a fresh key)."""
    with httpx.Client(timeout=10) as http:
        return [http.request(method, url, json=BODIES.get(path), headers=headers)
                for method, url, path in control_calls(emu)]


async def test_a_stranger_gets_nothing_from_the_embedded_emulator(runtime: Runtime) -> None:
    emu = emulator_of(runtime)
    key = emu.api_key
    await handlers.generate(runtime, "FLUX.2-pro", PROMPT, {"seed": 1})
    calls = list(control_calls(emu))
    assert {path for _, _, path in calls} >= {"/_emulator/requests", "/_emulator/rotate-key"}
    guesses = [{}, {CONTROL_TOKEN_HEADER: ""}, {CONTROL_TOKEN_HEADER: "guess"}, {CONTROL_TOKEN_HEADER: key}]
    answers = [r for headers in guesses for r in attack(emu, headers)]
    assert [(r.request.method, r.request.url.path) for r in answers if r.status_code not in REFUSED] == []
    assert not [r for r in answers if PROMPT in r.text or key in r.text]
    assert emu.api_key == key and emu.faults() == {}
    made = await handlers.generate(runtime, "FLUX.2-pro", "still working", {"seed": 2})
    assert made.entry.path.exists()
    assert [e["prompt"] for e in emu.requests() if e["route"] == "bfl"] == [PROMPT, "still working"]


async def test_with_the_secret_every_control_route_answers(runtime: Runtime) -> None:
    emu = emulator_of(runtime)
    await handlers.generate(runtime, "FLUX.2-pro", PROMPT, {"seed": 1})
    with httpx.Client(timeout=10, headers=emu.control_headers()) as http:
        log = http.get(f"{emu.base_url}/_emulator/requests")
        assert log.status_code == 200 and log.json()[-1]["prompt"] == PROMPT
        answers = {(m, path): http.request(m, url, json=body_for(path, emu)).status_code
                   for m, url, path in control_calls(emu)}
        assert {call: status for call, status in answers.items() if status not in (200, 204)} == {}
        rotated = http.post(f"{emu.base_url}/_emulator/rotate-key", json={"key": emu.api_key})
        assert rotated.status_code == 200 and "key" not in rotated.json()
    made = await handlers.generate(runtime, "FLUX.2-pro", "after the owner's calls", {"seed": 3})
    assert made.entry.path.exists()


async def test_the_embedded_key_is_random_and_forged_entra_tokens_fail(runtime: Runtime, tmp_path: Path) -> None:
    emu = emulator_of(runtime)
    other = start_runtime(load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "other")}, dotenv_path=None))
    try:
        assert emulator_of(other).api_key != emu.api_key and len(emu.api_key) >= 24
        assert emulator_of(other).control_headers() != emu.control_headers()
    finally:
        await other.aclose()
    body = {"model": "FLUX.2-pro", "prompt": "a stranger's image", "width": 64, "height": 64}
    with httpx.Client(timeout=10) as http:
        forged = http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer(make_entra_token()))
        assert forged.status_code == 401
        assert http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer("guess")).status_code == 401


async def test_the_secret_is_in_no_log_repr_or_page(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    emu = emulator_of(runtime)
    token = emu.control_headers()[CONTROL_TOKEN_HEADER]
    made = await handlers.generate(runtime, "FLUX.2-pro", "a harbour at dusk", {"seed": 4})
    refused = attack(emu, {CONTROL_TOKEN_HEADER: token[:-1]})
    body = {"model": "FLUX.2-pro", "prompt": f"quoting {token}", "width": 64, "height": 64}
    httpx.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer(emu.api_key), timeout=10)
    page = json.dumps(build_demo(runtime).get_config_file(), default=str)
    texts = [caplog.text, repr(runtime), repr(emu), repr(emu.config), repr(runtime.settings), repr(emu.state),
             json.dumps(emu.requests()), page, json.dumps(made.entry.settings, default=str),
             *(r.text for r in refused), *(f"{k}: {v}" for r in refused for k, v in r.headers.items())]
    assert [t for t in texts if token in t or token[:12] in t] == []


# --- the standalone emulator ------------------------------------------------------------------------


def read_printed(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The NAME=value lines the command prints before its 'serving' comment."""
    assert proc.stdout is not None
    printed: dict[str, str] = {}
    for line in proc.stdout:
        if line.startswith("#"):
            break
        name, _, value = line.strip().partition("=")
        printed[name] = value
    return printed


def test_the_standalone_emulator_keeps_its_loopback_controls(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    assert "answer any loopback caller" in " ".join(capsys.readouterr().out.split())  # and --help says so
    proc = subprocess.Popen([sys.executable, "-m", "flux_ui.emulator", "--port", "0", "--no-quotas"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        printed = read_printed(proc)
        base = printed["AZURE_ENDPOINT"]
        assert "EMULATOR_CONTROL_TOKEN" not in printed
        assert httpx.get(f"{base}/_emulator/requests", timeout=10).json() == []
        rotated = httpx.post(f"{base}/_emulator/rotate-key", json={"key": "dev-script-key-123"}, timeout=10)
        assert rotated.status_code == 200
        assert httpx.get(f"{base}/_emulator/config", timeout=10).status_code == 200
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_standalone_control_token_guards_its_controls() -> None:
    for argv in (["--control-token"], ["--control-token", "my-own-control-token"]):
        with Emulator(config_from_args(parse_args(["--port", "0", *argv]))) as emu, httpx.Client(timeout=10) as http:
            token = emu.config.control_token
            assert len(token) >= 20 and (argv[1:] == [] or token == argv[1])
            assert http.get(f"{emu.base_url}/_emulator/requests").status_code == 401
            rotate = http.post(f"{emu.base_url}/_emulator/rotate-key")
            assert rotate.status_code == 401 and "key" not in rotate.json()
            allowed = http.get(f"{emu.base_url}/_emulator/requests", headers={CONTROL_TOKEN_HEADER: token})
            assert allowed.status_code == 200
