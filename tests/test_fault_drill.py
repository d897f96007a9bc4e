"""Fault drill: every route meets every fault the emulator can play, and the person still gets a good outcome.

Each case clicks the way a tab does (progress.stream → handlers.generate → FoundryClient → History) on a
Runtime over a real emulator, then checks what the person gets: the image, saved to History after a
bounded number of retries, or an error text that names the problem and what to do, within the
deadline, with nothing saved and the inputs as they were. The emulator's request log counts what the
service received, so a retry storm fails the case, and every image the service handed over must be in
History ("nothing lost").

The drill shortens backoff sleeps (FoundryClient's ``sleep`` knob) to stay quick; waits the service
asks for (429 with Retry-After, through the pacer), trickling bodies and deadlines are real.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from conftest import ENDPOINT, FAST, FakeService, solid_image
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import own_emulator
from flux_ui import history_inputs
from flux_ui.client.auth import TokenCredential
from flux_ui.client.core import FoundryClient, GenerationRequest
from flux_ui.client.retry import MAX_RETRIES, backoff
from flux_ui.emulator import Emulator, Fault
from flux_ui.emulator.config import GENERATION_ROUTES
from flux_ui.errors import FluxError, MalformedResponseError
from flux_ui.history import History
from flux_ui.registry import Route
from flux_ui.runtime import Runtime
from flux_ui.settings import Settings, load_settings
from flux_ui.ui import handlers, progress
from flux_ui.ui.common import error_text
from flux_ui.ui.text import inert

KEY = "fault-drill-key-2b7e151628aed2a6"
PROMPT = "a lighthouse in a storm"
ATTEMPTS = MAX_RETRIES + 1  # the most generation requests one click may cost
DEADLINE_S = 3.0  # the drill client's deadline when a fault should be survived
SHORT_DEADLINE_S = 0.2  # the deadline when a fault is meant to outlast it
OVERRUN_S = 0.1  # how far past that deadline a slow answer comes
SLACK_S = 0.5  # scheduling allowance on top of a deadline
BACKOFF_CAP_S = 0.02  # the longest real sleep a backoff takes in the drill
POLLS_PER_TASK = 2  # polling_pending_polls=1: Pending, then Ready
SYNC_SWITCHES = {"bfl_style": "sync", "image_api_result": "b64_json", "retry_after_header": True,
                 "polling_pending_polls": 1}
#: Fault labels whose answer never hands the client a whole image.
SPOILED = ("drop", "empty", "malformed", "expire_url")
REFERENCE = solid_image((40, 90, 200))
#: Built once: loading the CA bundle for every client's transport would cost more than most cases.
TLS = httpx.create_ssl_context()


@dataclass(frozen=True)
class Way:
    """One way a click reaches the service: a model on a route, with the emulator's switches for it."""

    model: str
    params: Mapping[str, Any]
    route: Route | None = None
    references: tuple[bytes, ...] = ()
    switches: Mapping[str, Any] = field(default_factory=dict)
    tab: str = "text-to-image"

    @property
    def url_flow(self) -> bool:
        """The image arrives by a link (polling or ``url`` results), not in the answer itself."""
        return self.switches.get("bfl_style") == "polling" or self.switches.get("image_api_result") == "url"


SMALL = {"width": 256, "height": 256}
KONTEXT = {"aspect_ratio": "1:1", "output_format": "jpeg"}  # about 1 MP whatever the ratio; JPEG renders quickest
ROUTES = {
    "bfl": Way("FLUX.2-pro", SMALL),
    "bfl-kontext": Way("FLUX.1-Kontext-pro", KONTEXT, Route.BFL, (REFERENCE,), tab="kontext"),
    "bfl-polling": Way("FLUX.2-pro", SMALL, switches={"bfl_style": "polling"}),
    "images/generations": Way("FLUX-1.1-pro", SMALL, Route.IMAGES_GENERATIONS),
    "images/edits": Way("FLUX.1-Kontext-pro", KONTEXT, Route.IMAGES_EDITS, (REFERENCE,),
                        tab="kontext"),
    "aml": Way("FLUX.1-schnell", SMALL),
}
URL_ROUTES = {
    "images/generations-url": Way("FLUX-1.1-pro", SMALL, Route.IMAGES_GENERATIONS,
                                  switches={"image_api_result": "url"}),
    "images/edits-url": Way("FLUX.1-Kontext-pro", KONTEXT, Route.IMAGES_EDITS, (REFERENCE,),
                            switches={"image_api_result": "url"}, tab="kontext"),
}
ALL_ROUTES = {**ROUTES, **URL_ROUTES}


