"""How one attempt failed, as the retry decision needs it, and the error a person reads once the client stops.

An attempt (sending, polling, downloading) raises :class:`AttemptFailed`; the retry loop decides from it
whether to try again, and :func:`gave_up` turns the last one into the message shown.
"""

from __future__ import annotations

from collections.abc import Mapping

from flux_ui.client.retry import Failure
from flux_ui.errors import Billed, FluxError


class AttemptFailed(Exception):
    """One attempt's failure with what the retry decision needs; ``billed`` when the raiser knows
    better than the failure's kind (a task the service itself reports as failed)."""

    def __init__(self, error: FluxError, *, status: int | None = None, failure: Failure | None = None,
                 headers: Mapping[str, str] | None = None, billed: Billed | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.status = status
        self.failure = failure
        self.headers = headers or {}
        self.billed = billed


def gave_up(failed: AttemptFailed, attempts: int, asked_wait: float | None = None) -> FluxError:
    """The last failure as the person reads it: with what to do when answers kept arriving without a
    usable image (the parser's messages only say what was wrong), or when the service asked for a
    longer wait than flux-ui sits through, and how many attempts were made."""
    error = failed.error
    text = error.message
    if failed.failure in ("empty", "malformed"):
        text += " Try again in a moment."
    if asked_wait is not None:
        text += (f" The service asks to wait {asked_wait:.0f} s before trying again, longer than flux-ui waits "
                 f"inside one request; try again in {max(1, round(asked_wait / 60))} min.")
    if attempts > 1:
        text += f" (after {attempts} attempts)"
    error.args = (text,)
    return error


def billed_by(failed: AttemptFailed, accepted: bool) -> Billed:
    """What a failed attempt that reached the service costs: an error answer nothing, an accepted task
    its image, an answer that never arrived whole (or was unreadable) perhaps."""
    if accepted:
        return "yes"
    if failed.status is not None:
        return "no"
    return "maybe"
