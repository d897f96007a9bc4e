"""Fair share: how long one image waits while someone else's grid holds the deployment's queue, in slots.

User A asks for ``n`` images at once on one deployment whose quota (enforced by the emulator) sends one
request per slot; as A's first leaves, user B asks for one. With slots round-robin by user
(:mod:`flux_ui.fair_queue`), B's goes at the next slot; the baseline, measured in the same run, is the
first-come order a single queue gives (B asking as A: the same code with one user), where B waits for all
of A's. A's images must still all arrive, in the order A asked for them, with no 429.

A slot is the quota's interval plus the pacer's base margin (``window / requests + pacing_margin``).
A first asks for one image alone, so the deployment is busy when A's batch comes and every request of it
joins the queue before a slot opens (its first would otherwise go to whichever is ready first).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

from bench.common import Row, client_for, emulator, quotas_for
from flux_ui.client import GenerationRequest
from flux_ui.fair_queue import Ticket
from flux_ui.identity import User, acting_as
from flux_ui.pacing import Quota, pacing_margin

NAME = "fair share"
MODEL = "FLUX.2-pro"
A, B = User("a", "a"), User("b", "b")


@dataclass(frozen=True)
class Outcome:
    b_wait_slots: float  # from B's asking to B's slot, in slots
    throttled: int  # 429s the emulator answered
    failures: int
    out_of_order: int  # A's requests sent before one A asked for earlier


def _request(prompt: str, seed: int) -> GenerationRequest:
    return GenerationRequest(MODEL, prompt, params={"width": 512, "height": 512, "seed": seed})


async def _scenario(quota: Quota, n: int, fair: bool) -> Outcome:
    quotas = quotas_for(tight={MODEL: quota})
    slot_s = quota.window_s / quota.requests + pacing_margin(quota)
    with emulator(quotas=quotas) as emu:
        client = client_for(emu, quotas)
        pacer = client._pacers[MODEL]
        granted: dict[str, float] = {}
        grant = pacer.queue.granted

        def timed(ticket: Ticket) -> None:
            granted[f"{ticket.user}:{ticket.label}"] = time.monotonic()
            grant(ticket)

        pacer.queue.granted = timed  # type: ignore[method-assign]
        try:
            with acting_as(A):
                await client.generate(_request("a, earlier", 0))
                batch = [asyncio.ensure_future(client.generate(_request(f"a {i}", i + 1))) for i in range(n)]
            while len(emu.requests()) < 2:
                await asyncio.sleep(0.002)
            asked = time.monotonic()
            with acting_as(B if fair else A):
                one = asyncio.ensure_future(client.generate(_request("b", 99)))
            results = await asyncio.gather(*batch, one, return_exceptions=True)
        finally:
            await client.aclose()
        log = emu.requests()
    b_slot = granted[f"{(B if fair else A).id}:b"]
    seeds = [e["params"].get("seed") for e in log if e["prompt"].startswith("a ")]
    return Outcome((b_slot - asked) / slot_s, [e["status"] for e in log].count(429),
                   sum(isinstance(r, BaseException) for r in results),
                   sum(later < earlier for earlier, later in itertools.pairwise(seeds)))


def run(quick: bool = False) -> list[Row]:
    quota, n = (Quota(1, 0.25), 6) if quick else (Quota(1, 0.5), 24)
    fair = asyncio.run(_scenario(quota, n, fair=True))
    first_come = asyncio.run(_scenario(quota, n, fair=False))
    label = f"1 image asked while another user's {n} wait, quota 1/{quota.window_s:g} s"
    return [
        Row(NAME, f"{label}: its wait in slots (baseline: first come first served)", fair.b_wait_slots, "slots",
            first_come.b_wait_slots, "≤ 1.5 slots", fair.b_wait_slots <= 1.5),
        Row(NAME, f"{label}: the other user's sent out of the order asked", fair.out_of_order, "count", None, "0",
            fair.out_of_order == 0),
        Row(NAME, f"{label}: 429 responses received", fair.throttled, "count", None, "0", fair.throttled == 0),
        Row(NAME, f"{label}: failed requests", fair.failures, "count", None, "0", fair.failures == 0),
    ]
