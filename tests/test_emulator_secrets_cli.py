"""The emulator never shows a key it was given, and its command line does what it prints."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import solid_image
from emulator_fixtures import b64, bearer, bfl_url
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.emulator.auth import make_entra_token

CANARY = "canary-7f3a9c1e5b2d48a6"
REPO = Path(__file__).resolve().parents[1]


def test_the_key_appears_nowhere(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    with Emulator(EmulatorConfig(api_key=CANARY, enforce_quotas=False)) as emu, httpx.Client() as http:
        body = {"model": "FLUX.2-pro", "prompt": "a heron", "width": 256, "height": 256,
                "input_image": b64(solid_image((1, 2, 3)))}
        attempts = [
            http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer(CANARY)),
            http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers={"api-key": CANARY}),
            http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers=bearer(CANARY + "x")),
            http.post(bfl_url(emu.base_url, "flux-2-pro"), json=body, headers={"api-key": CANARY[:-1]}),
            http.post(bfl_url(emu.base_url, "flux-2-pro"), json={**body, "note": f"key={CANARY}"},
                      headers=bearer(CANARY)),
            http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                      json={"model": "FLUX-1.1-pro", "prompt": "x"}, headers={"api-key": CANARY}),
            http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer(CANARY)),
            http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer("nope")),
        ]
        assert [r.status_code for r in attempts] == [200, 200, 401, 401, 200, 200, 200, 401]
        for r in attempts:
            seen.append(r.text)
            seen.extend(f"{k}: {v}" for k, v in r.headers.items())
        ctl = emu.control_headers()  # the control routes' answers are among the places checked
        log = http.get(f"{emu.base_url}/_emulator/requests", headers=ctl)
        seen += [log.text, repr(emu), repr(emu.config), str(emu.requests())]
        seen += [http.get(f"{emu.base_url}/_emulator/{what}", headers=ctl).text for what in ("quotas", "faults",
                                                                                              "config")]
        assert [e["auth"] for e in log.json()] == ["bearer-key", "api-key", "bad", "bad", "bearer-key", "api-key",
                                                   "bearer-key", "bad"]
        assert "[key removed by the emulator]" in log.json()[4]["params"]["note"]
    captured = capsys.readouterr()
    seen += [caplog.text, captured.out, captured.err]
    # Not the key, nor any long piece of it.
    for text in seen:
        assert CANARY not in text
        assert CANARY[:12] not in text


def test_entra_tokens_are_not_logged() -> None:
    token = make_entra_token()
    with Emulator(EmulatorConfig(enforce_quotas=False)) as emu, httpx.Client() as http:
        r = http.post(bfl_url(emu.base_url, "flux-2-pro"), json={"model": "FLUX.2-pro", "prompt": "x", "width": 64,
                                                                 "height": 64}, headers=bearer(token))
        assert r.status_code == 200
        text = http.get(f"{emu.base_url}/_emulator/requests", headers=emu.control_headers()).text
        assert token not in text and token.split(".")[1] not in text


# --- the command line -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_settings(proc: subprocess.Popen[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while len(settings) < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "=" in line and not line.startswith("#"):
            name, _, value = line.strip().partition("=")
            settings[name] = value
    return settings


def run_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flux_ui.emulator", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("given_key", [True, False], ids=["with-key", "generated-key"])
def test_cli_prints_settings_and_serves(given_key: bool) -> None:
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--polling"]
    if given_key:
        args += ["--api-key", "cli-test-key-000111"]
    proc = run_cli(*args)
    try:
        settings = read_settings(proc)
        assert settings["AZURE_ENDPOINT"] == f"http://127.0.0.1:{port}"
        assert settings["FLUX_SCHNELL_ENDPOINT"] == f"http://127.0.0.1:{port}/score"
        key = settings["AZURE_API_KEY"]
        assert settings["FLUX_SCHNELL_KEY"] == key
        assert (key == "cli-test-key-000111") if given_key else len(key) >= 20
        r = httpx.post(bfl_url(settings["AZURE_ENDPOINT"], "flux-2-pro"),
                       json={"model": "FLUX.2-pro", "prompt": "x", "width": 64, "height": 64}, headers=bearer(key))
        assert r.status_code == 200 and "polling_url" in r.json()
        assert httpx.get(settings["AZURE_ENDPOINT"] + "/health").text == "Ok"
    finally:
        stop(proc)
    assert proc.returncode is not None


def test_cli_refuses_a_remote_host() -> None:
    proc = run_cli("--host", "0.0.0.0", "--port", "0")
    try:
        assert proc.wait(timeout=20) == 2
        assert proc.stderr is not None and "--allow-remote" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            stop(proc)
