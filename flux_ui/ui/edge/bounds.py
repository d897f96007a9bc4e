"""The edge's bounds and their bookkeeping: addresses, refusals, the flood log, upload and
stream ledgers (pure state on the one event loop that serves the app)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger("flux_ui.edge")

MB = 1024 * 1024
#: Who may show the app in a frame: nobody, except the Hub's pages around a Space.
NO_FRAMING = ((b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"))
SPACE_FRAMING = ((b"content-security-policy", b"frame-ancestors https://huggingface.co https://*.hf.space"),)
#: The client address of the request being served, for the login check (Gradio hands it no request).
CLIENT: ContextVar[str] = ContextVar("flux_ui_client", default="unknown")
#: Where the middleware leaves (guard, address) in the request scope, for the login page.
SCOPE_KEY = "flux_ui.login"
#: The file route as Starlette matches it (``/gradio_api/file=…``, the deprecated ``file/…``); a URL there is Gradio's.
FILE_ROUTE = re.compile(r"/+(?:gradio_api/+)?file(?:=|/)(?P<target>.*)", re.DOTALL)
URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: Routes whose answer stays open: heartbeat, queue and call streams, upload progress, MCP's SSE.
LONG_LIVED = re.compile(r"/+gradio_api/+(?:heartbeat/.*|queue/+data|call/+[^/]+/+[^/]+|upload_progress"
                        r"|dev/+reload|mcp/+sse|mcp/*)")
UPLOAD_ROUTE = re.compile(r"/+gradio_api/+upload/*")
#: How long an upload stays in Gradio's upload folder, and how often the folder is swept.
UPLOAD_TTL_S, SWEEP_EVERY_S = 3600.0, 300.0
#: A refused upload's body is read and dropped up to this much, so the client gets the answer, not a reset.
DRAIN_BYTES, DRAIN_S = 64 * MB, 15.0


def stream_budget(fraction: float = 0.25, ceiling: int = 1024) -> int:
    """The most long-lived connections callers without a session may hold together: a quarter of
    the file descriptor limit (256 under the common ``ulimit -n 1024``), leaving the rest to
    signed-in people, the outputs, SQLite and Gradio's own files."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        soft = ceiling * 4 if soft == resource.RLIM_INFINITY else soft
    except (ImportError, OSError, ValueError):  # no resource module on Windows
        soft = 1024
    return max(16, min(ceiling, int(soft * fraction)))


@dataclass(frozen=True)
class UploadLimits:
    """What one address, and everyone together, may stream into the upload cache within the window
    (the cache's time to live, so the total bounds what the cache holds)."""

    per_client_bytes: int = 512 * MB
    per_client_files: int = 300
    total_bytes: int = 4096 * MB
    total_files: int = 20_000
    window_s: float = UPLOAD_TTL_S
    max_clients: int = 10_000


@dataclass(frozen=True)
class StreamLimits:
    """How many long-lived connections bounded callers may hold, per address and in all."""

    per_address: int = 8
    total: int = field(default_factory=stream_budget)
    log_every_s: float = 60.0


#: The limits a launch takes (tests shrink them before launching).
UPLOAD_LIMITS, STREAM_LIMITS = UploadLimits(), StreamLimits()


def client_address(scope: Scope, on_space: bool) -> str:
    """The caller's address. On a Space every request comes through the Hub's proxy, whose own
    address would put all visitors in one bucket: there the proxy's last ``X-Forwarded-For`` hop
    names the visitor (earlier hops are the visitor's to invent)."""
    if on_space:
        forwarded = [v for k, v in scope.get("headers", []) if k == b"x-forwarded-for"]
        if forwarded and (last := forwarded[-1].decode("latin-1").split(",")[-1].strip()):
            return last
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def header(scope: Scope, name: bytes) -> bytes:
    return next((v for k, v in scope.get("headers", []) if k.lower() == name), b"")


# --- refusals --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    retry_after_s: int = 0


NOT_FOUND = Refusal(404, "Not Found")


