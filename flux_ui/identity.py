"""Who is asking: the login name, or one anonymous visitor per browser, for fair shares, budgets and the audit.

``ui/common`` sets the caller for each event from its ``gr.Request`` (:func:`acting_as`), in a ContextVar,
so the client's pacer, the spend checks and the audit read :func:`current_user` without a user being
passed through every layer; the tasks a call starts (``runtime.jobs``, a fan-out's requests) copy the
context and keep it. Outside any call (tests, scripts, the doctor) it is :data:`LOCAL`, the owner.

Without logins each browser is a visitor: the web edge gives it a random cookie (:data:`VISITOR_COOKIE`)
and the visitor's id is a hash of it, so an id seen in the audit or a usage table cannot be replayed as
the cookie. A caller without the cookie (gradio_client, an MCP client) is known by its Gradio session,
hashed the same way. Owners are the login names in ``FLUX_UI_OWNERS``; without logins, a caller on this
machine itself (a loopback peer, no proxy in between), who is the only one an app without logins serves
apart from a public demo's visitors.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flux_ui.hosts import is_loopback_address

#: The cookie the web edge sets once per browser when the app has no logins.
VISITOR_COOKIE = "flux-visitor"
#: What the edge puts in it (secrets.token_urlsafe(24)); anything else is treated as no cookie.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
_ID_HEX = 10  # 40 bits of the hash: unique among a demo's visitors, short enough to read in a table


@dataclass(frozen=True)
class User:
    """One person as flux-ui tells them apart. ``id`` is stable (the login name, ``visitor-<hash>``, or
    ``local``); ``name`` is for display; ``anonymous``: no login names them; ``owner``: sees every user's
    usage and the audit trail."""

    id: str
    name: str
    anonymous: bool = False
    owner: bool = False


#: The one user of code that runs outside a request (tests, scripts), and of a single-user instance.
LOCAL = User("local", "local user", anonymous=False, owner=True)
_current: ContextVar[User] = ContextVar("flux_ui_user", default=LOCAL)


def current_user() -> User:
    """Who the running call is for (:data:`LOCAL` outside one)."""
    return _current.get()


@contextmanager
def acting_as(user: User) -> Iterator[User]:
    """Run the block (and every task it starts) as ``user``. Set and reset in one step of the caller:
    never across a ``yield`` of an async generator (:func:`steps_as` is for those)."""
    token = _current.set(user)
    try:
        yield user
    finally:
        _current.reset(token)


async def steps_as(user: User, steps: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """An event's async generator run as ``user``, each step on its own: Gradio may resume a generator
    from another task, whose context would not hold a value set at the first step."""
    while True:
        with acting_as(user):
            try:
                item = await anext(steps)
            except StopAsyncIteration:
                return
        yield item


def new_visitor_token() -> str:
    """A fresh value for :data:`VISITOR_COOKIE` (192 random bits)."""
    return secrets.token_urlsafe(24)


def visitor_token(cookie_header: str) -> str | None:
    """The visitor cookie's value in a ``Cookie`` header, when it is one the edge could have set.

    Read by hand, leniently (as browsers send it): the standard library's parser gives up on the
    whole header at the first cookie it finds malformed, which another app on localhost may well set.
    """
    for part in cookie_header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == VISITOR_COOKIE:
            value = value.strip('"')
            return value if _TOKEN.fullmatch(value) else None
    return None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:_ID_HEX]


def visitor(secret: str, owner: bool = False) -> User:
    """The visitor a cookie (or a session) stands for: an id derived from it, never the value itself."""
    digest = _digest(secret)
    return User(f"visitor-{digest}", f"visitor {digest[:6]}", anonymous=True, owner=owner)


def from_request(request: Any, owners: Collection[str] = (), logins: bool = False) -> User:
    """The caller of a Gradio event: its login name, else its visitor cookie, else its session.

    ``request`` is a ``gr.Request`` (None: a direct call, as tests make: :data:`LOCAL`). ``logins``: the
    app has them (FLUX_UI_USERS), so a caller without a name is a program of an owner's own on loopback
    only when the app has none.
    """
    if request is None:
        return LOCAL
    name = getattr(request, "username", None)
    if isinstance(name, str) and name:
        return User(name, name, anonymous=False, owner=name in owners)
    headers = _headers(request)
    owner = not logins and _on_this_machine(request, headers)
    token = visitor_token(headers.get("cookie", ""))
    if token is not None:
        return visitor(token, owner)
    session = getattr(request, "session_hash", None)
    if isinstance(session, str) and session:
        return visitor(f"session:{session}", owner)
    return LOCAL if owner else visitor(secrets.token_hex(8))


def _headers(request: Any) -> dict[str, str]:
    """The request's headers by lower-case name (Gradio hands Starlette's Headers, or a dict turned object)."""
    try:
        return {str(k).lower(): str(v) for k, v in dict(getattr(request, "headers", None) or {}).items()}
    except (TypeError, ValueError):
        return {}


def _on_this_machine(request: Any, headers: dict[str, str]) -> bool:
    """A loopback peer with no proxy in between (a proxy on this machine would make every visitor look local)."""
    if "x-forwarded-for" in headers or "forwarded" in headers:
        return False
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return isinstance(host, str) and is_loopback_address(host)
