"""Fault drill, part two: what takes more than one request, on the running app. An Entra session whose
token stops working, Compare with one model failing, a tab's own handler on an error, and the app still
serving after a burst of faults (through gradio_client and plain HTTP).

tests/test_fault_drill.py drills every route against every fault on the handler path. The app here
uses its real client (real backoffs, the default deadline); the Entra cases use the drill's client on
the app's emulator.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from test_fault_drill import ALL_ROUTES, DEADLINE_S, PROMPT, ROUTES, SMALL, click, drill_runtime

from app_fixtures import AppUnderTest
from conftest import FAST, FAST_RPM, FakeCredential
from flux_ui.client.core import SEND_FLOOR_S, FoundryClient
from flux_ui.client.retry import MAX_RETRIES
from flux_ui.emulator import Emulator, Fault
from flux_ui.emulator.auth import make_entra_token
from flux_ui.emulator.config import GENERATION_ROUTES
from flux_ui.history import History
from flux_ui.runtime import Runtime
from flux_ui.settings import Settings, load_settings
from flux_ui.ui import build_demo
from flux_ui.ui.text import inert

ATTEMPTS = MAX_RETRIES + 1
Arm = Callable[[str, list[Fault]], None]


def generation_log(app: AppUnderTest, mark: int) -> list[dict[str, Any]]:
    """The generation requests the app's emulator received after ``mark`` (a 401 is logged without its prompt)."""
    return [r for r in app.emulator.requests() if r["seq"] > mark and r["route"] in GENERATION_ROUTES]


def requests_for(app: AppUnderTest, mark: int) -> Counter[str]:
    return Counter(r["model"] for r in generation_log(app, mark))


@pytest.fixture
def mark(app: AppUnderTest) -> int:
    """The request log's last sequence number before the test: the entries after it are the test's."""
    entries = app.emulator.requests()
    return int(entries[-1]["seq"]) if entries else 0


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    kept = History(tmp_path)
    yield kept
    kept.close()


@pytest.fixture
def switches(app: AppUnderTest) -> Iterator[Callable[..., object]]:
    """Change the app emulator's switches for one test; they are put back after it."""
    before = app.emulator.state.switches()
    yield app.emulator.configure
    app.emulator.configure(**before)


# --- Entra ID: a token that stops working mid-session -------------------------------------------------------------


class ServiceExpiredCredential(FakeCredential):
    """FakeCredential's bookkeeping with Entra-shaped tokens. The first ``stale`` tokens are already expired at
    the service while the credential still reports an hour left (clock skew, revocation): the cache keeps
    using one until the service answers 401."""

    def __init__(self, stale: int = 1, first_exp: int | None = None) -> None:
        super().__init__(lifetime=3600.0)
        self.stale = stale
        self.first_exp = first_exp

    def get_token(self, *scopes: str, **kwargs: object) -> SimpleNamespace:
        issued = super().get_token(*scopes, **kwargs)
        now = int(time.time())
        if len(self.calls) == 1 and self.first_exp is not None:
            token = make_entra_token(expires_in=self.first_exp - now, now=now)
        else:
            token = make_entra_token(expires_in=-60 if len(self.calls) <= self.stale else 3600, now=now)
        return SimpleNamespace(token=token, expires_on=issued.expires_on)


@pytest.fixture
def entra_accepted(app: AppUnderTest) -> Iterator[None]:
    """The app's own emulator takes no Entra token (any local process could forge one); these drills
    sign in with Entra-shaped tokens against it, so they switch that on for their run only."""
    app.emulator.configure(accept_entra=True)
    yield
    app.emulator.configure(accept_entra=False)


def entra_settings(emulator: Emulator, history: History) -> Settings:
    deployments = ",".join(f"{m}:{FAST_RPM}" for m in dict.fromkeys(ALL_ROUTES[r].model for r in ENTRA_ROUTES))
    return load_settings({"AZURE_ENDPOINT": emulator.base_url, "AZURE_AUTH": "entra", "FLUX_DEPLOYMENTS": deployments,
                          "FLUX_OUTPUT_DIR": str(history.folder)}, dotenv_path=None)


