"""Bounded memory for whatever a stranger uploads: the capped inflate, the decode gate, the mmap threshold.

Everything compressed that flux-ui unpacks goes through :func:`inflate_capped` (Pillow's own
text limits are set to the same cap), and a reference's pixels are decoded a few at a time
across the whole process (:data:`DECODE_SLOTS`, :data:`DECODE_BUDGET_BYTES`). Importing this
module has glibc hand big freed buffers straight back to the OS (:func:`_return_big_buffers`).
"""

from __future__ import annotations

import ctypes
import sys
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, PngImagePlugin

#: Most bytes any compressed block flux-ui reads may unpack to (PNG text here; PNG text and ICC
#: profiles in Pillow). flux-ui writes its label uncompressed, and the longest prompt validation
#: lets through (32,000 tokens at up to 128 bytes each: 4 MB), JSON-escaped, still fits; a bomb
#: is stopped at a size that, decoded once more as text, stays far below the 50 MB budget.
MAX_INFLATED_BYTES = 8 * 1024 * 1024
#: Reference decodes running at once across the whole process: one 64 MP decode holds 256 MB,
#: so three 10-image edits must not decode 30 at once. Two keeps both cores of a small host busy.
DECODE_SLOTS = 2
#: Estimated bytes of pixels those decodes may hold together; a decode needing more runs alone.
#: Two 64 MP PNGs (each ~0.3 GB at peak) then take turns, while small ones share.
DECODE_BUDGET_BYTES = 512 * 1024 * 1024

# Pillow unpacks PNG text and ICC profiles itself (when references and results are opened):
# the same cap per block, and at most two blocks' worth per image.
PngImagePlugin.MAX_TEXT_CHUNK = MAX_INFLATED_BYTES
PngImagePlugin.MAX_TEXT_MEMORY = 2 * MAX_INFLATED_BYTES


class InflateLimitError(ValueError):
    """Compressed data that unpacks to more than flux-ui will hold (a possible decompression bomb)."""


def inflate_capped(data: bytes | memoryview, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib-inflate ``data``, refusing (InflateLimitError) output over ``limit`` bytes.

    ``zlib.decompress`` has no bound: deflate packs about 1,000:1, so a 3 MB upload unpacks to
    gigabytes. This stops once ``limit`` + 1 bytes exist, whatever the ratio. A stream cut short
    is a ValueError too, as zlib.decompress would raise.
    """
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"damaged compressed data ({exc})") from None
    if len(out) > limit:
        raise InflateLimitError(f"compressed data unpacks to more than {limit:,} bytes")
    if not inflater.eof:
        raise ValueError("the compressed data is cut short")
    return out


class _DecodeGate:
    """Admits reference decodes in arrival order while DECODE_SLOTS and DECODE_BUDGET_BYTES allow.

    Process-wide, and waited on in the worker threads that prepare references, never on an event
    loop. The limits are read from this module at each admission, so they can be changed live.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self.running = 0
        self.held = 0

    @contextmanager
    def admit(self, cost: int) -> Iterator[None]:
        """Hold a slot and ``cost`` bytes of the budget (all of it, if cost is more) while decoding."""
        cost = min(cost, DECODE_BUDGET_BYTES)  # alone, any decode fits: it must run some time
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                self._cond.wait_for(lambda: self._queue[0] is ticket and self._fits(cost))
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit beside this one
            self.running += 1
            self.held += cost
        try:
            yield
        finally:
            with self._cond:
                self.running -= 1
                self.held -= cost
                self._cond.notify_all()

    def _fits(self, cost: int) -> bool:
        return self.running < DECODE_SLOTS and self.held + cost <= DECODE_BUDGET_BYTES


DECODE_GATE = _DecodeGate()


def decode_cost(img: Image.Image, factor: int) -> int:
    """Estimated peak bytes of preparing ``img`` decoded at its current (draft) size.

    The decoded buffer (Pillow keeps most modes at 4 bytes a pixel; WebP's decoder holds its
    canvas and a raw copy beside the image), plus two copies at the reduced size.
    """
    pixels = img.width * img.height
    depth = 1 if img.mode in ("1", "L", "P") else 2 if img.mode.startswith("I;16") else 4
    if img.format == "WEBP":
        depth = 12
    return pixels * depth + 2 * pixels * 4 // factor**2


#: Freed buffers at least this big go straight back to the OS (see _return_big_buffers).
_MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def _return_big_buffers() -> bool:
    """Have glibc give buffers of _MMAP_THRESHOLD bytes or more their own mappings; True if it took.

    By default glibc raises that threshold as big blocks are freed (up to 32 MB), after which
    Pillow's 16 MB pixel blocks come from per-thread arenas, where one worker thread cannot
    reuse what another freed: ten 64 MP references kept ~3 GB after the edit, and peaks grew
    with every worker thread that had decoded once. malloc_trim(0) after a batch brought the
    "after" level down but left each thread arena's top (up to 64 MB) in place and cost up to
    0.1 s a call under an arena lock; a fixed threshold frees each big buffer as it is
    released. Process-wide by nature; a no-op (False) without glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt  # glibc only: musl has none
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))


_return_big_buffers()  # once, when flux_ui.images is first imported: before any reference is decoded
