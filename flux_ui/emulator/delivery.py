"""Results handed out by URL: signed, expiring download links and BFL-style polling tasks.

The BFL-native flow (contract §2 [open]) and ``url`` results on the Image API both hand the
client a link instead of bytes. The contract describes those links as signed and valid about
ten minutes, to be downloaded at once; the emulator's links behave that way (expiry in the
``se`` query parameter, an HMAC in ``sig``, 403 when either is wrong), so a client that
dawdles, or forgets to download, fails here too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

DELIVERY_PREFIX = "/_emulator/delivery/"
POLLING_PATH = "/v1/get_result"

TaskStatus = Literal["Pending", "Ready", "Request Moderated"]


class ResultEnding(Enum):
    """How a generation's result ends up for its caller: at most one of these shapes it."""

    READY = "ready"  # the image, as asked
    EMPTY = "empty"  # an "empty" fault: a success with no image in it (polling: Ready, but no sample)
    EXPIRED_URL = "expired_url"  # an "expire_url" fault: the result link is dead on arrival
    MODERATED = "moderated"  # refused by the content filter (polling: Request Moderated)


@dataclass(frozen=True)
class StoredResult:
    data: bytes
    content_type: str
    extension: str
    deployment: str = ""  # whose result: faults on "delivery" are keyed like every other fault
    model_id: str = ""


class ResultStore:
    """Recent results by id, with signing; bounded so a long benchmark cannot fill memory."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._results: OrderedDict[str, StoredResult] = OrderedDict()
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()

    def put(self, data: bytes, content_type: str, extension: str, deployment: str = "", model_id: str = "") -> str:
        result_id = uuid.uuid4().hex
        with self._lock:
            self._results[result_id] = StoredResult(data, content_type, extension, deployment, model_id)
            while len(self._results) > self._limit:
                self._results.popitem(last=False)
        return result_id

    def get(self, result_id: str) -> StoredResult | None:
        with self._lock:
            return self._results.get(result_id)

    def clear(self) -> None:
        with self._lock:
            self._results.clear()

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_path(self, result_id: str, expires_at: float) -> str:
        """The download path and query for a result, valid until ``expires_at`` (unix time)."""
        result = self.get(result_id)
        extension = result.extension if result else "bin"
        name = f"{result_id}.{extension}"
        expires = int(expires_at)
        return f"{DELIVERY_PREFIX}{name}?se={expires}&sig={self._signature(name, expires)}"

    def check(self, name: str, se: str | None, sig: str | None, now: float | None = None) -> str | None:
        """None when the link is genuine and live; otherwise the reason it is refused."""
        if not se or not sig or not se.isdigit():
            return "the link has no valid signature"
        if not hmac.compare_digest(self._signature(name, int(se)), sig):
            return "the signature does not match"
        if int(se) < (time.time() if now is None else now):
            return "the link has expired"
        return None


@dataclass
class PollingTask:
    """One BFL-style task: Pending for a few polls, then its final status."""

    id: str
    deployment: str
    model_id: str
    prompt: str
    seed: int | None
    pending_polls: int
    result_id: str | None = None
    ending: ResultEnding = ResultEnding.READY
    created: float = field(default_factory=time.time)
    polls: int = 0
    ready_at: float | None = None
    sample_expires_at: float | None = None

    @property
    def final_status(self) -> TaskStatus:
        """What the task shows once its pending polls are done."""
        return "Request Moderated" if self.ending is ResultEnding.MODERATED else "Ready"


class TaskBook:
    """Polling tasks by id, bounded like the results they point at."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: OrderedDict[str, PollingTask] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, task: PollingTask) -> None:
        with self._lock:
            self._tasks[task.id] = task
            while len(self._tasks) > self._limit:
                self._tasks.popitem(last=False)

    def poll(self, task_id: str, ttl_s: float) -> tuple[PollingTask, TaskStatus] | None:
        """Count one poll and say what the task shows now; None for an unknown id."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return None
            task.polls += 1
            if task.polls <= task.pending_polls:
                return task, "Pending"
            if task.ready_at is None:
                task.ready_at = time.time()
                # The link's life starts when the result is ready; an expire_url fault backdates it.
                expired = task.ending is ResultEnding.EXPIRED_URL
                task.sample_expires_at = task.ready_at - 1 if expired else task.ready_at + ttl_s
            return task, task.final_status

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()


def new_task_id() -> str:
    return str(uuid.uuid4())