#: The Entra drills run in Foundry mode, where a request is held back unless the real send floor (2 s) is
#: left: their deadline adds that floor, so a first attempt has the same slack as in the other drills.
ENTRA_DEADLINE_S = DEADLINE_S + max(SEND_FLOOR_S.values())
ENTRA_ROUTES = [r for r, way in ALL_ROUTES.items() if way.model != "FLUX.1-schnell"]  # schnell takes its key


@pytest.mark.usefixtures("entra_accepted")
@pytest.mark.parametrize("route_name", ENTRA_ROUTES)
async def test_an_expired_entra_token_is_renewed_once(app: AppUnderTest, mark: int, history: History,
                                                      switches: Callable[..., object], route_name: str) -> None:
    way = ALL_ROUTES[route_name]
    prompt = f"{PROMPT} [{route_name} entra-expired]"
    switches(**way.switches)
    credential = ServiceExpiredCredential()
    async with drill_runtime(entra_settings(app.emulator, history), history, ENTRA_DEADLINE_S,
                             credential=credential) as runtime:
        seen = await click(runtime, way, dict(way.params), prompt)
    assert seen.message == "" and seen.generated is not None and len(history.list()) == 1
    assert seen.generated.result.attempts == 2 and len(credential.calls) == 2
    assert [r["auth"] for r in generation_log(app, mark)] == ["bad", "entra"]


@pytest.mark.usefixtures("entra_accepted")
async def test_a_token_the_service_never_accepts_is_not_retried_in_a_loop(app: AppUnderTest, mark: int,
                                                                          history: History) -> None:
    prompt = f"{PROMPT} [bfl entra-refused]"
    credential = ServiceExpiredCredential(stale=99)
    async with drill_runtime(entra_settings(app.emulator, history), history, ENTRA_DEADLINE_S,
                             credential=credential) as runtime:
        seen = await click(runtime, ROUTES["bfl"], dict(SMALL), prompt)
    assert inert("HTTP 401") in seen.message and inert("your Entra sign-in") in seen.message  # the page's Markdown
    assert history.list() == []
    assert len(generation_log(app, mark)) == 2 and len(credential.calls) == 2


@pytest.mark.usefixtures("entra_accepted")
async def test_a_token_expiring_between_two_clicks_is_renewed(app: AppUnderTest, mark: int, history: History) -> None:
    """Real time: the first token lives one to two seconds at the service, so the second click finds it expired."""
    prompt = f"{PROMPT} [bfl entra-expiring]"
    expires = math.ceil(time.time() + 1.0)
    credential = ServiceExpiredCredential(stale=0, first_exp=expires)
    async with drill_runtime(entra_settings(app.emulator, history), history, ENTRA_DEADLINE_S,
                             credential=credential) as runtime:
        first = await click(runtime, ROUTES["bfl"], dict(SMALL), prompt)
        while time.time() <= expires:  # wait for the token's expiry, not for the app
            await asyncio.sleep(0.05)
        second = await click(runtime, ROUTES["bfl"], dict(SMALL), prompt)
    assert first.generated is not None and second.generated is not None and len(history.list()) == 2
    assert [r["auth"] for r in generation_log(app, mark)] == ["entra", "bad", "entra"]
    assert len(credential.calls) == 2


# --- the running app ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(app: AppUnderTest) -> Client:
    return Client(app.url, verbose=False)


@pytest.fixture
def arm(app: AppUnderTest) -> Iterator[Arm]:
    """Arm faults on the app's emulator; they are cleared after the test, whatever happened."""
    keys: list[str] = []

    def arm_faults(key: str, faults: list[Fault]) -> None:
        app.emulator.set_faults(key, faults)
        keys.append(key)

    yield arm_faults
    for key in keys:
        app.emulator.set_faults(key, [])


