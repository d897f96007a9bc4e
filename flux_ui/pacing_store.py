"""Redis as the shared pacer sees it: one connection pool with its scripts, a deployment's keys, what a step said.

:class:`RedisStore` is one client's connection to Redis (every deployment's :class:`~flux_ui.pacing_redis.SharedPacer`
shares it); it names Redis only by :func:`flux_ui.settings_shared.redact`, never with a password. The Lua is in
:mod:`flux_ui.pacing_scripts`. :class:`Snapshot` is the window and the round as the last step returned them,
which :meth:`SharedPacer.status` derives from without asking Redis. :func:`listen` and :func:`retrying` are
how the pacer lives with a Redis that may go away: resubscribe, retry with a short backoff, never give up on
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flux_ui import pacing_scripts
from flux_ui.settings_shared import redact

#: What a lost or unreachable Redis raises (a refused connection, a timeout, a reset).
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
#: Retries while Redis does not answer: from the first to the longest, doubling.
BACKOFF_S = (0.05, 1.0)


class RedisStore:
    """One Redis connection pool and its scripts, shared by every deployment's pacer of one client."""

    def __init__(self, url: str, *, prefix: str = "flux-ui", timeout_s: float = 2.0) -> None:
        self.where = redact(url)  # the one way it is named in a message or a log
        self.prefix = prefix
        self._closed = False
        # One quick retry (a pooled connection Redis dropped); longer outages are the pacer's to wait out.
        self.redis = aioredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s,
                                             socket_timeout=timeout_s, retry=Retry(NoBackoff(), 1))
        self.step = self.redis.register_script(pacing_scripts.STEP)
        self.mark = self.redis.register_script(pacing_scripts.MARK)
        self.penalize = self.redis.register_script(pacing_scripts.PENALIZE)
        self.leave = self.redis.register_script(pacing_scripts.LEAVE)
        self.hold = self.redis.register_script(pacing_scripts.HOLD)

    def keys(self, deployment: str) -> list[str]:
        """One deployment's keys, under one hash tag so a cluster keeps them on one node."""
        base = f"{self.prefix}:{{{deployment}}}:"
        return [base + name for name in ("state", "sent", "held", "tickets", "leases", "served")]

    def channel(self, deployment: str) -> str:
        return f"{self.prefix}:{{{deployment}}}:wake"

    def outage(self) -> str:
        """What a waiting person reads while Redis does not answer."""
        return (f"Waiting for the shared quota store (Redis at {self.where}) to answer; "
                "nothing is sent without it")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self.redis.aclose()


@dataclass(frozen=True)
class Snapshot:
    """What the last script said (Redis's clock, in ms), and when on the local clock it said it."""

    at: float
    now_ms: float = 0.0
    blocked_ms: float = 0.0
    held: int = 0
    sent_ms: tuple[float, ...] = ()
    round: tuple[tuple[str, int], ...] = ()  # every user waiting, in the order their turns come, with a count

    def local(self, ms: float) -> float:
        """A Redis stamp on the local clock."""
        return self.at + (ms - self.now_ms) / 1000.0

    def blocked(self, until_local: float) -> Snapshot:
        """The same, held back until ``until_local`` too (a 429 said here before Redis has it)."""
        until_ms = self.now_ms + (until_local - self.at) * 1000.0
        return Snapshot(self.at, self.now_ms, max(self.blocked_ms, until_ms), self.held, self.sent_ms, self.round)

    def without(self, user: str) -> Snapshot:
        """The same with one of ``user``'s waiting tickets gone (it left here before the next step)."""
        turns = tuple((u, n - (u == user)) for u, n in self.round)
        return Snapshot(self.at, self.now_ms, self.blocked_ms, self.held, self.sent_ms,
                        tuple(t for t in turns if t[1] > 0))


@dataclass(frozen=True)
class StepReply:
    granted: str  # the ticket granted a slot ('' for none)
    head: str  # the ticket whose turn is next ('' when unknown after a grant)
    wait_s: float  # until the next slot opens, by the caller's margin
    refused: dict[str, int]  # ticket → the user's waiting count, for joins past the per-user cap
    reset: bool  # Redis had lost the record: the guard holds every grant for a window
    snapshot: Snapshot


def parse_step(reply: list[Any], at: float) -> StepReply:
    """:data:`pacing_scripts.STEP`'s reply, taken at ``at`` on the local clock."""
    granted, now_ms, blocked, held, sent, head, wait, refused, turns, reset = reply
    snapshot = Snapshot(at, float(now_ms), float(blocked), int(held),
                        tuple(map(float, sent.split(","))) if sent else (),
                        tuple(zip(turns[0::2], map(int, turns[1::2]), strict=True)))
    return StepReply(granted, head, float(wait) / 1000.0, dict(zip(refused[0::2], map(int, refused[1::2]),
                                                                     strict=True)), bool(reset), snapshot)


async def listen(store: RedisStore, channel: str, wake: Callable[[], None], keep: Callable[[], bool]) -> None:
    """Call ``wake`` on every message of ``channel`` while ``keep()``; resubscribe after Redis comes back."""
    backoff = BACKOFF_S[0]
    while keep():
        pubsub = store.redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            backoff = BACKOFF_S[0]
            while keep():
                if await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is not None:
                    wake()
        except REDIS_ERRORS:
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_S[1], backoff * 2)
        finally:
            with contextlib.suppress(*REDIS_ERRORS, RuntimeError):
                await pubsub.aclose()


async def retrying(call: Callable[[], Awaitable[object]], give_up: Callable[[], bool]) -> None:
    """``call()`` until it reaches Redis, with a short backoff, or until ``give_up()``."""
    backoff = BACKOFF_S[0]
    while True:
        try:
            await call()
            return
        except REDIS_ERRORS:
            if give_up():
                return
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_S[1], backoff * 2)
