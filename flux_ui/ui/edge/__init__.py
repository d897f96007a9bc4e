"""The web edge: what every request meets before Gradio does, in one ASGI middleware.

Framing: no other site may frame the app (on a Space, the Hub's pages around it may). Files: inside
the outputs folder the file route serves only what flux-ui wrote (``WrittenFiles``); elsewhere
Gradio's own rules hold (its cache and upload folder). Uploads: counted per address as the bytes
arrive, within a window and in total, and deleted an hour after they arrive. Long-lived connections
(heartbeat, SSE): a few per address for callers without a session, and in all well below the file
descriptor limit, so strangers cannot lock out the rest.

Who is bounded: with a login, every caller without a valid session (uploads: every caller); without
one (loopback only, or the emulator demo on a Space), callers not on this machine. The counters live
on the one event loop that serves the app, so they need no locks.

Who is who: without a login, a page sent to a browser that has no visitor cookie sets one (random,
HttpOnly; :mod:`flux_ui.identity` turns it into the visitor's id), so a public demo tells its visitors
apart for fair shares and budgets. On a Space the page is framed by huggingface.co, where a SameSite=Lax
cookie would never be sent back, so there it is SameSite=None, Secure and Partitioned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gradio.route_utils import delete_files_created_by_app
from gradio.utils import get_upload_folder
from starlette.middleware import Middleware
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flux_ui.hosts import is_loopback_address
from flux_ui.identity import VISITOR_COOKIE, new_visitor_token, visitor_token
from flux_ui.ui.edge.bounds import (
    CLIENT,
    FILE_ROUTE,
    LONG_LIVED,
    MB,
    NO_FRAMING,
    NOT_FOUND,
    SCOPE_KEY,
    SPACE_FRAMING,
    STREAM_LIMITS,
    SWEEP_EVERY_S,
    UPLOAD_LIMITS,
    UPLOAD_ROUTE,
    UPLOAD_TTL_S,
    FloodLog,
    Metered,
    Refusal,
    StreamLimits,
    Streams,
    Ticket,
    UploadLedger,
    UploadLimits,
    client_address,
    drain,
    header,
    refuse,
    stream_budget,
)
from flux_ui.ui.edge.files import FileGate, WrittenFiles, written_files

log = logging.getLogger("flux_ui.edge")
#: How long a browser keeps its visitor cookie: a year, so a returning visitor keeps their identity.
VISITOR_MAX_AGE_S = 365 * 24 * 3600

__all__ = ["CLIENT", "MB", "SCOPE_KEY", "Edge", "StreamLimits", "UploadLimits", "WrittenFiles", "client_address",
           "edge_app_kwargs", "stream_budget", "written_files"]
# --- the middleware --------------------------------------------------------------------------------


class Edge:
    """ASGI middleware, given to Gradio's FastAPI app through ``app_kwargs``: see the module docstring."""

    def __init__(self, app: ASGIApp, guard: Any, on_space: bool, outputs: Path, login: bool,
                 uploads: UploadLimits, streams: StreamLimits, database: Any = None) -> None:
        self.app, self.guard, self.on_space, self.login = app, guard, on_space, login
        self.headers = SPACE_FRAMING if on_space else NO_FRAMING
        self.files = FileGate(outputs, database)  # database: History's when shared (PostgreSQL)
        self.flood = FloodLog(streams.log_every_s)
        self.uploads, self.streams = UploadLedger(uploads), Streams(streams, self.flood)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        address = client_address(scope, self.on_space)
        scope[SCOPE_KEY] = (self.guard, address)
        needs_visitor = not self.login and visitor_token(header(scope, b"cookie").decode("latin-1")) is None

        async def send_framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-frame-options"]
                message["headers"] = [*kept, *self.headers]  # a second CSP header can only restrict more
                if needs_visitor and _is_page(kept):
                    message["headers"].append((b"set-cookie", self.visitor_cookie(scope)))
            await send(message)

        token = CLIENT.set(address)
        try:
            await self.dispatch(scope, receive, send_framed, address)
        finally:
            CLIENT.reset(token)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        path, root = scope["path"], scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path
        if (found := FILE_ROUTE.fullmatch(path)) and await asyncio.to_thread(self.files.refuses, found["target"]):
            await refuse(send, NOT_FOUND)
        elif scope["method"] == "POST" and UPLOAD_ROUTE.fullmatch(path) and (not self.login or self.signed_in(scope)):
            await self.upload(scope, receive, send, address)  # a stranger's upload: Gradio's 401, body unread
        elif scope["method"] == "GET" and LONG_LIVED.fullmatch(path) and not self.signed_in(scope):
            await self.stream(scope, receive, send, address)
        else:
            await self.app(scope, receive, send)

    def visitor_cookie(self, scope: Scope) -> bytes:
        """A new visitor's cookie: random, HttpOnly, for a year; Secure wherever the page is on https."""
        secure = self.on_space or scope.get("scheme") == "https"
        same_site = "None; Partitioned" if self.on_space else "Lax"
        return (f"{VISITOR_COOKIE}={new_visitor_token()}; Path=/; Max-Age={VISITOR_MAX_AGE_S}; HttpOnly; "
                f"SameSite={same_site}{'; Secure' if secure else ''}").encode("latin-1")

    def signed_in(self, scope: Scope) -> bool:
        """Whether the request carries a session Gradio's login issued."""
        app = scope.get("app")
        tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", "")
        if not self.login or not isinstance(tokens, dict):
            return False
        cookies = cookie_parser(header(scope, b"cookie").decode("latin-1"))
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return token is not None and token in tokens

    def bounded(self, address: str) -> bool:
        """Per-address bounds hold everyone, except this machine's own callers on an app without a
        login (it listens on loopback only: its owner's tabs, scripts and load tests)."""
        return self.login or not is_loopback_address(address)

    async def stream(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        if refusal := self.streams.enter(address, self.bounded(address)):
            await refuse(send, refusal, close=True)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.streams.leave(address)

    async def upload(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        declared = header(scope, b"content-length")
        ticket = self.uploads.admit(address, int(declared) if declared.isdigit() else None, self.bounded(address))
        metered = Metered(receive, self.uploads, ticket, scope) if isinstance(ticket, Ticket) else None
        started = False

        async def send_unless_refused(message: Message) -> None:
            nonlocal started
            if metered is not None and metered.refusal is None:
                started = True
                await send(message)

        if metered is not None:
            try:
                await self.app(scope, metered, send_unless_refused)
            except Exception:
                if metered.refusal is None:
                    raise
        refusal = ticket if isinstance(ticket, Refusal) else metered.refusal if metered else None
        if refusal is not None and not started:
            self.flood.warn((address, "uploads"), "refused uploads from %s: %s", address, refusal.message)
            if metered is None or not metered.done:
                await drain(receive)
            await refuse(send, refusal)


def _is_page(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a response is a page (HTML): what a browser loads first, so the one that carries the cookie."""
    return any(k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers)


# --- the upload folder's sweep ---------------------------------------------------------------------


def sweep_uploads(blocks: Any, age_s: float) -> None:
    """Delete the uploads older than ``age_s`` with Gradio's own cleaning, limited to the uploads
    (its copies of results keep Gradio's ``delete_cache``), and the partial files of uploads whose
    client vanished midway. Runs on the event loop, where the upload route adds to the set."""
    uploads = getattr(blocks, "upload_file_set", None)
    if isinstance(uploads, set):
        delete_files_created_by_app(SimpleNamespace(blocks={}, temp_file_sets=[uploads]), int(age_s))  # type: ignore[arg-type]
    for stray in Path(get_upload_folder()).glob("tmp*"):
        with suppress(OSError):
            if stray.is_file() and time.time() - stray.lstat().st_ctime > age_s:
                stray.unlink()


@asynccontextmanager
async def sweeping(app: Any, age_s: float, every_s: float) -> AsyncIterator[None]:
    """A lifespan for Gradio's app: the upload folder swept every ``every_s``."""
    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(every_s)
            sweep_uploads(app.get_blocks(), age_s)

    task = asyncio.create_task(sweep_forever())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def edge_app_kwargs(outputs: Path, guard: Any, on_space: bool, database: Any = None) -> dict[str, Any]:
    """Gradio's ``app_kwargs``: the edge middleware with the limits as they are now, and the
    lifespan that sweeps the upload folder (Gradio runs it beside its own). ``database``: History's,
    when shared (PostgreSQL), so the file gate asks it which files flux-ui wrote."""
    age_s, every_s = UPLOAD_TTL_S, SWEEP_EVERY_S
    middleware = Middleware(Edge, guard=guard, on_space=on_space, outputs=outputs,  # type: ignore[arg-type]
                            login=guard is not None, uploads=UPLOAD_LIMITS, streams=STREAM_LIMITS, database=database)
    return {"middleware": [middleware], "lifespan": lambda app: sweeping(app, age_s, every_s)}
