"""Each deployment's requests in progress, capped at what it can send in time: the bound that lets the
generating endpoints run without Gradio's per-event worker limit, so one slow quota never holds up another.

Slots go round-robin by user (:mod:`flux_ui.fair_queue`), so "in time" depends on who else waits: one
more request from a person with nothing waiting goes after one of each other person's, not after all
of them, while a person with many waiting has everyone else's turns between theirs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import gradio as gr

from flux_ui.client import DEFAULT_DEADLINE_S
from flux_ui.fair_queue import FairQueue, cap_message
from flux_ui.identity import User, current_user
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime

#: The most requests one deployment may have in progress at once (waiting for its quota or running).
#: Each holds one of Gradio's workers, which every event shares: flux_ui.ui sizes them from this.
MAX_IN_PROGRESS = 64
#: Where the Blocks being built keeps its QuotaGate, for :func:`endpoint` to find.
_GATE = "_flux_ui_quota_gate"


class QuotaGate:
    """How many requests each deployment has in progress; beyond what it can serve in time, refused at once.

    A request waiting for its deployment's quota holds one of Gradio's workers, which all events
    share, so one caller queueing many requests on a slow quota (FLUX.2 [flex] at 5 RPM) would take
    the workers every other deployment's requests need. Each deployment may have as many requests in
    progress as it can send within the client's deadline (one still waiting then fails anyway), and
    at most :data:`MAX_IN_PROGRESS`; one more is refused, saying when to try again. With round-robin
    slots that is where one more request of *this* person would stand (:meth:`place`), and a person
    with ``FLUX_UI_USER_MAX_QUEUED`` requests already waiting there is refused too.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.busy: Counter[str] = Counter()
        self.by_user: Counter[tuple[str, str]] = Counter()  # (model, user id): the part of busy each person has

    @property
    def runtime(self) -> Runtime:
        return self._runtime

    def sendable(self, model: str) -> int:
        """The requests ``model``'s deployment can send within the client's deadline (at most MAX_IN_PROGRESS)."""
        status = self._runtime.client.pacing(model)
        if status is None:  # not paced here: the service's own limits apply
            return MAX_IN_PROGRESS
        sendable = int(DEFAULT_DEADLINE_S * status.quota.requests / status.quota.window_s)
        return max(1, min(MAX_IN_PROGRESS, sendable))

    def cap(self, model: str, user: User | None = None) -> int:
        """How many of one run's requests to ``model`` may wait at once (a grid's wave, for ``user``, by default
        the caller): as many as the deployment can send in time with the turns of the others waiting now
        between them, and no more than one person may have waiting there."""
        room, (counts, _) = self.sendable(model), self._counts(model)
        counts.pop((user or current_user()).id, None)
        wave = room
        while wave > 1 and wave + sum(min(n, wave) for n in counts.values()) > room:
            wave -= 1
        limit = self._max_queued()
        return min(wave, limit) if limit else wave

    def place(self, model: str, user: str) -> int:
        """Where one more request from ``user`` would stand in ``model``'s round (1: next).

        Each other person's requests count up to as many as ``user`` would then have (their turns come
        between ``user``'s); requests counted without a person (``busy`` set by hand) count in full.
        """
        counts, unattributed = self._counts(model)
        mine = counts.pop(user, 0) + 1
        return mine + sum(min(n, mine) for n in counts.values()) + unattributed

    def _counts(self, model: str) -> tuple[Counter[str], int]:
        """Each person's requests to ``model`` (in progress here, or waiting in its queue, whichever is more:
        a grid counts once here but waits cell by cell), and those counted here without a person."""
        counts: Counter[str] = Counter({u: n for (m, u), n in self.by_user.items() if m == model and n > 0})
        unattributed = max(0, self.busy[model] - sum(counts.values()))
        if (queue := self._queue(model)) is not None:
            for other in queue.users():
                counts[other] = max(counts[other], queue.waiting_of(other))
        return counts, unattributed

    @contextmanager
    def admitted(self, model: Any, user: User | None = None) -> Iterator[None]:
        """Count a request to ``model`` (for ``user``, by default the caller) while it runs; gr.Error (nothing
        sent) when its deployment is full, or the person already has their cap of requests waiting there.

        A model this installation does not serve passes: the client's validation names the problem.
        """
        if not isinstance(model, str) or model not in self._runtime.models:
            yield
            return
        who = (user or current_user()).id
        if self.busy[model] >= MAX_IN_PROGRESS or self.place(model, who) > self.sendable(model):
            raise gr.Error(self.refusal(model, who), title="Too many waiting", print_exception=False)
        queue, limit = self._queue(model), self._max_queued()
        if queue is not None and limit and (count := queue.waiting_of(who)) >= limit:
            raise gr.Error(f"{cap_message(count, limit, model)} Nothing was sent, so nothing is billed.",
                           title="Too many waiting", print_exception=False)
        self.busy[model] += 1
        self.by_user[(model, who)] += 1
        try:
            yield
        finally:
            self.busy[model] -= 1
            self.by_user[(model, who)] -= 1
            if self.by_user[(model, who)] <= 0:
                del self.by_user[(model, who)]

    @contextmanager
    def admitted_all(self, models: Sequence[str]) -> Iterator[None]:
        """:meth:`admitted` for each of several models at once (a comparison): all or none."""
        with ExitStack() as stack:
            for model in models:
                stack.enter_context(self.admitted(model))
            yield

    def refusal(self, model: str, user: str | None = None) -> str:
        """Why a request to ``model`` (from ``user``) is refused now, and when to try again."""
        name, count = MODELS[model].display_name, self.busy[model]
        status = self._runtime.client.pacing(model)
        if status is None:
            return (f"{count} requests are already in progress on {name}, as many as flux-ui runs at once on one "
                    "deployment. Nothing was sent: try again in a moment.")
        quota, cap = status.quota, self.sendable(model)
        again = max(status.next_slot_in, quota.window_s / quota.requests)
        tail = f"Nothing was sent: try again in about {_duration(again)}, or raise the deployment's tier in Foundry."
        mine = self.by_user[(model, user)] if user is not None else 0
        if mine and count > mine and count < MAX_IN_PROGRESS:  # others wait too: their turns come between these
            return (f"You already have {mine} request{'s' if mine != 1 else ''} in progress on {name}, and other "
                    f"people's requests take turns with yours: one more of yours would not be sent within the "
                    f"{DEFAULT_DEADLINE_S:.0f} s a request may wait ({quota.describe()}). {tail}")
        why = (f"as many as it can send in the {DEFAULT_DEADLINE_S:.0f} s a request may wait"
               if cap < MAX_IN_PROGRESS else "as many as flux-ui lets wait for one deployment")
        return f"{count} requests are already waiting for {name}'s quota, {quota.describe()}: {why}. {tail}"

    def _queue(self, model: str) -> FairQueue | None:
        board = getattr(self._runtime.client, "board", None)  # a test's stand-in client may have none
        return board.queue(model) if board is not None else None

    def _max_queued(self) -> int | None:
        board = getattr(self._runtime.client, "board", None)
        return getattr(board, "max_queued", None)


def quota_gate(demo: gr.Blocks) -> QuotaGate:
    """The QuotaGate of the Blocks a TabContext was made for."""
    gate = getattr(demo, _GATE, None)
    assert isinstance(gate, QuotaGate), "make a TabContext for this Blocks first"
    return gate


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
