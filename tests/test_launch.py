"""Exposure: loopback by default, never public without a login, and the login enforced on the
page and on every API route."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from app_fixtures import running_app
from flux_ui.settings import SettingsError, load_settings
from flux_ui.ui.launch import exposure_problem, is_loopback, launch_options

REPO = Path(__file__).resolve().parents[1]
USERS = {"FLUX_UI_USERS": "alice:correct-horse-battery"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "my-laptop.local", "::"])
def test_public_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_share_or_a_public_host_needs_a_login() -> None:
    open_settings = load_settings({}, dotenv_path=None)
    assert "FLUX_UI_USERS" in (exposure_problem("127.0.0.1", True, open_settings) or "")
    assert "FLUX_UI_USERS" in (exposure_problem("0.0.0.0", False, open_settings) or "")
    assert exposure_problem("127.0.0.1", False, open_settings) is None
    guarded = load_settings(USERS, dotenv_path=None)
    assert exposure_problem("0.0.0.0", True, guarded) is None


def test_weak_login_settings_are_refused() -> None:
    with pytest.raises(SettingsError, match="shorter than 10"):
        load_settings({"FLUX_UI_USERS": "bob:short"}, dotenv_path=None)
    with pytest.raises(SettingsError, match="user:password pairs"):
        load_settings({"FLUX_UI_USERS": "justaname"}, dotenv_path=None)


def test_passwords_stay_secret_in_settings() -> None:
    settings = load_settings(USERS, dotenv_path=None)
    assert "correct-horse-battery" not in repr(settings)
    check = launch_options(settings, "127.0.0.1", 7860, False, False)["auth"]  # a coroutine: the throttled login
    assert asyncio.run(check("alice", "correct-horse-battery"))
    assert not asyncio.run(check("alice", "wrong")) and not asyncio.run(check("eve", "x"))


@pytest.mark.parametrize("args", [["--share"], ["--host", "0.0.0.0"]])
def test_app_refuses_to_start_exposed_without_login(args: list[str], tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FLUX_OUTPUT_DIR": str(tmp_path / "outputs"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "app.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "will not start" in done.stderr and "FLUX_UI_USERS" in done.stderr


def test_login_is_enforced_on_the_page_and_the_api(tmp_path: Path) -> None:
    with running_app(tmp_path, env=USERS) as app:
        page = httpx.get(app.url + "/", follow_redirects=True)
        assert "Text to image" not in page.text and "quota" not in page.text.lower()  # no app content
        for route in ("/gradio_api/info", "/config", "/gradio_api/queue/join"):
            r = httpx.get(app.url + route) if route != "/gradio_api/queue/join" else httpx.post(app.url + route,
                                                                                                   json={})
            assert r.status_code in (401, 403), (route, r.status_code)
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises its own auth error type
            Client(app.url, verbose=False)
        client = Client(app.url, auth=("alice", "correct-horse-battery"), verbose=False)
        path, _, status, _ = client.predict(model="FLUX.2-pro", prompt="a guarded fox", api_name="/generate")
        assert status == "" and Path(path).exists()
        assert any(r.get("prompt") == "a guarded fox" for r in app.emulator.requests())


# --- the login compares in constant time ------------------------------------------------------

def test_passwords_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    from flux_ui.ui import launch

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(launch.hmac, "compare_digest", spy)
    check = launch.login_check(load_settings(USERS, dotenv_path=None))
    assert check("alice", "correct-horse-battery")
    assert not check("alice", "correct-horse-batterx")
    assert not check("mallory", "correct-horse-battery")  # an unknown user costs a comparison too
    assert len(compared) == 3
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)


# --- where it listens, on a Space and off it ---------------------------------------------------

def test_default_address_is_loopback_unless_a_space_or_gradio_says_otherwise() -> None:
    from flux_ui.ui.launch import default_address

    assert default_address({}) == launch_address("127.0.0.1", 7860, False)
    assert default_address({"SPACE_ID": "me/flux-ui"}) == launch_address("0.0.0.0", 7860, True)
    assert default_address({"SPACE_ID": "me/flux-ui", "GRADIO_SERVER_NAME": "0.0.0.0",
                            "GRADIO_SERVER_PORT": "7861"}) == launch_address("0.0.0.0", 7861, True)
    assert default_address({"GRADIO_SERVER_PORT": "8000"}) == launch_address("127.0.0.1", 8000, False)


def launch_address(host: str, port: int, on_space: bool) -> object:
    from flux_ui.ui.launch import Address

    return Address(host, port, on_space)


def test_a_space_may_serve_the_emulator_without_a_login_but_never_foundry() -> None:
    emulator = load_settings({}, dotenv_path=None)
    foundry = load_settings({"AZURE_ENDPOINT": "https://r.services.ai.azure.com", "AZURE_API_KEY": "k" * 32},
                            dotenv_path=None)
    assert exposure_problem("0.0.0.0", False, emulator, on_space=True) is None
    problem = exposure_problem("0.0.0.0", False, foundry, on_space=True) or ""
    assert "FLUX_UI_USERS" in problem and "secrets" in problem
    # Off a Space the emulator is no exception: a public host still needs a login.
    assert "FLUX_UI_USERS" in (exposure_problem("0.0.0.0", False, emulator, on_space=False) or "")
    guarded = load_settings({**USERS, "AZURE_ENDPOINT": "https://r.services.ai.azure.com",
                             "AZURE_API_KEY": "k" * 32}, dotenv_path=None)
    assert exposure_problem("0.0.0.0", False, guarded, on_space=True) is None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, env: dict[str, str], args: list[str]) -> tuple[str, str]:
    """Start app.py, wait for its page and its start-up lines, and return (what it printed, the page)."""
    import threading
    import time

    port = _free_port()
    base = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLUX_OUTPUT_DIR": str(tmp_path / "outputs"),
            "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=REPO, env={**base, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    said = threading.Event()  # app.py prints where it serves just after the server answers: wait for that too

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "flux-ui serves the playground" in line:
                said.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                if page.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("app.py did not serve its page within 90 s")
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=5).text
        said.wait(30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
    printed = "".join(lines)
    return printed, page.text + config


def test_startup_says_where_it_serves_and_not_gradios_share_hint(tmp_path: Path) -> None:
    printed, page = _serve(tmp_path, {}, [])
    import re

    served = re.search(r"flux-ui serves the playground on (http://\S+) ", printed)
    assert served and served.group(1).startswith("http://127.0.0.1:"), printed
    assert "share=True" not in printed and "Running on local URL" not in printed
    assert "FLUX_UI_USERS" in printed  # how to share it, the flux-ui way
    assert "Local emulator" in page


def test_a_space_on_the_emulator_starts_public_and_says_so(tmp_path: Path) -> None:
    printed, page = _serve(tmp_path, {"SPACE_ID": "someone/flux-ui"}, [])
    assert "will not start" not in printed
    assert "Public demo on the local emulator" in page


def test_a_space_on_foundry_without_a_login_refuses_to_start(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLUX_OUTPUT_DIR": str(tmp_path / "outputs"),
           "SPACE_ID": "someone/flux-ui", "AZURE_ENDPOINT": "https://r.services.ai.azure.com",
           "AZURE_API_KEY": "space-test-key-0123456789abcdef"}
    done = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "will not start" in done.stderr and "FLUX_UI_USERS" in done.stderr and "secrets" in done.stderr
    assert "space-test-key" not in done.stderr + done.stdout
