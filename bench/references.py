"""References: ten 6000×4000 camera JPEGs to FLUX.2-flex, prepared without freezing the app.

The originals are made with Pillow from gradients plus noise and saved at quality 90, so
they are as hard to compress as photos (a flat test card would shrink unrealistically).
Measured with the project's own ``prepare_references`` (worker threads) under a ticker task
that records the longest event-loop gap, and then through ``client.generate`` with a
transport that counts the bytes actually put on the wire.

The per-image baseline is ``prepare_reference`` on one image run directly, so the ratio
shows what running ten at once through the thread pool costs per image on this machine.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence

import httpx
import numpy as np
from PIL import Image

from bench.common import LoopStallMeter, Row, client_for, emulator, median
from flux_ui.client.validation import GenerationRequest
from flux_ui.images import prepare_reference, prepare_references
from flux_ui.registry import MODELS

NAME = "references"
MODEL = "FLUX.2-flex"
STALL_LIMIT_S = 0.050
BYTES_LIMIT = 0.30


def make_photo(width: int, height: int, seed: int) -> bytes:
    """A JPEG (quality 90) of smooth colour gradients under fine grain, like a noisy photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    channels = [127 + 90 * np.sin(x / (width / (2 + c)) + y / (height / (1 + c)) + phase[c]) for c in range(3)]
    base = np.stack(channels, axis=-1)
    grain = rng.normal(0.0, 12.0, (height, width, 3)).astype(np.float32)
    pixels = np.clip(base + grain, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes requests to a real transport and adds up the request bodies' bytes."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += len(await request.aread())
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _measure(originals: Sequence[bytes], reps: int) -> dict[str, float]:
    max_pixels = MODELS[MODEL].max_input_pixels
    # Baseline: one image prepared directly, no event loop or thread pool involved.
    single = median([_timed_direct(originals[i % len(originals)], max_pixels) for i in range(3)])
    stalls: list[float] = []
    durations: list[float] = []
    for _ in range(reps):  # a stall is one sample's maximum: repeat, and report the median run
        async with LoopStallMeter() as meter:
            start = time.perf_counter()
            prepared = await prepare_references(originals, max_pixels=max_pixels, multiple=16)
            durations.append(time.perf_counter() - start)
        stalls.append(meter.max_stall_s)
    within = sum(p.width * p.height <= (max_pixels or 0) for p in prepared)
    with emulator() as emu:
        transport = CountingTransport()
        client = client_for(emu, transport=transport)
        try:
            async with LoopStallMeter() as send_meter:
                await client.generate(GenerationRequest(MODEL, "a collage of these photos",
                                                        references=tuple(originals), params={"seed": 3}))
        finally:
            await client.aclose()
    return {
        "single": single, "per_image": median(durations) / len(originals), "stall": median(stalls),
        "worst_stall": max(stalls),
        "within": within, "prepared_bytes": sum(len(p.data) for p in prepared), "sent": transport.sent,
        "original_bytes": sum(len(o) for o in originals), "send_stall": send_meter.max_stall_s,
    }


def _timed_direct(data: bytes, max_pixels: int | None) -> float:
    start = time.perf_counter()
    prepare_reference(data, index=1, max_pixels=max_pixels, multiple=16)
    return time.perf_counter() - start


def run(quick: bool = False) -> list[Row]:
    count, (width, height) = (2, (2400, 1800)) if quick else (10, (6000, 4000))
    originals = [make_photo(width, height, seed) for seed in range(count)]
    m = asyncio.run(_measure(originals, reps=1 if quick else 5))
    label = f"{count} × {width}×{height} JPEG q90"
    sent_share = 100 * m["sent"] / m["original_bytes"]
    return [
        Row(NAME, f"{label}: preparation per image, {count} at once (baseline: one alone)", m["per_image"], "s",
            m["single"]),
        Row(NAME, f"{label}: within {MODEL}'s 4 MP input limit", m["within"], "count", None, f"{count}",
            m["within"] == count),
        Row(NAME, f"{label}: request bytes sent vs originals' {m['original_bytes'] / 1e6:.1f} MB (base64 incl.)",
            sent_share, "%", None, "≤ 30 %", sent_share <= 100 * BYTES_LIMIT, size_dependent=True),
        Row(NAME, f"{label}: prepared image bytes vs originals", 100 * m["prepared_bytes"] / m["original_bytes"],
            "%"),
        Row(NAME, f"{label}: longest event-loop stall, preparing (median of runs; worst "
                  f"{m['worst_stall'] * 1000:.0f} ms)", m["stall"], "s", None, "≤ 50 ms", m["stall"] <= STALL_LIMIT_S,
            size_dependent=True),
        Row(NAME, f"{label}: longest event-loop stall, whole generate", m["send_stall"], "s", None, "≤ 50 ms",
            m["send_stall"] <= STALL_LIMIT_S, size_dependent=True),
    ]
