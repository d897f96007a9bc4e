"""No head-of-line blocking: one deployment's waiting requests never hold back another's.

A request waiting for its deployment's quota holds one of Gradio's workers. The generating
endpoints have no per-event limit, each deployment has at most as many requests in progress as
it can send in time (the QuotaGate, refusing one more at once), and Gradio has workers for every
deployment's gate at once.
"""

from __future__ import annotations

import statistics
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio_client import Client

from app_fixtures import AppUnderTest, running_app
from flux_ui.pacing import PacerStatus, Quota
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.ui import EVENT_LIMIT, WORKERS, build_demo
from flux_ui.ui.quota_gate import _GATE, MAX_IN_PROGRESS, QuotaGate

FLEX = "FLUX.2-flex"
FLOOD = 64
#: FLUX.2 [flex] at one request per 4 s: every one of the flood is let in (300 s / 4 s > 64), and
#: the flood would take over four minutes to drain.
TIGHT = {FLEX: Quota(1, 4.0)}


def fake_gate(quota: Quota | None, next_slot_in: float = 0.0) -> QuotaGate:
    """A gate over a fake runtime whose one deployment, FLUX.2 [flex], has this quota (None: not paced)."""
    status = None if quota is None else PacerStatus(quota, 0, next_slot_in, 0)
    runtime = SimpleNamespace(models=(FLEX,), client=SimpleNamespace(pacing=lambda model: status))
    return QuotaGate(runtime)  # type: ignore[arg-type]


def generate_fn(demo: gr.Blocks) -> Any:
    return next(f for f in demo.fns.values() if f.api_name == "generate")


def join(http: httpx.Client, url: str, fn: Any, model: str) -> None:
    """Put one /generate call in the app's queue, as the page does, without waiting for its answer."""
    data = [model, "a fox in the snow", True, *[None] * (len(fn.inputs) - 3)]
    answer = http.post(f"{url}/gradio_api/queue/join",
                       json={"data": data, "fn_index": fn._id, "session_hash": uuid.uuid4().hex[:10]})
    assert answer.status_code == 200, answer.text


def timed(client: Client, model: str) -> float:
    """Seconds for one /generate call to be answered (at most 15: a blocked request fails, not hangs)."""
    start = time.monotonic()
    job = client.submit(model=model, prompt="a lighthouse at dusk", api_name="/generate")
    image, _, message, _ = job.result(timeout=15)
    assert image and not message, message
    return time.monotonic() - start


def in_app(app: AppUnderTest) -> int:
    """Events the app's queue holds: those handled now and those waiting for a worker."""
    queue = app.demo._queue
    return queue.get_active_worker_count() + len(queue)


def sent(app: AppUnderTest, model: str) -> int:
    return sum(r["model"] == model for r in app.emulator.requests())


OTHERS = ("FLUX.1-schnell", "FLUX.2-pro")


def test_a_flood_on_one_deployment_does_not_delay_another(tmp_path: Path) -> None:
    with running_app(tmp_path / "outputs", quotas=TIGHT) as app, httpx.Client(timeout=10) as http:
        client = Client(app.url, verbose=False, ssl_verify=False)
        for other in OTHERS:
            timed(client, other)  # warm up
        alone = {m: statistics.median(timed(client, m) for _ in range(3)) for m in OTHERS}
        fn = generate_fn(app.demo)
        for _ in range(FLOOD):
            join(http, app.url, fn, FLEX)
        deadline = time.monotonic() + 10
        while in_app(app) + sent(app, FLEX) < FLOOD and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_app(app) + sent(app, FLEX) >= FLOOD  # every one of the flood is in
        flooded = {m: max(timed(client, m) for _ in range(2)) for m in OTHERS}
        pacer = app.runtime.client.pacing(FLEX)
        assert pacer is not None and pacer.waiting > EVENT_LIMIT  # the flood waits for flex's quota, side by side
        print(f"alone {alone}, behind {FLOOD} FLUX.2 [flex] requests {flooded}")
        for m in OTHERS:
            assert flooded[m] <= alone[m] + 1.0, f"{m}: {flooded[m]:.2f} s behind the flood, {alone[m]:.2f} s alone"