@dataclass(frozen=True)
class Drill:
    """A fault and the outcome a person should get from it."""

    faults: tuple[Fault, ...]
    outcome: Literal["image", "error"]
    requests: int  # generation requests the service must receive, exactly
    says: tuple[str, ...] = ()  # what the error text must name: the problem and what to do
    deadline_s: float = DEADLINE_S
    waited_s: float = 0.0  # a real wait the click must have sat through
    rotate_key: bool = False

    @property
    def abandons(self) -> bool:
        """The client gives up on an answer still on its way (the service may finish it)."""
        return self.deadline_s == SHORT_DEADLINE_S


def status(code: int, count: int | None = 1, **options: Any) -> Fault:
    return Fault("status", status=code, count=count, **options)


TIMED_OUT = ("No image from", f"within {SHORT_DEADLINE_S:g} s", "may still finish the image and bill it",
             "saves it to History when it arrives")
FAULTS = {
    "none": Drill((), "image", 1),
    "latency-past-deadline": Drill((Fault("latency", seconds=SHORT_DEADLINE_S + OVERRUN_S, count=1),), "error", 1,
                                   TIMED_OUT, SHORT_DEADLINE_S, SHORT_DEADLINE_S),
    "500": Drill((status(500),), "image", 2),
    "502": Drill((status(502),), "image", 2),
    "503": Drill((status(503),), "image", 2),
    "503-persistent": Drill((status(503, None),), "error", ATTEMPTS,
                            ("HTTP 503", "try again in a moment", f"after {ATTEMPTS} attempts")),
    "429-burst-retry-after": Drill((status(429, MAX_RETRIES, retry_after=True, retry_after_s=0.05),), "image",
                                   ATTEMPTS, waited_s=0.05 * MAX_RETRIES),
    # Without the header and without a wait in the text, so the client's own backoff decides.
    "429-without-retry-after": Drill((status(429, retry_after=False, message="Rate limit is exceeded."),), "image",
                                     2, waited_s=backoff(0, 0.999)),
    "429-burst-without-retry-after": Drill((status(429, MAX_RETRIES, retry_after=False, message="Rate limit is "
                                                                                                "exceeded."),),
                                           "image", ATTEMPTS, waited_s=backoff(0, 0.999) + backoff(1, 0.999)),
    "429-persistent": Drill((status(429, None, retry_after=True, retry_after_s=0.05),), "error", ATTEMPTS,
                            ("HTTP 429", "set the deployment's real tier", f"after {ATTEMPTS} attempts")),
    "429-past-cap": Drill((status(429, None, retry_after=True, retry_after_s=600),), "error", 1,
                          ("asks to wait 600 s", "Try again in 10 min")),
    "drop": Drill((Fault("drop", count=1),), "image", 2),
    "drop-persistent": Drill((Fault("drop"),), "error", ATTEMPTS,
                             ("connection dropped", "Try again", f"after {ATTEMPTS} attempts")),
    "trickle": Drill((Fault("trickle", seconds=0.15, count=1),), "image", 1, waited_s=0.15),
    "trickle-past-deadline": Drill((Fault("trickle", seconds=SHORT_DEADLINE_S + OVERRUN_S, count=1),), "error", 1,
                                   TIMED_OUT, SHORT_DEADLINE_S, SHORT_DEADLINE_S),
    "empty": Drill((Fault("empty", count=1),), "image", 2),
    "empty-persistent": Drill((Fault("empty", variant="list"),), "error", ATTEMPTS,
                              ("without an image", "Try again", f"after {ATTEMPTS} attempts")),
    "refuse": Drill((Fault("refuse", count=1),), "error", 1, ("refused", "Rephrase")),
    "malformed": Drill((Fault("malformed", count=1),), "image", 2),
    "key-rotated": Drill((), "error", 1, ("HTTP 401", "if the key was rotated, update it"), rotate_key=True),
}
#: Where a route's own error text differs: the schnell endpoint answers every failure with a 400.
SAYS_ON_ROUTE = {
    ("aml", "empty-persistent"): ("empty image", "Try again", f"after {ATTEMPTS} attempts"),
    ("bfl-polling", "empty-persistent"): ("no image link", "Try again", f"after {ATTEMPTS} attempts"),
}
EXPIRED = Drill((Fault("expire_url", count=1),), "error", 1, ("no longer works", "Generate again"))
#: Faults on the polling GETs of the BFL-native flow: the task was accepted, so it is polled again.
POLL_FAULTS = {
    "poll-503": Drill((status(503, routes=("poll",)),), "image", 1),
    "poll-drop": Drill((Fault("drop", count=1, routes=("poll",)),), "image", 1),
    "poll-malformed": Drill((Fault("malformed", count=1, routes=("poll",)),), "image", 1),
    "poll-503-persistent": Drill((status(503, None, routes=("poll",)),), "error", 1,
                                 ("HTTP 503", "try again in a moment", f"after {ATTEMPTS} attempts")),
    "poll-latency-past-deadline": Drill((Fault("latency", seconds=SHORT_DEADLINE_S + OVERRUN_S, count=1,
                                               routes=("poll",)),), "error", 1, TIMED_OUT, SHORT_DEADLINE_S,
                                        SHORT_DEADLINE_S),
}
#: Faults on the download of a result link: the image exists, so it is fetched again.
DOWNLOAD_FAULTS = {
    "download-503": Drill((status(503, routes=("delivery",)),), "image", 1),
    "download-drop": Drill((Fault("drop", count=1, routes=("delivery",)),), "image", 1),
    "download-empty": Drill((Fault("empty", count=1, routes=("delivery",)),), "image", 1),
    "download-503-persistent": Drill((status(503, None, routes=("delivery",)),), "error", 1,
                                     ("HTTP 503", "try again in a moment", f"after {ATTEMPTS} attempts")),
}

