"""Each deployment's requests in progress, capped at what it can send in time: the bound that lets the
generating endpoints run without Gradio's per-event worker limit, so one slow quota never holds up another."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import gradio as gr

from flux_ui.client import DEFAULT_DEADLINE_S
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
    at most :data:`MAX_IN_PROGRESS`; one more is refused, saying when to try again.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.busy: Counter[str] = Counter()

    def cap(self, model: str) -> int:
        """The requests ``model``'s deployment may have in progress at once."""
        status = self._runtime.client.pacing(model)
        if status is None:  # not paced here: the service's own limits apply
            return MAX_IN_PROGRESS
        sendable = int(DEFAULT_DEADLINE_S * status.quota.requests / status.quota.window_s)
        return max(1, min(MAX_IN_PROGRESS, sendable))

    @contextmanager
    def admitted(self, model: Any) -> Iterator[None]:
        """Count a request to ``model`` while it runs; gr.Error (nothing sent) when its deployment is full.

        A model this installation does not serve passes: the client's validation names the problem.
        """
        if not isinstance(model, str) or model not in self._runtime.models:
            yield
            return
        if self.busy[model] >= self.cap(model):
            raise gr.Error(self.refusal(model), title="Too many waiting", print_exception=False)
        self.busy[model] += 1
        try:
            yield
        finally:
            self.busy[model] -= 1

    @contextmanager
    def admitted_all(self, models: Sequence[str]) -> Iterator[None]:
        """:meth:`admitted` for each of several models at once (a comparison): all or none."""
        with ExitStack() as stack:
            for model in models:
                stack.enter_context(self.admitted(model))
            yield

    def refusal(self, model: str) -> str:
        """Why a request to ``model`` is refused now, and when to try again."""
        name, count = MODELS[model].display_name, self.busy[model]
        status = self._runtime.client.pacing(model)
        if status is None:
            return (f"{count} requests are already in progress on {name}, as many as flux-ui runs at once on one "
                    "deployment. Nothing was sent: try again in a moment.")
        quota, cap = status.quota, self.cap(model)
        why = (f"as many as it can send in the {DEFAULT_DEADLINE_S:.0f} s a request may wait"
               if cap < MAX_IN_PROGRESS else "as many as flux-ui lets wait for one deployment")
        again = max(status.next_slot_in, quota.window_s / quota.requests)
        return (f"{count} requests are already waiting for {name}'s quota, {quota.describe()}: {why}. Nothing was "
                f"sent: try again in about {_duration(again)}, or raise the deployment's tier in Foundry.")


def quota_gate(demo: gr.Blocks) -> QuotaGate:
    """The QuotaGate of the Blocks a TabContext was made for."""
    gate = getattr(demo, _GATE, None)
    assert isinstance(gate, QuotaGate), "make a TabContext for this Blocks first"
    return gate


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