def test_the_gate_refuses_beyond_what_a_deployment_can_send_in_time() -> None:
    gate = fake_gate(Quota.from_rpm(5), next_slot_in=7.0)  # 1 per 12 s: 25 in the client's 300 s deadline
    assert gate.cap(FLEX) == 25
    with ExitStack() as held:
        for _ in range(25):
            held.enter_context(gate.admitted(FLEX))
        with pytest.raises(gr.Error) as refused, gate.admitted(FLEX):
            pass
        message = refused.value.message
        assert message.startswith("25 requests are already waiting for FLUX.2 [flex]'s quota, 1 per 12 s (5 RPM)")
        assert "as many as it can send in the 300 s a request may wait" in message
        assert "Nothing was sent: try again in about 12 s" in message
        assert gate.busy[FLEX] == 25  # the refused one took no place
    assert gate.busy[FLEX] == 0  # every place is given back when its request ends
    with gate.admitted(FLEX):
        assert gate.busy[FLEX] == 1


def test_the_cap_is_bounded_and_unknown_models_pass() -> None:
    assert fake_gate(Quota(1000, 1.0)).cap(FLEX) == MAX_IN_PROGRESS
    assert fake_gate(None).cap(FLEX) == MAX_IN_PROGRESS
    assert fake_gate(Quota(1, 600.0)).cap(FLEX) == 1  # even a quota slower than the deadline lets one wait
    gate = fake_gate(Quota(1, 600.0))
    with gate.admitted("FLUX.9"), gate.admitted(["not", "a", "model"]), gate.admitted(FLEX):
        assert dict(gate.busy) == {FLEX: 1}  # the client's validation names what is wrong with the others
    full = fake_gate(None)
    full.busy[FLEX] = MAX_IN_PROGRESS
    with pytest.raises(gr.Error, match=r"64 requests are already in progress on FLUX.2 \[flex\]"), \
            full.admitted(FLEX):
        pass


@pytest.mark.parametrize("api_name", ["generate", "edit", "kontext"])
async def test_every_generating_endpoint_passes_the_gate(runtime: Runtime, api_name: str) -> None:
    demo = build_demo(runtime)
    fn = next(f for f in demo.fns.values() if f.api_name == api_name)
    assert fn.concurrency_limit is None  # no first-come queue across models in front of it
    gate = getattr(demo, _GATE)
    model = "FLUX.1-Kontext-pro" if api_name == "kontext" else FLEX
    gate.busy[model] = gate.cap(model)
    before = len(runtime.emulator.requests())  # type: ignore[union-attr]
    with pytest.raises(gr.Error, match="requests are already waiting for"):
        async for _ in fn.fn(model, "a fox", None, *[None] * (len(fn.inputs) - 3)):
            pass
    assert len(runtime.emulator.requests()) == before  # type: ignore[union-attr]
    assert gate.busy[model] == gate.cap(model)


def test_the_launched_app_has_workers_for_every_gate_at_once(tmp_path: Path) -> None:
    assert MAX_IN_PROGRESS * len(MODELS) + 2 * EVENT_LIMIT <= WORKERS  # and Compare's two listeners beside
    with running_app(tmp_path / "outputs") as app:
        assert app.demo._queue.max_thread_count == WORKERS
        assert app.demo._queue.max_size == 256
        limits = {f.api_name: f.concurrency_limit for f in app.demo.fns.values()
                  if f.api_name in ("generate", "edit", "kontext", "history")}
        assert limits == {"generate": None, "edit": None, "kontext": None, "history": "default"}  # threads keep one
        assert app.demo._queue.default_concurrency_limit == EVENT_LIMIT


async def test_compare_passes_the_gate_for_each_of_its_models(runtime: Runtime) -> None:
    demo = build_demo(runtime)
    api = next(f for f in demo.fns.values() if f.api_name == "compare")
    page = next(f for f in demo.fns.values() if getattr(getattr(f.fn, "func", f.fn), "__name__", "") == "run_ui")
    assert api.concurrency_limit is None and page.concurrency_limit is None  # no queue across models in front
    gate = getattr(demo, _GATE)
    gate.busy[FLEX] = gate.cap(FLEX)  # FLUX.2 [flex] is full; FLUX.2 [pro] is free
    before = len(runtime.emulator.requests())  # type: ignore[union-attr]
    with pytest.raises(gr.Error, match=r"already waiting for FLUX.2 \[flex\]"):
        await api.fn("a fox", ["FLUX.2-pro", FLEX], "1:1", True, None)
    assert len(runtime.emulator.requests()) == before  # type: ignore[union-attr]  # all or none: pro not sent either
    assert gate.busy["FLUX.2-pro"] == 0 and gate.busy[FLEX] == gate.cap(FLEX)
    _, payload, message = await api.fn("a fox", ["FLUX.2-pro", "FLUX.1-schnell"], "1:1", True, None)
    assert message == "" and [r["error"] for r in payload["results"]] == [None, None]
    assert gate.busy["FLUX.2-pro"] == 0  # given back when the comparison ends
