"""The login resists guessing, the page cannot be framed, and strangers get no API description.

The throttle's logic runs on a fake clock (no sleeps); one launched app, with small limits and
short delays, shows it through Gradio's real /login route; another, with the usual limits, serves
the page and header checks (both run from 127.0.0.1, so a lockout in one would spoil the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app_fixtures import AppUnderTest, running_app
from conftest import FakeClock
from flux_ui.settings import load_settings
from flux_ui.ui import launch
from flux_ui.ui.guard import UNKNOWN_ACCOUNT, Limits, LoginGuard
from flux_ui.ui.launch import CLIENT, client_address, guarded_login, launch_options

PASSWORD = f"guard-{secrets.token_hex(8)}"
USERS = {"FLUX_UI_USERS": f"alice:{PASSWORD},bob:{PASSWORD}-b"}
WRONG = f"wrong-{secrets.token_hex(6)}"
#: Small limits and short delays, so the launched app locks within a second or two.
QUICK = Limits(per_address=4, per_account=50, first_delay_s=0.05, max_delay_s=0.2)


def guard_with(limits: Limits | None = None) -> tuple[LoginGuard, FakeClock]:
    clock = FakeClock()
    return LoginGuard(["alice", "bob"], limits or Limits(), clock=clock), clock


def fail(guard: LoginGuard, address: str, account: str = "alice") -> float:
    """One wrong attempt; returns the delay the guard asked for (it must admit the attempt)."""
    verdict = guard.admit(address, account)
    assert verdict.ticket is not None, verdict
    guard.settle(verdict.ticket, succeeded=False)
    return verdict.delay_s


# --- the throttle, on a fake clock ---------------------------------------------------------------


def test_the_delay_doubles_from_half_a_second_and_is_capped() -> None:
    guard, _ = guard_with()
    assert [fail(guard, "10.0.0.1") for _ in range(10)] == [0, 0.5, 1, 2, 4, 8, 8, 8, 8, 8]


def test_the_address_is_locked_after_n_failures_and_unlocks_by_itself() -> None:
    guard, clock = guard_with()
    for _ in range(10):
        fail(guard, "10.0.0.1")
    clock.advance(60)
    refused = guard.admit("10.0.0.1", "alice")
    assert refused.refused and refused.ticket is None and refused.retry_after_s == 15 * 60 - 60
    assert guard.locked_for("10.0.0.1") == 15 * 60 - 60
    clock.advance(15 * 60 - 60)
    again = guard.admit("10.0.0.1", "alice")
    assert not again.refused and again.delay_s == 0  # every failure has left the window
    assert guard.locked_for("10.0.0.1") == 0


def test_an_address_lock_holds_nobody_else() -> None:
    guard, _ = guard_with()
    for _ in range(10):
        fail(guard, "10.0.0.1")
    assert guard.admit("10.0.0.1", "bob").refused  # another account from the same address: refused too
    other = guard.admit("10.0.0.2", "alice")
    assert not other.refused and other.delay_s == 0  # the same account from elsewhere: no wait


def test_the_account_is_locked_after_failures_from_many_addresses() -> None:
    guard, clock = guard_with()
    for n in range(20):
        assert fail(guard, f"10.0.1.{n}") == 0  # one guess per address: no address delay
    refused = guard.admit("10.0.2.1", "alice")
    assert refused.refused and refused.retry_after_s == 15 * 60
    assert guard.locked_for("10.0.2.1") == 15 * 60  # the page of the refused address says so
    assert not guard.admit("10.0.2.1", "bob").refused  # other accounts are not held
    assert not guard.admit("10.0.2.2", "nobody-here").refused  # unknown names have no account lock
    clock.advance(15 * 60)
    assert not guard.admit("10.0.2.1", "alice").refused


def test_a_success_resets_its_address() -> None:
    guard, _ = guard_with()
    for _ in range(5):
        fail(guard, "10.0.0.1")
    verdict = guard.admit("10.0.0.1", "alice")
    assert verdict.delay_s == 8 and verdict.ticket is not None
    guard.settle(verdict.ticket, succeeded=True)
    assert fail(guard, "10.0.0.1") == 0  # counted from scratch
    for n in range(19 - 6):  # and the success took its place in the account's count back
        fail(guard, f"10.0.3.{n}")
    assert not guard.admit("10.0.4.1", "alice").refused


def test_concurrent_attempts_count_before_their_passwords_are_checked() -> None:
    """A burst sent all at once meets the same limit as guesses sent one by one."""
    guard, _ = guard_with()
    verdicts = [guard.admit("10.0.0.1", "alice") for _ in range(30)]
    assert sum(not v.refused for v in verdicts) == 10
    assert [v.delay_s for v in verdicts[:10]] == [0, 0.5, 1, 2, 4, 8, 8, 8, 8, 8]


def test_the_table_is_bounded_and_forgets_old_entries() -> None:
    guard, clock = guard_with(Limits(max_entries=50))
    for n in range(2000):
        fail(guard, f"10.{n // 250}.{n % 250}.1", account=f"user{n}")
    assert len(guard) <= 50
    clock.advance(15 * 60 + 1)
    fail(guard, "10.9.9.9")
    assert len(guard) == 2  # that address and alice; everything older expired


def test_failures_are_logged_without_passwords_and_a_flood_once(caplog: pytest.LogCaptureFixture) -> None:
    guard, _ = guard_with()
    caplog.set_level(logging.WARNING, logger="flux_ui")
    for _ in range(40):
        verdict = guard.admit("10.0.0.7", "alice")
        if verdict.ticket is not None:
            guard.settle(verdict.ticket, succeeded=False)
    fail(guard, "10.0.0.8", account=WRONG)  # a password typed into the name field
    records = [r for r in caplog.records if r.name == "flux_ui"]
    failures = [r for r in records if "failed sign-in" in r.getMessage()]
    locks = [r for r in records if "locked" in r.getMessage()]
    assert all(r.levelno == logging.WARNING for r in records)
    assert len(failures) == 11 and len(locks) == 1  # not one line per refused attempt
    assert "'alice'" in failures[0].getMessage() and "10.0.0.7" in failures[0].getMessage()
    assert UNKNOWN_ACCOUNT in failures[-1].getMessage()
    assert all(WRONG not in r.getMessage() and PASSWORD not in r.getMessage() for r in records)


# --- the login callable Gradio awaits -----------------------------------------------------------------


def checking(calls: list[str]):  # type: ignore[no-untyped-def]
    def check(user: str, password: str) -> bool:
        calls.append(user)
        return password == PASSWORD

    return check


async def test_a_locked_login_refuses_the_right_password_with_429_and_retry_after() -> None:
    from fastapi import HTTPException

    guard, _ = guard_with()
    calls: list[str] = []
    login = guarded_login(checking(calls), guard, wall=lambda: 0.0)
    for _ in range(10):
        guard.settle(guard.admit("10.0.0.1", "alice").ticket, False)  # type: ignore[arg-type]
    CLIENT.set("10.0.0.1")
    with pytest.raises(HTTPException) as refused:
        await login("alice", PASSWORD)
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "900"}
    assert "paused until 00:15 UTC" in refused.value.detail and "even the right password" in refused.value.detail
    assert calls == []  # the password was not even compared
    CLIENT.set("10.0.0.2")
    assert await login("alice", PASSWORD) is True and calls == ["alice"]


async def test_one_callers_delay_holds_no_one_else() -> None:
    guard, _ = guard_with(Limits(first_delay_s=60, max_delay_s=60))
    login = guarded_login(checking([]), guard)
    fail(guard, "10.0.0.1")

    async def from_address(address: str, password: str) -> bool:
        CLIENT.set(address)  # each task has its own copy of the context
        return await login("alice", password)

    slowed = asyncio.create_task(from_address("10.0.0.1", WRONG))
    await asyncio.sleep(0)
    assert await asyncio.wait_for(from_address("10.0.0.2", PASSWORD), timeout=10) is True
    assert not slowed.done()  # still sleeping its minute, without having held the other sign-in
    slowed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slowed


# --- headers and addresses -----------------------------------------------------------------------------


async def headers_through(environ: dict[str, str]) -> httpx.Headers:
    options = launch_options(load_settings(USERS, dotenv_path=None), "127.0.0.1", 7860, False, False, environ)
    page = Starlette(routes=[Route("/", lambda _: PlainTextResponse("ok"))],
                     middleware=options["app_kwargs"]["middleware"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=page), base_url="http://t") as client:
        return (await client.get("/")).headers


async def test_on_a_space_the_hub_may_frame_the_app() -> None:
    headers = await headers_through({"SPACE_ID": "someone/flux-ui"})
    assert "x-frame-options" not in headers
    assert headers.get_list("content-security-policy") == [
        "frame-ancestors https://huggingface.co https://*.hf.space"]
    off_space = await headers_through({})
    assert off_space["x-frame-options"] == "DENY"
    assert off_space.get_list("content-security-policy") == ["frame-ancestors 'none'"]


def test_the_address_is_the_peer_or_on_a_space_the_proxys_last_hop() -> None:
    scope = {"client": ("10.16.3.80", 5555), "headers": [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]}
    assert client_address(scope, on_space=False) == "10.16.3.80"  # a header anyone can send is ignored
    assert client_address(scope, on_space=True) == "203.0.113.9"  # the hop the Hub's proxy added
    assert client_address({"client": None, "headers": []}, on_space=True) == "unknown"


# --- through a launched app -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    with running_app(tmp_path_factory.mktemp("guarded"), env=USERS) as app:
        yield app


def test_guessing_through_the_login_route_is_slowed_then_locked(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "LOGIN_LIMITS", QUICK)
    caplog.set_level(logging.WARNING, logger="flux_ui")
    with running_app(tmp_path, env=USERS) as app, httpx.Client(base_url=app.url, timeout=30) as client:
        answers = [client.post("/login", data={"username": "alice", "password": WRONG}) for _ in range(12)]
        right = client.post("/login", data={"username": "alice", "password": PASSWORD})
        page = client.get("/").text
    assert [a.status_code for a in answers] == [400] * 4 + [429] * 8
    assert all(1 <= int(a.headers["retry-after"]) <= 900 for a in answers[4:])
    assert right.status_code == 429 and "even the right password is refused" in right.json()["detail"]
    assert "access-token" not in "".join(right.headers.get_list("set-cookie"))
    assert "Sign-in is paused until" in page  # the login page says when, for the person at the form
    messages = [r.getMessage() for r in caplog.records if r.name == "flux_ui"]
    assert any("'alice'" in m and "127.0.0.1" in m for m in messages)
    assert sum("locked" in m for m in messages) == 1 and sum("failed sign-in" in m for m in messages) == 4
    assert not any(PASSWORD in m or WRONG in m for m in messages)


@pytest.mark.parametrize("route", ["/", "/config", "/gradio_api/info", "/gradio_api/app_id"])
def test_no_page_or_api_route_can_be_framed(served: AppUnderTest, route: str) -> None:
    headers = httpx.get(served.url + route).headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers.get_list("content-security-policy")


def embedded_api_info(page: str) -> str:
    found = re.search(r"window\.gradio_api_info = (.*?);</script>", page, re.DOTALL)
    return found.group(1) if found else ""


def test_a_stranger_gets_no_api_description_and_a_signed_in_page_works(served: AppUnderTest) -> None:
    stranger = httpx.get(served.url + "/").text
    assert json.loads(embedded_api_info(stranger)) == {"named_endpoints": {}, "unnamed_endpoints": {}}
    for marker in ("/generate", "/edit", "parameter_name", "FLUX.2-pro", "FLUX.1-Kontext-pro"):
        assert marker not in stranger, marker
    with httpx.Client(base_url=served.url, timeout=30) as session:
        assert session.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 200
        config = session.get("/config")
        page = session.get("/").text
    assert config.status_code == 200 and config.json()["components"]
    api = json.loads(embedded_api_info(page))
    assert "/generate" in api["named_endpoints"] and "FLUX.2-pro" in page
    assert "Text to image" in page
