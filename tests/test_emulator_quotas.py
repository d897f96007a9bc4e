"""Quotas: the emulator's 429s agree with the client's pacing arithmetic (flux_ui.pacing)."""

from __future__ import annotations

import re

import httpx
import pytest

from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import bearer, bfl_url, fake_quota_clock, start_emulator
from flux_ui.emulator import Emulator
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS

PRO = {"model": "FLUX.2-pro", "prompt": "a small boat", "width": 256, "height": 256}


def send(http: httpx.Client, emu: Emulator, body: dict[str, object] | None = None,
         path: str = "flux-2-pro") -> httpx.Response:
    return http.post(bfl_url(emu.base_url, path), json=body or PRO, headers=bearer())


def test_fourth_request_in_the_window_is_429_then_succeeds_after_it(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.2-pro": Quota(3, 1.0)})
    clock = fake_quota_clock(emu)  # the window passes when the test says so, not in real time
    try:
        for _ in range(3):
            r = send(http, emu)
            assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        limited = send(http, emu)
        assert limited.status_code == 429
        error = limited.json()["error"]
        assert error["code"] == "429"
        m = re.search(r"Please retry after (\d+) seconds", error["message"])
        assert m and int(m.group(1)) == 1
        assert limited.headers["Retry-After"] == "1"
        assert limited.headers["retry-after-ms"] == "1000"  # the whole window: no time has passed
        assert limited.headers["x-ratelimit-remaining-requests"] == "0"
        assert emu.requests()[-1]["status"] == 429
        # Three more refusals half-way through the window: had 429s taken slots, these would
        # still fill the window when the first three have left it.
        clock.advance(0.5)
        halfway = [send(http, emu) for _ in range(3)]
        assert [r.status_code for r in halfway] == [429, 429, 429]
        assert {r.headers["retry-after-ms"] for r in halfway} == {"500"}  # the slot frees when the first three leave
        clock.advance(0.55)
        assert send(http, emu).status_code == 200
    finally:
        emu.stop()


def test_429_without_retry_after_when_switched_off(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.2-pro": Quota(1, 30.0)}, retry_after_header=False)
    fake_quota_clock(emu)
    try:
        assert send(http, emu).status_code == 200
        limited = send(http, emu)
        assert limited.status_code == 429
        for header in ("Retry-After", "retry-after-ms", "x-ratelimit-remaining-requests"):
            assert header not in limited.headers
        # The message still says how long to wait, as the service's does.
        assert "Please retry after 30 seconds" in limited.json()["error"]["message"]
    finally:
        emu.stop()


def test_default_quotas_come_from_the_registry(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True)
    try:
        expected = Quota.from_rpm(MODELS["FLUX.2-flex"].default_rpm or 0)
        status = emu.quota_status()
        assert status["FLUX.2-flex"]["quota"]["requests"] == expected.requests
        assert status["FLUX.2-flex"]["quota"]["window_s"] == pytest.approx(expected.window_s)
        assert status["FLUX.1-schnell"]["quota"] is None
        flex = {**PRO, "model": "FLUX.2-flex"}
        for _ in range(expected.requests):
            assert send(http, emu, flex, "flux-2-flex").status_code == 200
        limited = send(http, emu, flex, "flux-2-flex")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) == pytest.approx(expected.window_s, abs=1)
        after = emu.quota_status()["FLUX.2-flex"]
        assert after["available"] == 0 and after["next_slot_in_s"] > 0
    finally:
        emu.stop()


def test_validation_errors_do_not_consume(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.2-pro": Quota(1, 60.0)})
    try:
        assert send(http, emu, {**PRO, "width": 8}).status_code == 422
        assert send(http, emu, {**PRO, "prompt": ""}).status_code == 422
        assert send(http, emu).status_code == 200
        assert send(http, emu).status_code == 429
    finally:
        emu.stop()


def test_refusals_consume(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.2-pro": Quota(1, 60.0)})
    try:
        assert send(http, emu, {**PRO, "prompt": "refuse-me"}).status_code == 400
        assert send(http, emu).status_code == 429
    finally:
        emu.stop()


def test_quota_by_model_id_covers_each_deployment_separately(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, deployments={"alt-pro": "FLUX.2-pro"},
                         quotas={"FLUX.2-pro": Quota(1, 60.0), "alt-pro": Quota(2, 60.0)})
    try:
        assert send(http, emu).status_code == 200
        assert send(http, emu).status_code == 429
        alt = {**PRO, "model": "alt-pro"}
        assert [send(http, emu, alt).status_code for _ in range(3)] == [200, 200, 429]
    finally:
        emu.stop()


def test_quota_is_shared_between_routes(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.1-Kontext-pro": Quota(1, 60.0)})
    try:
        body = {"model": "FLUX.1-Kontext-pro", "prompt": "x", "aspect_ratio": "1:1"}
        assert send(http, emu, body, "flux-kontext-pro").status_code == 200
        r = http.post(f"{emu.base_url}/openai/deployments/FLUX.1-Kontext-pro/images/generations?api-version=preview",
                      json={"prompt": "x"}, headers=bearer())
        assert r.status_code == 429
        assert "Please retry after" in r.json()["error"]["message"]
    finally:
        emu.stop()


def test_reset_empties_the_windows(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.2-pro": Quota(1, 60.0)})
    try:
        assert send(http, emu).status_code == 200
        assert send(http, emu).status_code == 429
        emu.clear()
        assert send(http, emu).status_code == 200
    finally:
        emu.stop()


def test_schnell_has_no_quota_unless_configured(http: httpx.Client) -> None:
    emu = start_emulator(enforce_quotas=True, quotas={"FLUX.1-schnell": Quota(1, 60.0)})
    try:
        body = {"inputs": "x", "parameters": {"width": 256, "height": 256}}
        assert http.post(f"{emu.base_url}/score", json=body, headers=bearer()).status_code == 200
        limited = http.post(f"{emu.base_url}/score", json=body, headers=bearer())
        assert limited.status_code == 429 and isinstance(limited.json()["error"], str)
    finally:
        emu.stop()