def test_compare_saves_the_models_that_answered(app: AppUnderTest, mark: int, api: Client, arm: Arm) -> None:
    prompt = "a windmill at noon (compare drill)"
    models = ["FLUX.2-pro", "FLUX.2-flex", "FLUX-1.1-pro"]
    arm("FLUX.2-flex", [Fault("status", status=429, retry_after=True, retry_after_s=900)])  # its quota is spent
    arm("FLUX-1.1-pro", [Fault("drop", count=1)])  # recovers on the retry
    gallery, results, message = api.predict(
        prompt=prompt, models=models, aspect_ratio="1:1", randomize_seed=False, seed=42, api_name="/compare")

    records = {r["model"]: r for r in results["results"]}
    assert message == "" and [item["caption"] for item in gallery] == ["FLUX.2-pro", "FLUX-1.1-pro"]
    failed = records["FLUX.2-flex"]["error"]
    assert "quota is used up" in failed and "Try again in 15 min" in failed
    saved = {e.id: e for e in app.runtime.history.list(text=prompt)}
    assert set(saved) == {records["FLUX.2-pro"]["history_id"], records["FLUX-1.1-pro"]["history_id"]}
    assert all(entry.path.exists() and entry.seed == 42 for entry in saved.values())
    assert requests_for(app, mark) == {"FLUX.2-pro": 1, "FLUX.2-flex": 1, "FLUX-1.1-pro": 2}


#: A fault on every model at once, each one the client gives up on, and the requests it may cost.
BURST = {
    "FLUX.2-pro": (Fault("status", status=500), ATTEMPTS),
    "FLUX.2-flex": (Fault("status", status=429, retry_after=True, retry_after_s=600), 1),
    "FLUX-1.1-pro": (Fault("drop"), ATTEMPTS),
    "FLUX.1-Kontext-pro": (Fault("refuse"), 1),
    "FLUX.1-schnell": (Fault("malformed"), ATTEMPTS),
}


def test_after_a_burst_of_faults_the_app_still_serves(app: AppUnderTest, mark: int, api: Client, arm: Arm) -> None:
    prompt = "a kite over the dunes (burst drill)"
    for model, (fault, _) in BURST.items():
        arm(model, [fault])
    jobs = {model: api.submit(model=model, prompt=prompt, api_name="/generate") for model in BURST}
    answers = {model: job.result(timeout=60) for model, job in jobs.items()}
    for model in BURST:
        app.emulator.set_faults(model, [])

    for model, (path, _, message, _) in answers.items():
        assert not isinstance(path, str) and message.startswith("⚠️ "), (model, message)  # no image, a reason
    assert requests_for(app, mark) == {model: requests for model, (_, requests) in BURST.items()}
    assert app.runtime.history.list(text=prompt) == []

    assert httpx.get(f"{app.url}/", timeout=10).status_code == 200
    path, _, message, _ = api.predict(model="FLUX.2-pro", prompt=prompt, api_name="/generate")
    assert message == "" and Path(path).read_bytes()
    assert [e.model for e in app.runtime.history.list(text=prompt)] == ["FLUX.2-pro"]


async def test_an_error_leaves_the_persons_inputs_as_they_were(app: AppUnderTest, arm: Arm,
                                                               history: History) -> None:
    """The text-to-image tab's own handler, on a runtime of this test's loop: on an error, every
    component that is both an input and an output (the seed) is left untouched."""
    settings = load_settings({"FLUX_OUTPUT_DIR": str(history.folder)}, dotenv_path=None).with_emulator(
        app.emulator.base_url, app.emulator.api_key, FAST)
    client = FoundryClient(settings)
    try:
        generate = next(f for f in build_demo(Runtime(settings, client, history)).fns.values()
                        if f.api_name == "generate")
        arm("FLUX.2-pro", [Fault("refuse", count=1)])
        values: list[Any] = [None] * (len(generate.inputs) - 3)
        steps = [step async for step in generate.fn("FLUX.2-pro", "a lantern", False, *values)]
        saved = history.list()
    finally:
        await client.aclose()
    last = dict(zip(generate.outputs, steps[-1], strict=True))
    kept = [value for component, value in last.items() if component in generate.inputs]
    assert kept and all(value == gr.update() for value in kept)
    assert any(isinstance(v, str) and "Rephrase" in v for v in last.values()) and saved == []
