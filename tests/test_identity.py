"""Who is asking: the login name when there are logins, otherwise one visitor per browser (a cookie the
web edge sets once), otherwise the Gradio session; owners from FLUX_UI_OWNERS, or this machine itself
when the app has no logins. What the pacer and everything after it see is that identity."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from gradio_client import Client

from app_fixtures import AppUnderTest, running_app
from flux_ui import identity
from flux_ui.identity import LOCAL, VISITOR_COOKIE, User, acting_as, current_user, from_request, steps_as, visitor
from flux_ui.runtime import Runtime
from flux_ui.settings import SettingsError, load_settings, variables
from flux_ui.ui.edge import Edge
from flux_ui.ui.edge.bounds import STREAM_LIMITS, UPLOAD_LIMITS

PASSWORD = f"who-{secrets.token_hex(8)}"
LOGINS = {"FLUX_UI_USERS": f"alice:{PASSWORD}-a,bob:{PASSWORD}-b", "FLUX_UI_OWNERS": "alice"}


def request(username: str | None = None, cookie: str = "", host: str = "127.0.0.1", session: str = "s1",
            **headers: str) -> SimpleNamespace:
    """What identity reads of a gr.Request."""
    return SimpleNamespace(username=username, session_hash=session, client=SimpleNamespace(host=host),
                           headers={**({"cookie": cookie} if cookie else {}), **headers})


def spy_users(runtime: Runtime) -> list[User]:
    """Who each request that reached a pacer was for (the pacer learns it from identity.current_user)."""
    seen: list[User] = []
    for pacer in runtime.client._pacers.values():
        acquire = pacer.acquire

        async def spied(*args: Any, _acquire: Any = acquire, **kwargs: Any) -> float:
            seen.append(current_user())
            assert args[0] == current_user().id  # what the fair queue is keyed by
            return await _acquire(*args, **kwargs)

        pacer.acquire = spied  # type: ignore[method-assign]
    return seen


# --- from a request --------------------------------------------------------------------------------


def test_outside_a_request_it_is_the_one_local_user_who_owns_the_instance() -> None:
    assert current_user() is LOCAL and User("local", "local user", anonymous=False, owner=True) == LOCAL
    assert from_request(None) is LOCAL


def test_a_login_name_is_the_user_and_the_owners_are_the_ones_named() -> None:
    alice = from_request(request("alice", cookie=f"{VISITOR_COOKIE}={'a' * 32}"), owners={"alice"}, logins=True)
    bob = from_request(request("bob"), owners={"alice"}, logins=True)
    assert alice == User("alice", "alice", anonymous=False, owner=True)
    assert bob == User("bob", "bob", anonymous=False, owner=False)


def test_a_visitor_is_known_by_a_hash_of_their_cookie_never_the_cookie_itself() -> None:
    token, other = identity.new_visitor_token(), identity.new_visitor_token()
    one = from_request(request(cookie=f'prefs={{"a": 1}}; {VISITOR_COOKIE}={token}', session="x"))  # a messy neighbour
    again = from_request(request(cookie=f"{VISITOR_COOKIE}={token}", session="y"))  # another page load
    two = from_request(request(cookie=f"{VISITOR_COOKIE}={other}", session="x"))
    assert one.id == again.id != two.id and one.id.startswith("visitor-") and len(one.id) == len("visitor-") + 10
    assert token not in one.id and token not in one.name and one.anonymous
    assert one == visitor(token, owner=True)


def test_without_a_usable_cookie_the_session_stands_for_the_visitor() -> None:
    forged = from_request(request(cookie=f"{VISITOR_COOKIE}=short", session="abc123"))
    assert forged == from_request(request(session="abc123"))  # a value the edge never sets is no cookie
    assert forged.id != from_request(request(session="def456")).id and "abc123" not in forged.id


def test_without_logins_this_machine_is_the_owner_and_nobody_behind_a_proxy_is() -> None:
    assert from_request(request(host="127.0.0.1")).owner
    assert from_request(request(host="::1")).owner
    assert not from_request(request(host="203.0.113.9")).owner
    assert not from_request(request(host="127.0.0.1", **{"x-forwarded-for": "203.0.113.9"})).owner  # a Space
    assert not from_request(request(host="127.0.0.1"), logins=True).owner  # with logins, only FLUX_UI_OWNERS


async def test_the_caller_carries_into_the_tasks_a_call_starts_and_ends_with_each_step() -> None:
    alice = User("alice", "alice")

    async def steps() -> Any:
        yield current_user()
        yield await asyncio.create_task(asyncio.sleep(0, current_user()))  # a task started here inherits it

    async def outside() -> User:
        return current_user()

    with acting_as(alice):
        task = asyncio.create_task(outside())
    assert await task == alice and current_user() is LOCAL
    stepped = steps_as(alice, steps())
    assert await anext(stepped) == alice
    assert current_user() is LOCAL  # not between steps: Gradio may resume the next from elsewhere
    assert await anext(stepped) == alice


# --- settings -------------------------------------------------------------------------------------------


def test_owners_must_be_logins_and_the_queue_cap_a_small_whole_number() -> None:
    env = {"FLUX_UI_USERS": f"alice:{PASSWORD}", "FLUX_UI_USER_MAX_QUEUED": "8", "FLUX_UI_OWNERS": "alice"}
    users = load_settings(env, dotenv_path=None).users
    assert users.owners == {"alice"} and users.max_queued == 8
    assert load_settings({}, dotenv_path=None).users.max_queued is None
    with pytest.raises(SettingsError) as wrong:
        load_settings({**env, "FLUX_UI_OWNERS": "alice,alcie", "FLUX_UI_USER_MAX_QUEUED": "0"}, dotenv_path=None)
    text = str(wrong.value)
    assert "FLUX_UI_OWNERS names 'alcie', not a login in FLUX_UI_USERS (alice)" in text
    assert "FLUX_UI_USER_MAX_QUEUED='0' is not a whole number from 1 to 64" in text
    with pytest.raises(SettingsError, match="FLUX_UI_OWNERS names logins, but FLUX_UI_USERS sets none"):
        load_settings({"FLUX_UI_OWNERS": "alice"}, dotenv_path=None)
    assert {"FLUX_UI_OWNERS", "FLUX_UI_USER_MAX_QUEUED"} <= {name for name, *_ in variables()}


# --- the cookie -------------------------------------------------------------------------------------------


def test_the_page_sets_the_visitor_cookie_once_and_nothing_else_does(tmp_path: Path) -> None:
    with running_app(tmp_path / "outputs") as app, httpx.Client(timeout=20) as http:
        first = http.get(f"{app.url}/")
        (cookie,) = first.headers.get_list("set-cookie")
        assert cookie.startswith(f"{VISITOR_COOKIE}=")
        assert {"HttpOnly", "SameSite=Lax", "Path=/"} <= {part.strip() for part in cookie.split(";")}
        assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back
        token = http.cookies[VISITOR_COOKIE]
        assert http.get(f"{app.url}/").headers.get_list("set-cookie") == []  # set once per browser
        assert httpx.get(f"{app.url}/gradio_api/info", timeout=20).headers.get_list("set-cookie") == []
        assert http.cookies[VISITOR_COOKIE] == token


def test_with_logins_no_visitor_cookie_is_set(tmp_path: Path) -> None:
    with running_app(tmp_path / "outputs", env=LOGINS) as app:
        page = httpx.get(f"{app.url}/", timeout=20, follow_redirects=True)
        assert page.status_code == 200 and VISITOR_COOKIE not in " ".join(page.headers.get_list("set-cookie"))


def test_on_a_space_the_cookie_survives_the_hubs_frame() -> None:
    edge = Edge(lambda *a: None, None, True, Path("."), False, UPLOAD_LIMITS, STREAM_LIMITS)  # type: ignore[arg-type]
    parts = {p.strip() for p in edge.visitor_cookie({"scheme": "http"}).decode().split(";")}
    assert {"SameSite=None", "Partitioned", "Secure", "HttpOnly"} <= parts


# --- in the running app ---------------------------------------------------------------------------------


def test_logged_in_callers_are_known_by_name_through_every_generating_route(tmp_path: Path) -> None:
    with running_app(tmp_path / "outputs", env=LOGINS) as app:
        seen = spy_users(app.runtime)
        alice = Client(app.url, auth=("alice", f"{PASSWORD}-a"), verbose=False)
        bob = Client(app.url, auth=("bob", f"{PASSWORD}-b"), verbose=False)
        assert alice.predict(model="FLUX.2-pro", prompt="a fox", api_name="/generate")[2] == ""
        assert bob.predict(prompt="a fox", models=["FLUX.2-pro", "FLUX-1.1-pro"], api_name="/compare")[2] == ""
        grid = bob.predict(prompt="a fox", model="FLUX.2-pro", x_axis="seed", x_values="1, 2", api_name="/grid")
        assert grid[3] == ""
    assert seen[0] == User("alice", "alice", anonymous=False, owner=True)
    assert seen[1:] == [User("bob", "bob", anonymous=False, owner=False)] * 4  # compare's two, the grid's two


@pytest.mark.browser
def test_two_browsers_are_two_visitors_each_keeping_its_cookie(app: AppUnderTest, browser: Any) -> None:
    seen = spy_users(app.runtime)
    tokens = []
    for n in range(2):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.goto(app.url)
            (cookie,) = [c for c in context.cookies() if c["name"] == VISITOR_COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            page.reload()
            assert [c["value"] for c in context.cookies() if c["name"] == VISITOR_COOKIE] == [cookie["value"]]
            page.fill("#t2i-prompt textarea", f"a lighthouse, visitor {n}")
            page.click("#t2i-run")
            page.wait_for_selector("#t2i-image img")
            tokens.append(cookie["value"])
        finally:
            context.close()
    assert tokens[0] != tokens[1]
    assert [u.id for u in seen] == [visitor(t).id for t in tokens]  # what the pacer saw: one visitor each
    assert all(u.anonymous and u.owner for u in seen)  # no logins, on this machine: its owner's browsers
