"""Compare fan-out: four models asked at once should take as long as the slowest one, not the sum.

Each model's deployment gets the same emulator latency (1 s; shorter in quick mode). The
baseline is the slowest of the four requests each measured alone, in the same run; the
measure is the wall time of four ``client.generate`` calls under ``asyncio.gather``, as the
Compare tab makes them.
"""

from __future__ import annotations

import asyncio

from bench.common import Row, client_for, emulator, median, ratio_row, time_once
from flux_ui.client.validation import GenerationRequest

NAME = "compare fan-out"
MODELS = ("FLUX.2-pro", "FLUX.2-flex", "FLUX.1-Kontext-pro", "FLUX-1.1-pro")
PROMPT = "a red fox in an autumn forest, morning light"


def _request(model: str) -> GenerationRequest:
    return GenerationRequest(model, PROMPT, params={"seed": 11})


async def _measure(latency_s: float, reps: int) -> tuple[list[float], list[float]]:
    with emulator({m: latency_s for m in MODELS}) as emu:
        client = client_for(emu)
        try:
            for model in MODELS:  # warm-up: connections open, every code path hot
                await client.generate(_request(model))
            singles: list[float] = []
            fanouts: list[float] = []
            for _ in range(reps):
                alone = [await time_once(lambda m=m: client.generate(_request(m))) for m in MODELS]
                singles.append(max(alone))
                fanouts.append(await time_once(lambda: asyncio.gather(*(client.generate(_request(m))
                                                                         for m in MODELS))))
            return singles, fanouts
        finally:
            await client.aclose()


def run(quick: bool = False) -> list[Row]:
    latency = 0.2 if quick else 1.0
    singles, fanouts = asyncio.run(_measure(latency, reps=1 if quick else 5))
    return [ratio_row(NAME, f"4 models at once ({latency:g} s latency each) vs slowest alone",
                      median(fanouts), median(singles), 1.15)]