#: Kontext on the BFL route differs from FLUX.2-pro there only in its body (a reference image): a sample.
KONTEXT_BFL_FAULTS = ("none", "latency-past-deadline", "503-persistent", "drop", "refuse", "malformed")
#: Real backoffs of about a second: on one route only.
SLOW_FAULTS = ("429-burst-without-retry-after",)
CASES = [
    *((r, f) for r in ROUTES if r != "bfl-kontext" for f in FAULTS if f not in SLOW_FAULTS),
    *(("bfl", f) for f in SLOW_FAULTS),
    *(("bfl-kontext", f) for f in KONTEXT_BFL_FAULTS),
    *((r, "expire_url") for r in ("bfl-polling", *URL_ROUTES)),
    *((r, "none") for r in URL_ROUTES),
    *(("bfl-polling", f) for f in POLL_FAULTS),
    *((r, f) for r in ("bfl-polling", *URL_ROUTES) for f in DOWNLOAD_FAULTS),
]


def drill_for(route_name: str, fault_name: str) -> Drill:
    drill = {**FAULTS, **POLL_FAULTS, **DOWNLOAD_FAULTS, "expire_url": EXPIRED}[fault_name]
    says = SAYS_ON_ROUTE.get((route_name, fault_name))
    return replace(drill, says=says) if says else drill


# --- what a click does and what the service saw -----------------------------------------------------------------


@dataclass
class Seen:
    """What the person sees once a click is over: the saved image, or the error text."""

    generated: handlers.Generated | None
    message: str
    elapsed_s: float


async def click(runtime: Runtime, way: Way, params: dict[str, Any], prompt: str = PROMPT) -> Seen:
    """Generate as the tabs do: stream status lines, then the saved result, or show the error's text."""
    generated: handlers.Generated | None = None
    message = ""
    start = time.monotonic()
    try:
        async for step in progress.stream(runtime, way.model, prompt, params, way.references, way.route, way.tab):
            if not isinstance(step, str):  # the status lines shown while waiting are not checked here
                generated = step
    except FluxError as err:
        message = error_text(err)
    return Seen(generated, message, time.monotonic() - start)


async def short_sleep(seconds: float) -> None:
    """The drill's backoff: at most BACKOFF_CAP_S of real time. The pacer re-checks its clock after each
    sleep, so a wait the service asked for (429) still passes in full."""
    await asyncio.sleep(min(seconds, BACKOFF_CAP_S))