async def refuse(send: Send, refusal: Refusal, close: bool = False) -> None:
    """A JSON answer, with when to try again; ``close`` frees the connection's descriptor at once."""
    body = json.dumps({"detail": refusal.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(b"retry-after", str(refusal.retry_after_s).encode())] if refusal.retry_after_s else []
    headers += [(b"connection", b"close")] if close else []
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def drain(receive: Receive) -> None:
    """Read and drop the rest of a refused body (bounded in bytes and time)."""
    async def read() -> None:
        left = DRAIN_BYTES
        while left > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            left -= len(message.get("body", b""))

    with suppress(asyncio.TimeoutError, OSError):
        await asyncio.wait_for(read(), DRAIN_S)


class FloodLog:
    """One warning per key per window, however many refusals a flood brings; the table stays bounded."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._logged: OrderedDict[tuple[str, str], float] = OrderedDict()

    def warn(self, key: tuple[str, str], message: str, *args: Any) -> None:
        now = self.clock()
        if now - self._logged.get(key, -math.inf) < self.every_s:
            return
        self._logged[key] = now
        self._logged.move_to_end(key)
        while len(self._logged) > 10_000:
            self._logged.popitem(last=False)
        log.warning(message + " (further refusals from it are not logged for %g s)", *args, self.every_s)


# --- upload bounds ---------------------------------------------------------------------------------


@dataclass
class _Count:
    """One request's count, or (with ``items``) a sliding window of them and their running sums."""

    stamp: float = 0.0
    bytes: int = 0
    files: int = 0
    items: deque[_Count] = field(default_factory=deque)

    def prune(self, horizon: float) -> None:
        while self.items and self.items[0].stamp < horizon:
            old = self.items.popleft()
            self.bytes, self.files = self.bytes - old.bytes, self.files - old.files

    def wait_s(self, now: float, window_s: float) -> int:
        return max(1, math.ceil(self.items[0].stamp + window_s - now)) if self.items else 1


@dataclass
class Ticket:
    """One admitted upload request: its count, and its address's window (None: not bounded)."""

    request: _Count
    client: _Count | None


class UploadLedger:
    """What each address, and everyone, streamed into the upload cache within the window."""

    def __init__(self, limits: UploadLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits, self.clock = limits, clock
        self._clients: OrderedDict[str, _Count] = OrderedDict()
        self._total = _Count()

    def admit(self, address: str, declared: int | None, bounded: bool) -> Ticket | Refusal:
        """Refuse at once what the caller's budget cannot take; otherwise the request's ticket."""
        limits, now = self.limits, self.clock()
        if bounded and declared is not None and declared > limits.per_client_bytes:
            return Refusal(413, f"This upload is {declared / MB:.1f} MB; one address may upload at most "
                                f"{limits.per_client_bytes // MB} MB per {limits.window_s / 60:g} minutes.")
        self._total.prune(now - limits.window_s)
        ticket = Ticket(_Count(now), self._client(address, now) if bounded else None)
        if refusal := self._over(ticket.client, declared or 0, 1):
            return refusal
        for window in (ticket.client, self._total):
            if window is not None:
                window.items.append(ticket.request)
        self._add(ticket, 0, 1)
        return ticket

    def charge(self, ticket: Ticket, more_bytes: int, files: int) -> Refusal | None:
        """Count ``more_bytes`` and the request's ``files`` so far, unless that passes a bound."""
        more_files = max(0, files - ticket.request.files)
        refusal = self._over(ticket.client, more_bytes, more_files)
        if refusal is None:
            self._add(ticket, more_bytes, more_files)
        return refusal

    def _add(self, ticket: Ticket, more_bytes: int, more_files: int) -> None:
        for count in (ticket.request, ticket.client, self._total):
            if count is not None:
                count.bytes, count.files = count.bytes + more_bytes, count.files + more_files

    def _client(self, address: str, now: float) -> _Count:
        client = self._clients.pop(address, None) or _Count()
        self._clients[address] = client  # newest last; the oldest go beyond max_clients
        while len(self._clients) > self.limits.max_clients:
            self._clients.popitem(last=False)
        client.prune(now - self.limits.window_s)
        return client

    def _over(self, client: _Count | None, more_bytes: int, more_files: int) -> Refusal | None:
        limits, now, minutes = self.limits, self.clock(), f"{self.limits.window_s / 60:g} minutes"
        if client is not None and (client.bytes + more_bytes > limits.per_client_bytes
                                   or client.files + more_files > limits.per_client_files):
            wait = client.wait_s(now, limits.window_s)
            return Refusal(429, f"Too many uploads from this address: at most {limits.per_client_bytes // MB} MB "
                                f"and {limits.per_client_files} files per {minutes}. Try again in {wait} s.", wait)
        if self._total.bytes + more_bytes > limits.total_bytes or self._total.files + more_files > limits.total_files:
            wait = self._total.wait_s(now, limits.window_s)
            return Refusal(429, f"flux-ui's upload space is full for now (at most {limits.total_bytes // MB} MB "
                                f"per {minutes} from everyone). Try again in {wait} s.", wait)
        return None


class Metered:
    """The request body as it arrives, each chunk charged before the app sees it, and the files in
    it counted by their multipart delimiters (a part counts once the next one begins)."""

    def __init__(self, receive: Receive, ledger: UploadLedger, ticket: Ticket, scope: Scope) -> None:
        self.receive, self.ledger, self.ticket = receive, ledger, ticket
        found = re.search(rb'boundary="?([^";,\s]+)', header(scope, b"content-type"), re.IGNORECASE)
        self.marker, self.tail, self.delimiters = b"--" + found.group(1) if found else b"", b"", 0
        self.refusal: Refusal | None = None
        self.done = False

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            self.done = not message.get("more_body", False)
            if self.marker:
                seen = self.tail + body
                self.delimiters += seen.count(self.marker)
                self.tail = seen[1 - len(self.marker):]
            if refusal := self.ledger.charge(self.ticket, len(body), max(1, self.delimiters - 1)):
                self.refusal = refusal
                raise MultiPartException(refusal.message)  # Gradio's parser then deletes its partial files
        return message


# --- long-lived connections ------------------------------------------------------------------------


class Streams:
    """Long-lived connections held by callers without a session, per address and in all."""

    def __init__(self, limits: StreamLimits, flood: FloodLog) -> None:
        self.limits, self.flood = limits, flood
        self.open: dict[str, int] = {}
        self.total = 0

    def enter(self, address: str, per_address: bool) -> Refusal | None:
        limits, held = self.limits, self.open.get(address, 0)
        why = None
        if per_address and held >= limits.per_address:
            why = f"this address already holds {limits.per_address}, the most for a caller without a session"
        elif self.total >= limits.total:
            why = f"callers without a session hold {limits.total}, the most flux-ui keeps for them"
        if why is not None:
            self.flood.warn((address, "streams"), "refused long-lived connections from %s: %s", address, why)
            return Refusal(429, f"Too many open connections: {why}. Close other tabs or sign in, then reload.", 5)
        self.open[address], self.total = held + 1, self.total + 1
        return None

    def leave(self, address: str) -> None:
        self.total -= 1
        if (held := self.open.pop(address, 1) - 1) > 0:
            self.open[address] = held


