"""Exposure: loopback by default, never public without a login, and the login enforced on the
page and on every API route."""

from __future__ import annotations

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
    check = launch_options(settings, "127.0.0.1", 7860, False, False)["auth"]
    assert check("alice", "correct-horse-battery") and not check("alice", "wrong") and not check("eve", "x")


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