def emulator_settings(emu: Emulator, history: History) -> Settings:
    return load_settings({"FLUX_OUTPUT_DIR": str(history.folder)}, dotenv_path=None).with_emulator(
        emu.base_url, emu.api_key, FAST)


@asynccontextmanager
async def drill_runtime(settings: Settings, history: History, deadline_s: float = DEADLINE_S,
                        credential: TokenCredential | None = None) -> AsyncIterator[Runtime]:
    """A Runtime as start_runtime builds it, over an emulator and a History that outlive it."""
    client = FoundryClient(settings, transport=httpx.AsyncHTTPTransport(verify=TLS), credential=credential,
                           deadline_s=deadline_s, poll_interval_s=0.02, sleep=short_sleep, rng=random.Random(5))
    try:
        yield Runtime(settings, client, history)
    finally:
        await client.aclose()


def image_files(history: History) -> set[Path]:
    """The generated images in the outputs folder (the references History keeps are in their own folder)."""
    return {p for p in history.folder.rglob("*") if p.suffix in (".png", ".jpg", ".webp")
            and p.relative_to(history.folder).parts[0] != history_inputs.FOLDER}


def generation_requests(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in log if r["route"] in GENERATION_ROUTES]


async def settled_log(emu: Emulator, generations: int, within_s: float = 2.0) -> list[dict[str, Any]]:
    """The log once ``generations`` generation requests are in it: a request the client abandoned is
    logged when the emulator answers it, after the client gave up."""
    end = time.monotonic() + within_s
    while len(generation_requests(log := emu.requests())) < generations and time.monotonic() < end:
        await asyncio.sleep(0.01)
    return log


def images_handed_over(log: list[dict[str, Any]], url_flow: bool) -> int:
    """Answers that gave the client a whole image: each of them must be in History."""

    def hands_over(entry: dict[str, Any]) -> bool:
        if entry["status"] != 200 or any(kind in (entry["fault"] or "") for kind in SPOILED):
            return False
        if url_flow:
            return bool(entry["route"] == "delivery")
        return entry["route"] in GENERATION_ROUTES and bool(entry["output"])

    return sum(map(hands_over, log))


# --- fixtures ---------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    requests: int = 0
    lost: int = 0


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    """The drill's figures, printed at the end (``pytest -s``) for the README's reliability section."""
    figures = Tally()
    yield figures
    print(f"\nfault drill: {figures.cases} route × fault cases, {figures.requests} requests to the emulator, "
          f"{figures.lost} images lost")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """One History for the whole drill, as the app keeps one for every request; each case has its own prompt."""
    shared = History(tmp_path_factory.mktemp("drill-outputs"))
    yield shared
    shared.close()


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[Emulator]:
    """The drill's emulator (``emu`` hands it to each case fresh, and puts it back after): its own key and
    seed, quotas on (none the drill reaches), the synchronous answers unless a route asks otherwise."""
    with own_emulator(api_key=KEY, enforce_quotas=True, quotas=dict(FAST), rng_seed=11, **SYNC_SWITCHES) as emulator:
        yield emulator


@pytest.fixture
def tallied(emu: Emulator, tally: Tally) -> Iterator[None]:
    """Adds the requests a case cost to the drill's figures."""
    yield
    tally.requests += len(emu.requests())


