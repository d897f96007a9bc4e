"""Billed images the outputs folder could not take: held in memory (bounded) with a download copy,
and saved into History once it takes images again, so a full disk loses no image that was paid for.

An image is held with its group record and its input images (the request already holds those bytes),
so the late save keeps what an on-time one would have kept."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flux_ui.client import GenerationResult
from flux_ui.durable import write_whole
from flux_ui.errors import NotSavedError
from flux_ui.history import History, _labelled, _mb, settings_of
from flux_ui.history_names import saved_name

log = logging.getLogger("flux_ui")
#: Images that could not be saved are kept in memory up to this many bytes (oldest dropped first,
#: with an error in the log). Few ever are: a low disk stops new requests before they are sent.
UNSAVED_LIMIT_BYTES = 512 * 1_048_576


def spill_folder() -> Path:
    """Where an image the outputs folder could not take is written to be offered for download: the
    folder Gradio serves files from (its temp folder, often another disk, or memory on tmpfs)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / "flux-ui-unsaved"


@dataclass(frozen=True)
class Unsaved:
    """A billed image the outputs folder could not take, kept in memory; ``path`` is its download copy."""

    id: str
    result: GenerationResult
    tab: str
    reason: str
    path: Path | None
    extra: Mapping[str, Any] | None = None
    inputs: tuple[bytes, ...] = ()

    @property
    def size(self) -> int:
        """The bytes it holds in memory: the image and its inputs."""
        return len(self.result.image) + sum(len(i) for i in self.inputs)


class UnsavedImages:
    """Billed images not in History, in memory (bounded), until a later save takes them along."""

    def __init__(self, limit_bytes: int = UNSAVED_LIMIT_BYTES) -> None:
        self.limit_bytes = limit_bytes
        self._items: deque[Unsaved] = deque()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[Unsaved]:
        with self._lock:
            return list(self._items)

    def keep(self, result: GenerationResult, tab: str, reason: str, extra: Mapping[str, Any] | None = None,
             inputs: Sequence[bytes] = ()) -> Unsaved:
        """Hold the image (with ``extra`` and its ``inputs``, for the late save) and write its download copy
        (``path`` None when that fails too)."""
        item_id = uuid.uuid4().hex[:12]
        name = saved_name(time.time(), item_id[:8], result.model, result.prompt, result.seed, result.format)
        path = spill_folder() / name  # the name a download of it gets
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_whole(path, _labelled(result.image, settings_of(result, tab, extra)))
        except OSError as err:
            log.error("could not write a download copy of an unsaved image to %s: %s", path.parent, err)
            path = None
        item = Unsaved(item_id, result, tab, reason, path, extra, tuple(inputs))
        with self._lock:
            self._items.append(item)
            while sum(i.size for i in self._items) > self.limit_bytes and len(self._items) > 1:
                dropped = self._items.popleft()
                log.error("dropped unsaved image %s (%s) from memory: over %s", dropped.id, dropped.result.prompt[:40],
                          _mb(self.limit_bytes))
        return item

    def forget(self, item: Unsaved) -> None:
        """Stop holding ``item`` (its file is on disk after all); its download copy stays."""
        with self._lock, contextlib.suppress(ValueError):
            self._items.remove(item)

    def flush(self, history: History) -> int:
        """Save what is held into History now that it takes images again; returns how many went in."""
        saved = 0
        for item in self.items():
            try:
                history.save(item.result, item.tab, item.extra, item.inputs)
            except NotSavedError as err:
                if err.placed is None:
                    break  # still no room: keep them all, try again after the next save
            with self._lock, contextlib.suppress(ValueError):
                self._items.remove(item)
            if item.path is not None:
                with contextlib.suppress(OSError):
                    item.path.unlink(missing_ok=True)
            saved += 1
        if saved:
            log.info("saved %d image(s) to History that could not be saved when they arrived", saved)
        return saved
