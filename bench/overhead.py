"""Client overhead: what flux-ui adds on top of the service's own time for one image.

The baseline is the least any client could do: post the same JSON body to the same emulator
endpoint with httpx and base64-decode the image. Both sides reuse one ``AsyncClient`` (the
project's client keeps one for its lifetime), run interleaved after a warm-up, and the
emulator adds no latency, so the ratio shows flux-ui's own work at its most visible.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from pathlib import Path

import httpx

from bench.common import Row, client_for, emulator, interleaved, median, ratio_row
from flux_ui.client.validation import GenerationRequest
from flux_ui.client.wire import build_request
from flux_ui.history import History
from flux_ui.runtime import Runtime
from flux_ui.ui.handlers import generate as app_generate

NAME = "client overhead"
MODEL = "FLUX.2-pro"
REQUEST = GenerationRequest(MODEL, "a lighthouse on a cliff at dusk, long exposure",
                            params={"width": 1024, "height": 1024, "seed": 7})


async def _measure(reps: int, warmup: int) -> dict[str, list[float]]:
    with emulator() as emu, tempfile.TemporaryDirectory(prefix="flux-bench-") as folder:
        client = client_for(emu)
        history = History(Path(folder))
        runtime = Runtime(client.settings, client, history)
        # The exact body the client sends, built once with the project's own functions.
        checked = client.validate(REQUEST)
        deployment = client.settings.deployments[MODEL]
        wire = build_request(deployment, checked.route, checked.prompt, checked.params, [],
                             api_version=client.settings.api_version,
                             image_api_path=client.settings.image_api_path, size=checked.size)
        headers = {**wire.headers, "Authorization": f"Bearer {emu.api_key}"}
        bare = httpx.AsyncClient(timeout=60.0, limits=httpx.Limits(max_connections=64,
                                                                   max_keepalive_connections=32))

        async def baseline() -> bytes:
            response = await bare.post(wire.url, params=wire.query, json=wire.json_body, headers=headers)
            response.raise_for_status()
            return base64.b64decode(response.json()["data"][0]["b64_json"])

        async def client_only() -> object:
            return await client.generate(REQUEST)

        async def with_saving() -> object:
            # The app's own handler: generate through the shared client, then History.save.
            return await app_generate(runtime, MODEL, REQUEST.prompt, REQUEST.params)

        try:
            return await interleaved({"baseline": baseline, "client": client_only, "saving": with_saving},
                                     reps, warmup)
        finally:
            await bare.aclose()
            await client.aclose()
            history.close()


def run(quick: bool = False) -> list[Row]:
    times = asyncio.run(_measure(reps=5 if quick else 60, warmup=1 if quick else 5))
    base = median(times["baseline"])
    return [
        ratio_row(NAME, "1024² FLUX.2-pro, client only", median(times["client"]), base, 1.10),
        ratio_row(NAME, "1024² FLUX.2-pro, with saving", median(times["saving"]), base, 1.30),
    ]