# --- the drill --------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("tallied")
@pytest.mark.parametrize(("route_name", "fault_name"), CASES, ids=[f"{r}:{f}" for r, f in CASES])
async def test_fault_drill(emu: Emulator, history: History, tally: Tally, route_name: str, fault_name: str) -> None:
    way, drill = ALL_ROUTES[route_name], drill_for(route_name, fault_name)
    prompt = f"{PROMPT} [{route_name} {fault_name}]"
    emu.configure(**way.switches)
    emu.set_faults(way.model, drill.faults)
    params = dict(way.params)
    files_before = image_files(history)
    async with drill_runtime(emulator_settings(emu, history), history, drill.deadline_s) as runtime:
        if drill.rotate_key:
            emu.rotate_key()  # after the app read its key: the next request carries the old one
        seen = await click(runtime, way, params, prompt)
    saved = history.list(text=prompt)
    new_files = image_files(history) - files_before
    log = await settled_log(emu, drill.requests)
    tally.cases += 1

    assert params == way.params, "the person's inputs were changed"
    assert seen.elapsed_s <= drill.deadline_s + SLACK_S, f"took {seen.elapsed_s:.2f} s"
    assert seen.elapsed_s >= drill.waited_s * 0.9
    assert len(generation_requests(log)) == drill.requests, [(r["route"], r["status"], r["fault"]) for r in log]
    # Each task: its polls, one download, and at most MAX_RETRIES polls again after a failed one.
    assert len(log) - drill.requests <= (POLLS_PER_TASK + 1 + MAX_RETRIES) * drill.requests
    if drill.outcome == "image":
        assert seen.message == "" and seen.generated is not None, seen.message
        result = seen.generated.result
        assert [e.id for e in saved] == [seen.generated.entry.id] and new_files == {saved[0].path}
        assert (saved[0].model, saved[0].prompt, saved[0].tab) == (way.model, prompt, way.tab)
        assert (f"{result.attempts} attempts" in handlers.caption(result)) == (result.attempts > 1)
    else:
        assert seen.generated is None and saved == []
        assert seen.message.startswith("⚠️ ")
        for fragment in drill.says:
            assert inert(fragment) in seen.message, seen.message  # as the page's Markdown carries it
        assert new_files == set()
    if not drill.abandons:
        handed = images_handed_over(log, way.url_flow)
        tally.lost += max(0, handed - len(saved))
        assert handed == len(saved)


# --- a fault the emulator cannot play ---------------------------------------------------------------------------


async def test_a_polling_answer_that_is_not_an_object_ends_the_wait(settings: Settings) -> None:
    """JSON, but not the task object (a proxy's error page as a list, say): polled again a few times, then a
    clear error, instead of polling on until the deadline."""
    polling_url = f"{ENDPOINT}/v1/get_result?id=task-1"
    fake = FakeService(handler=lambda request: httpx.Response(
        200, json={"id": "task-1", "polling_url": polling_url} if request.method == "POST" else []))
    start = time.monotonic()
    async with FoundryClient(settings, transport=fake.transport, sleep=short_sleep, deadline_s=DEADLINE_S) as client:
        with pytest.raises(MalformedResponseError, match=f"could not be read. Try again in a moment. "
                                                         rf"\(after {ATTEMPTS} attempts\)"):
            await client.generate(GenerationRequest("FLUX.2-pro", PROMPT, (), dict(SMALL)))
    assert time.monotonic() - start < DEADLINE_S / 2
    assert [r.method for r in fake.requests] == ["POST"] + ["GET"] * ATTEMPTS


# --- the emulator's faults on result downloads -------------------------------------------------------------------


@pytest.mark.usefixtures("tallied")
def test_the_emulator_plays_faults_on_result_downloads(emu: Emulator) -> None:
    """Opt-in with routes=("delivery",), keyed by the deployment whose result it is; a 5xx in Blob Storage's XML."""
    emu.configure(image_api_result="url")
    with httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as http:
        answer = http.post("/openai/deployments/FLUX-1.1-pro/images/generations", params={"api-version": "preview"},
                           json={"prompt": PROMPT, "size": "256x256"})
        link = answer.json()["data"][0]["url"]
        emu.set_faults("FLUX-1.1-pro", [status(503, routes=("delivery",)),
                                        Fault("empty", count=1, routes=("delivery",))])
        busy, empty, whole = http.get(link), http.get(link), http.get(link)
    assert answer.status_code == 200 and emu.requests()[0]["fault"] is None  # not a generation fault
    assert busy.status_code == 503 and b"<Code>ServerBusy</Code>" in busy.content
    assert (empty.status_code, empty.content) == (200, b"")
    assert whole.status_code == 200 and whole.content.startswith(b"\xff\xd8")  # the JPEG, once the faults are spent
    downloads = [(r["route"], r["model"], r["fault"]) for r in emu.requests()[1:]]
    assert downloads == [("delivery", "FLUX-1.1-pro", "status:503"), ("delivery", "FLUX-1.1-pro", "empty"),
                         ("delivery", "FLUX-1.1-pro", None)]
