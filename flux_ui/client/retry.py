"""Whether to try a request again, and how long to wait first (contract §5).

One pure function, :func:`decide_retry`, holds the whole policy so it can be tested alone;
:func:`retry_line` is how a retry is announced, once. Generation costs money and is not
idempotent: a retry is only for a request the service did not complete, or completed without
giving us the image.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MAX_RETRIES = 2
#: The longest server-requested wait flux-ui sits through inside one request. A longer
#: one is a quota wall: the person is told when to come back instead.
RETRY_AFTER_CAP_S = 60.0
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
JITTER = 0.25

RETRYABLE_STATUSES = frozenset({408, 409, 429})
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 422})

#: Failures without a usable status: the request never reached the service ("connect"),
#: the answer was lost mid-way ("dropped"), a 200 without an image ("empty"), an answer
#: that could not be read ("malformed"), or no answer in time ("timeout").
Failure = Literal["connect", "dropped", "empty", "malformed", "timeout"]

_RETRY_IN_MESSAGE = re.compile(r"retry after (\d+(?:\.\d+)?) second", re.IGNORECASE)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    wait: float
    reason: str
    # The service asked for a wait above the cap: its quota is spent for now.
    quota_wall: bool = False


def parse_retry_after(headers: Mapping[str, str], message: str | None = None, now: float | None = None) -> float | None:
    """The wait the service asked for, in seconds, from headers or the error text."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    if (value := lowered.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - (time.time() if now is None else now))
    if message and (m := _RETRY_IN_MESSAGE.search(message)):
        return float(m.group(1))
    return None


def backoff(retries_done: int, rand: float) -> float:
    """Exponential backoff with up to 25 % jitter taken off; ``rand`` is in [0, 1)."""
    base = min(INITIAL_BACKOFF_S * 2**retries_done, MAX_BACKOFF_S)
    return base * (1 - JITTER * rand)


def decide_retry(
    *,
    retries_done: int,
    status: int | None = None,
    failure: Failure | None = None,
    headers: Mapping[str, str] | None = None,
    message: str | None = None,
    rand: float = 0.0,
    time_left: float = float("inf"),
    max_retries: int = MAX_RETRIES,
    cap: float = RETRY_AFTER_CAP_S,
    now: float | None = None,
) -> RetryDecision:
    """Decide about one failed attempt.

    ``status`` is the HTTP status of an error answer; ``failure`` names a failure without
    one. ``time_left`` is what remains of the request's deadline.
    """
    headers = headers or {}
    should = {k.lower(): v for k, v in headers.items()}.get("x-should-retry")
    if status is not None:
        if should == "false":
            return RetryDecision(False, 0.0, "the service said not to retry")
        if status in NEVER_RETRY_STATUSES and should != "true":
            return RetryDecision(False, 0.0, f"HTTP {status} will not change on a retry")
        if not (status in RETRYABLE_STATUSES or status >= 500 or should == "true"):
            return RetryDecision(False, 0.0, f"HTTP {status} is not retryable")
        reason = f"{status} from the service"
    elif failure == "timeout":
        return RetryDecision(False, 0.0, "no answer within the deadline; the service may still be working on it")
    elif failure is not None:
        reason = {
            "connect": "could not connect",
            "dropped": "the connection dropped before the answer arrived",
            "empty": "the service answered without an image",
            "malformed": "the answer could not be read",
        }[failure]
    else:
        raise ValueError("decide_retry needs a status or a failure")

    if retries_done >= max_retries:
        return RetryDecision(False, 0.0, f"{reason}; gave up after {retries_done + 1} attempts")

    asked = parse_retry_after(headers, message, now) if status is not None else None
    if asked is not None and asked > cap:
        # Only a 429's wait is a spent quota; a 503's is an outage the service expects to last.
        return RetryDecision(False, asked, f"{reason}; the service asks to wait {asked:.0f} s",
                             quota_wall=status == 429)
    wait = asked if asked is not None and asked > 0 else backoff(retries_done, rand)
    if wait >= time_left:
        return RetryDecision(False, wait, f"{reason}; waiting {wait:.1f} s would pass the deadline")
    return RetryDecision(True, wait, reason)


def retry_line(reason: str, wait_s: float, attempt: int, attempts: int) -> str:
    """What a person reads while a retry waits, said once, the client's event and the status line alike:
    "503 from the service; retrying in 0.8 s, attempt 3 of 3". ``attempt`` is the one about to be sent,
    ``attempts`` the most there will be (a deadline may end them sooner)."""
    return f"{reason}; retrying in {wait_s:.1f} s, attempt {attempt} of {attempts}"


def counted_down(line: str, wait_s: float, left_s: float) -> str:
    """A :func:`retry_line` with the wait still left in place of the whole wait (the status line ticks);
    any other text is returned as it is."""
    return line.replace(f"retrying in {wait_s:.1f} s", f"retrying in {left_s:.1f} s", 1)
