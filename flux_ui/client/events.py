"""Progress events: the stages a request passes through, and what a waiting person is told at each.

:class:`Progress` hands one generate call's events to its callback, timed from the click; a broken
callback is logged and never fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("flux_ui.client")

Stage = Literal["preparing", "paced", "sent", "retrying", "polling", "downloading", "overdue", "done"]
#: Stages at which a request has been handed to the service (or its image is here): stopping the
#: wait then must not cancel the exchange, which is billed either way.
COMMITTED_STAGES: frozenset[Stage] = frozenset({"sent", "polling", "downloading", "overdue", "done"})


@dataclass(frozen=True)
class ProgressEvent:
    """What a waiting person sees: where the request is and for how long."""

    stage: Stage
    message: str
    attempt: int
    elapsed_s: float
    wait_s: float = 0.0


class Progress:
    """One generate call's events, timed from its start and handed to its callback (if any)."""

    def __init__(self, callback: Callable[[ProgressEvent], None] | None, clock: Callable[[], float],
                 start: float) -> None:
        self._callback = callback
        self._clock = clock
        self._start = start

    def emit(self, stage: Stage, message: str, attempt: int, wait_s: float = 0.0) -> None:
        if self._callback is None:
            return
        try:
            self._callback(ProgressEvent(stage, message, attempt, self._clock() - self._start, wait_s))
        except Exception:  # a broken progress display must not fail the request
            log.exception("progress callback failed")
