"""FoundryClient: one request in, one image (or one typed error) out.

Every tab goes through :meth:`FoundryClient.generate`: validate against the registry,
prepare references, wait for the deployment's pacing slot, send, retry what is worth
retrying, follow polling and result URLs, and check the image that came back.

The deadline is the person's patience and decides only what is *sent*: a request is sent
only while enough of it is left for an answer to come back (:data:`SEND_FLOOR_S`). Once
sent, a request is billed whether or not anyone still waits, so its answer is awaited up to
the service's own timeout; when the deadline passes first, an ``overdue`` event says so,
and the caller decides whether to keep waiting (the tabs let it finish in the background).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlparse

import httpx

from flux_ui.client.auth import Auth, EntraAuth, KeyAuth, TokenCredential
from flux_ui.client.errors import (
    Billed,
    ContentRefusedError,
    FluxError,
    GenerationFailedError,
    MalformedResponseError,
    QuotaExhaustedError,
    ServiceConnectionError,
    ServiceError,
    ServiceTimeoutError,
    ValidationError,
    more_billed,
    with_billing,
)
from flux_ui.client.retry import MAX_RETRIES, RETRY_AFTER_CAP_S, Failure, decide_retry, parse_retry_after
from flux_ui.client.validation import GenerationRequest, ValidatedRequest, model_id_text, validate
from flux_ui.client.wire import Answer, WireRequest, build_request, error_from_response, parse_answer
from flux_ui.images import ImageInfo, PreparedImage, inspect_image, prepare_references
from flux_ui.pacing import Pacer, PacerStatus
from flux_ui.registry import MODELS, Route
from flux_ui.settings import Deployment, Settings

log = logging.getLogger("flux_ui.client")

DEFAULT_DEADLINE_S = 300.0  # how long a person waits: pacing, retries and answers included
CONNECT_TIMEOUT_S = 10.0
#: Generation takes seconds to minutes at 4 MP; SERVICE_TIMEOUT_S bounds a whole answer, not this.
READ_TIMEOUT_S = 240.0
#: How long an answer is awaited once its request is sent, whoever still waits: past it nothing
#: the service sends is usable (BFL's result links lapse about ten minutes after the image is made,
#: contract §2) and a synchronous answer has long been cut by READ_TIMEOUT_S.
SERVICE_TIMEOUT_S = 600.0
#: The least time a request takes on each route of the real service, from sending to the answer.
#: With less left of the deadline it is not sent: its answer could not arrive in time, and it would
#: be billed all the same. Floors, not typical times, and assumptions (nothing here was measured
#: against Azure): every hosted FLUX model makes its image on a GPU behind Foundry's gateway, which
#: takes seconds even for FLUX1.1 [pro] at its smallest sizes; schnell runs 1 to 4 steps on the
#: person's own Azure ML endpoint. Too low a floor only lets through a request that then ends
#: "sent, not answered in time" (and is still saved when it arrives), never a lost image.
SEND_FLOOR_S: Mapping[Route, float] = MappingProxyType(
    {Route.BFL: 2.0, Route.IMAGES_GENERATIONS: 2.0, Route.IMAGES_EDITS: 2.0, Route.AML: 1.0})
#: The emulator renders a synthetic image in milliseconds (plus any latency a test plays).
EMULATOR_SEND_FLOOR_S = 0.05
POLL_INTERVAL_S = 0.5
MAX_POLL_INTERVAL_S = 2.0
#: Hosts a result URL may point at, besides the configured endpoint's own host: Azure's
#: and BFL's delivery hosts. Anything else (private addresses above all) is not fetched.
RESULT_HOST_SUFFIXES = (".azure.com", ".windows.net", ".microsoft.com", ".azureedge.net", ".bfl.ai", ".bfl.ml")

Stage = Literal["preparing", "paced", "sent", "retrying", "polling", "downloading", "overdue", "done"]
#: Stages at which a request has been handed to the service (or its image is here): stopping the
#: wait then must not cancel the exchange, which is billed either way.
COMMITTED_STAGES: frozenset[Stage] = frozenset({"sent", "polling", "downloading", "overdue", "done"})


@dataclass(frozen=True)
class ProgressEvent:
    """What a waiting person sees: where the request is and for how long."""

    stage: Stage
    message: str
    attempt: int
    elapsed_s: float
    wait_s: float = 0.0


@dataclass(frozen=True)
class Timings:
    prepare_s: float = 0.0  # references decoded, resized, re-encoded
    paced_s: float = 0.0  # waiting for the deployment's quota
    network_s: float = 0.0  # sending and receiving, polling and downloads included
    retry_wait_s: float = 0.0  # backoff between attempts
    decode_s: float = 0.0  # base64 and image checks
    total_s: float = 0.0


@dataclass(frozen=True)
class GenerationResult:
    """One image and everything needed to show, save and reproduce it."""

    image: bytes = field(repr=False)
    info: ImageInfo
    model: str
    deployment: str
    route: Route
    prompt: str
    seed: int | None
    params_sent: Mapping[str, Any]  # the exact body, images summarised
    references: tuple[str, ...]  # one summary per reference, in the order sent
    adjustments: tuple[str, ...]  # what flux-ui changed (sizes snapped, images resized)
    warnings: tuple[str, ...]
    service_cost: float | None  # request_meta.cost, as the service reports it
    cost_estimate_usd: float | None  # from the registry's list price
    input_mp: float | None
    output_mp: float | None
    revised_prompt: str | None
    attempts: int
    timings: Timings

    @property
    def format(self) -> str:
        return self.info.format

    @property
    def size(self) -> tuple[int, int]:
        return self.info.width, self.info.height


class _AttemptFailed(Exception):
    """One attempt's failure with what the retry decision needs; ``billed`` when the raiser knows
    better than the failure's kind (a task the service itself reports as failed)."""

    def __init__(self, error: FluxError, *, status: int | None = None, failure: Failure | None = None,
                 headers: Mapping[str, str] | None = None, billed: Billed | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.status = status
        self.failure = failure
        self.headers = headers or {}
        self.billed = billed


@dataclass
class _Click:
    """One generate call: its deadline, the time a request needs, and what its attempts cost so far."""

    deadline: float
    need: float
    sent: bool = False
    billed: Billed = "no"
    accepted: bool = False  # the current attempt's task was accepted (a polling id or a result link)

    def spent(self, billed: Billed) -> None:
        """An attempt reached the service; a click is billed if any of its attempts was."""
        self.sent = True
        self.billed = more_billed(self.billed, billed)


class FoundryClient:
    """The one client every tab shares; create once, close with :meth:`aclose`."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        credential: TokenCredential | None = None,
        rng: random.Random | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_retries: int = MAX_RETRIES,
        retry_after_cap_s: float = RETRY_AFTER_CAP_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        send_floor_s: float | Mapping[Route, float] | None = None,
        service_timeout_s: float = SERVICE_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        self._deadline_s = deadline_s
        self._service_timeout = service_timeout_s
        if send_floor_s is None:
            send_floor_s = EMULATOR_SEND_FLOOR_S if settings.uses_emulator else SEND_FLOOR_S
        self._send_floor = send_floor_s
        self._max_retries = max_retries
        self._cap = retry_after_cap_s
        self._poll_interval = poll_interval_s
        self._sleep = sleep
        self._clock = clock
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
        )
        entra: EntraAuth | None = None
        self._auth: dict[str, Auth] = {}
        self._pacers: dict[str, Pacer] = {}
        for model_id, dep in settings.deployments.items():
            if dep.auth == "entra":
                entra = entra or EntraAuth(credential)
                self._auth[model_id] = entra
            else:
                assert dep.api_key is not None
                self._auth[model_id] = KeyAuth(dep.api_key, dep.key_header)
            if dep.quota is not None:
                self._pacers[model_id] = Pacer(dep.quota, clock=clock, sleep=sleep)

    # --- public surface ---------------------------------------------------------------

    @property
    def models(self) -> tuple[str, ...]:
        """Model IDs this installation can reach, in registry order."""
        return tuple(self.settings.deployments)

    def validate(self, request: GenerationRequest) -> ValidatedRequest:
        """Check a request without sending it (the UI uses this to show snapping early)."""
        self._deployment(request.model)
        return validate(request, rng=self._rng)

    def pacing(self, model_id: str) -> PacerStatus | None:
        pacer = self._pacers.get(model_id)
        return pacer.status() if pacer else None

    @property
    def deadline_s(self) -> float:
        """How long one generate call waits before it says ``overdue`` (and sends nothing more)."""
        return self._deadline_s

    @property
    def service_timeout_s(self) -> float:
        """How long an answer is awaited once its request is sent."""
        return self._service_timeout

    def send_floor(self, route: Route) -> float:
        """The least time a request on ``route`` needs; with less left of the deadline it is not sent."""
        floor = self._send_floor
        return float(floor) if isinstance(floor, int | float) else floor.get(route, max(floor.values()))

    async def generate(
        self, request: GenerationRequest, on_event: Callable[[ProgressEvent], None] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> GenerationResult:
        """One image, or a FluxError whose ``sent``/``billed`` say what the click cost.

        ``before_send`` runs right before each attempt is sent (after pacing); a FluxError it
        raises stops the click with nothing more sent (the tabs check the outputs folder's space).
        """
        start = self._clock()
        deployment = self._deployment(request.model)
        checked = validate(request, rng=self._rng)
        progress = _Progress(on_event, self._clock, start)

        prepared: list[PreparedImage] = []
        if checked.references:
            progress.emit("preparing", f"Preparing {len(checked.references)} reference image(s)", 1)
            prepared = await prepare_references(
                checked.references, max_pixels=checked.model.max_input_pixels, multiple=16
            )
        prepare_s = self._clock() - start
        # With ten references the body is megabytes of base64: build and encode it off the
        # event loop, once, so other requests keep moving (and retries resend the same bytes).
        wire = await asyncio.to_thread(
            build_request, deployment, checked.route, checked.prompt, checked.params, prepared,
            api_version=self.settings.api_version, image_api_path=self.settings.image_api_path, size=checked.size,
        )
        click = _Click(deadline=start + self._deadline_s, need=self.send_floor(checked.route))
        try:
            image, info, answer_meta, attempts, stats = await self._send_with_retries(
                deployment, checked, wire, progress, click, before_send
            )
        except FluxError as error:
            raise _told(error, click) from None

        adjustments = list(checked.adjustments)
        for i, ref in enumerate(prepared, start=1):
            adjustments.extend(f"Image {i}: {note}." for note in ref.adjustments)
        seed = checked.params.get("seed", answer_meta.get("seed"))
        total = self._clock() - start
        progress.emit("done", f"Done in {total:.1f} s", attempts)
        return GenerationResult(
            image=image,
            info=info,
            model=checked.model.id,
            deployment=deployment.name,
            route=checked.route,
            prompt=checked.prompt,
            seed=seed if isinstance(seed, int) else None,
            params_sent=dict(wire.shown),
            references=tuple(wire.shown[k] for k in wire.shown if k.startswith("input_image") or k == "image"),
            adjustments=tuple(adjustments),
            warnings=checked.warnings,
            service_cost=_number(answer_meta.get("cost")),
            cost_estimate_usd=checked.model.price.estimate(info.width * info.height),
            input_mp=_number(answer_meta.get("input_mp")),
            output_mp=_number(answer_meta.get("output_mp")) or round(info.width * info.height / 1_000_000, 3),
            revised_prompt=answer_meta.get("revised_prompt") if isinstance(answer_meta.get("revised_prompt"),
                                                                         str) else None,
            attempts=attempts,
            timings=Timings(prepare_s=prepare_s, total_s=total, **stats),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FoundryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"FoundryClient(mode={self.settings.mode!r}, models={list(self.models)!r})"

    # --- internals --------------------------------------------------------------------

    def _deployment(self, model_id: str) -> Deployment:
        dep = self.settings.deployments.get(model_id_text(model_id))
        if dep is not None:
            return dep
        if model_id in MODELS:
            raise ValidationError(
                f"{model_id} is not deployed in this installation. Add it to FLUX_DEPLOYMENTS "
                f"(for example FLUX_DEPLOYMENTS={model_id}) after deploying it in Foundry, or pick one of "
                f"{', '.join(self.models) or 'the configured models'}.",
                field="model",
            )
        raise ValidationError(f"Unknown model {model_id!r}; choose one of {', '.join(self.models)}.", field="model")

    async def _send_with_retries(
        self, deployment: Deployment, checked: ValidatedRequest, wire: WireRequest, progress: _Progress,
        click: _Click, before_send: Callable[[], None] | None,
    ) -> tuple[bytes, ImageInfo, dict[str, Any], int, dict[str, float]]:
        stats = {"paced_s": 0.0, "network_s": 0.0, "retry_wait_s": 0.0, "decode_s": 0.0}
        auth = self._auth[checked.model.id]
        pacer = self._pacers.get(checked.model.id)
        retries = 0
        refreshed_auth = False
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._wait_for_slot(pacer, checked, progress, attempt, stats, click)
                if before_send is not None:
                    before_send()
                progress.emit("sent", f"Sent to {checked.model.display_name}", attempt)
                image, meta = await self._exchange(deployment, checked, wire, auth, progress, attempt, stats, click)
                decode_start = self._clock()
                info = _inspect(image, click)
                stats["decode_s"] += self._clock() - decode_start
                return image, info, meta, attempt, stats
            except _AttemptFailed as failed:
                if failed.status is None and failed.failure is None:
                    raise failed.error from None  # final by nature (an expired link, a lost task)
                if failed.status == 401 and not refreshed_auth and auth.invalidate():
                    refreshed_auth = True  # an expired Entra token: one fresh try, not a retry
                    continue
                decision = decide_retry(
                    retries_done=retries, status=failed.status, failure=failed.failure, headers=failed.headers,
                    message=failed.error.message if isinstance(failed.error, ServiceError) else None,
                    rand=self._rng.random(), time_left=click.deadline - click.need - self._clock(),
                    max_retries=self._max_retries, cap=self._cap,
                )
                if decision.quota_wall:
                    raise QuotaExhaustedError(
                        f"{checked.model.display_name}'s quota is used up for now: the service asks to wait "
                        f"{decision.wait:.0f} s, longer than flux-ui waits inside one request "
                        f"({self._cap:.0f} s). Try again in {decision.wait / 60:.0f} min, or raise the deployment's "
                        "tier in Foundry.",
                        status=429, retry_after=decision.wait,
                    ) from None
                if not decision.retry:
                    raise _gave_up(failed, attempt, asked_wait=decision.wait if decision.wait > self._cap else None
                                   ) from None
                retries += 1
                log.info("retrying %s after %s (wait %.2fs)", checked.model.id, decision.reason, decision.wait)
                progress.emit("retrying", f"Retrying in {decision.wait:.1f} s: {decision.reason}", attempt,
                              decision.wait)
                if failed.status == 429 and pacer is not None:
                    # Hold the whole deployment back; the retry then waits in the pacer like
                    # every other request to it, instead of jumping the queue.
                    pacer.penalize(decision.wait)
                else:
                    await self._sleep(decision.wait)
                    stats["retry_wait_s"] += decision.wait

    async def _wait_for_slot(self, pacer: Pacer | None, checked: ValidatedRequest, progress: _Progress,
                             attempt: int, stats: dict[str, float], click: _Click) -> None:
        """Wait for the deployment's quota, but never so long that too little time is left for an answer:
        a request sent then is billed and its image arrives after the person stopped waiting."""
        if pacer is not None:
            status = pacer.status()
            self._check_time(checked, click, status.next_slot_in, pacer)
            if status.next_slot_in > 0:
                progress.emit("paced", f"Waiting {status.next_slot_in:.1f} s for a quota slot "
                              f"({pacer.quota.describe()})", attempt, status.next_slot_in)
            try:
                async with asyncio.timeout(max(0.0, click.deadline - click.need - self._clock())):
                    stats["paced_s"] += await pacer.acquire()
            except TimeoutError:
                self._check_time(checked, click, float("inf"), pacer)  # raises: the queue was longer
        self._check_time(checked, click, 0.0, pacer)

    def _check_time(self, checked: ValidatedRequest, click: _Click, wait: float, pacer: Pacer | None) -> None:
        """Raise "not sent" when, after ``wait`` more seconds, less than a request needs would be left."""
        left = click.deadline - self._clock()
        if left - wait >= click.need:
            return
        name = checked.model.display_name
        why = (f"its quota ({pacer.quota.describe()}) had no free slot in time"
               if pacer is not None and wait > 0 else f"only {max(0.0, left):.1f} s of it was left")
        retry = "The retry was" if click.sent else "The request was"
        raise ServiceTimeoutError(
            f"{retry} not sent to {name}: flux-ui waits {self._deadline_s:g} s for an image and {why}, while a "
            f"request there takes at least {click.need:g} s, so its answer could not have arrived in time. "
            "Try again in a moment.", sent=False, billed="no")

    async def _exchange(
        self, deployment: Deployment, checked: ValidatedRequest, wire: WireRequest, auth: Auth,
        progress: _Progress, attempt: int, stats: dict[str, float], click: _Click,
    ) -> tuple[bytes, dict[str, Any]]:
        """One sent attempt, awaited up to the service's timeout whatever is left of the deadline
        (it is billed either way); when the deadline passes first, an ``overdue`` event says so."""
        click.accepted = False
        loop = asyncio.get_running_loop()
        overdue = loop.call_later(
            max(0.0, click.deadline - self._clock()), progress.emit, "overdue",
            f"No answer within {self._deadline_s:g} s; the request was sent, so its answer is still awaited",
            attempt)
        net_start = self._clock()
        try:
            async with asyncio.timeout(self._service_timeout):
                return await self._attempt(deployment, checked, wire, auth, progress, attempt, stats, click)
        except TimeoutError:
            click.spent("yes" if click.accepted else "maybe")
            raise _AttemptFailed(ServiceTimeoutError(
                f"No image from {checked.model.display_name} within {self._service_timeout:g} s of sending it, "
                "the longest flux-ui waits for an answer. Try again later."), failure="timeout") from None
        except _AttemptFailed as failed:
            if failed.failure != "connect":  # a refused connection never reached the service
                click.spent(failed.billed or _billed_by(failed, click.accepted))
            raise
        except FluxError as error:  # a refusal, or a result the service made but flux-ui could not fetch
            refused = isinstance(error, ContentRefusedError) or not click.accepted
            click.spent("no" if refused else "yes")
            raise
        finally:
            overdue.cancel()
            stats["network_s"] += self._clock() - net_start

    async def _attempt(
        self, deployment: Deployment, checked: ValidatedRequest, wire: WireRequest, auth: Auth,
        progress: _Progress, attempt: int, stats: dict[str, float], click: _Click,
    ) -> tuple[bytes, dict[str, Any]]:
        headers = {**wire.headers, **await auth.headers()}
        response = await self._request(
            wire.method, wire.url, params=wire.query, content=wire.content, data=wire.form, files=wire.files,
            headers=headers,
        )
        if response.status_code >= 400:
            retry_after = parse_retry_after(response.headers)
            error = error_from_response(deployment, checked.route, response.status_code, response.content,
                                        retry_after)
            raise _AttemptFailed(error, status=response.status_code, headers=dict(response.headers))
        decode_start = self._clock()
        answer = self._parse(checked.route, response)
        stats["decode_s"] += self._clock() - decode_start
        meta = dict(answer.meta)
        click.accepted = bool(answer.polling_url or (answer.image is None and answer.url))
        if answer.polling_url:
            answer, seed = await self._poll(deployment, answer, auth, progress, attempt)
            if seed is not None:
                meta["seed"] = seed
        if answer.image is None and answer.url:
            progress.emit("downloading", "Downloading the result", attempt)
            return await self._download(deployment, answer.url, auth), meta
        assert answer.image is not None
        return answer.image, meta

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            host = urlparse(url).netloc
            raise _AttemptFailed(ServiceConnectionError(
                f"Could not connect to {host} ({type(exc).__name__}). Check the endpoint URL in your settings "
                "and this machine's network."), failure="connect") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise _AttemptFailed(ServiceConnectionError(
                f"The connection dropped before the answer arrived ({type(exc).__name__}). Try again in a moment; "
                "if it keeps happening, check this machine's network or proxy.", sent=True, billed="maybe"),
                failure="dropped") from None
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise _AttemptFailed(ServiceTimeoutError(
                f"The service did not answer in time ({type(exc).__name__}). Try again later."),
                failure="timeout") from None

    def _parse(self, route: Route, response: httpx.Response) -> Answer:
        try:
            return parse_answer(route, response.headers.get("content-type", ""), response.content)
        except ContentRefusedError:
            raise
        except ServiceError as error:
            kind: Failure = "malformed" if isinstance(error, MalformedResponseError) else "empty"
            raise _AttemptFailed(error, failure=kind) from None

    async def _poll(
        self, deployment: Deployment, answer: Answer, auth: Auth, progress: _Progress, attempt: int
    ) -> tuple[Answer, int | None]:
        """Follow BFL's native id/polling_url flow until the task is Ready [open]."""
        assert answer.polling_url is not None
        url = self._checked_result_url(deployment, answer.polling_url)
        interval = self._poll_interval
        headers = await auth.headers() if _same_host(url, deployment.endpoint) else {}
        poll_failures = 0
        while True:
            progress.emit("polling", "The service is generating", attempt)
            try:
                data = await self._poll_once(deployment, url, headers)
            except _AttemptFailed as failed:
                await self._wait_to_fetch_again(failed, poll_failures)
                poll_failures += 1
                continue
            status = str(data.get("status", ""))
            if status == "Ready":
                result = data.get("result") or {}
                sample = result.get("sample") if isinstance(result, dict) else None
                if not isinstance(sample, str) or not sample:
                    raise _AttemptFailed(MalformedResponseError("The finished task held no image link."),
                                         failure="empty")
                seed = result.get("seed") if isinstance(result.get("seed"), int) else None
                return Answer(url=sample), seed
            if status in ("Request Moderated", "Content Moderated"):
                raise ContentRefusedError(
                    f"{deployment.model.display_name} refused this request on content grounds ({status}). Rephrase "
                    "the prompt or change the reference images and try again.", status=200, code=status)
            if status in ("Error", "Failed"):
                raise _AttemptFailed(GenerationFailedError(
                    f"The service could not generate the image (task status {status})."), failure="empty",
                    billed="no")  # the service's own verdict: it made no image
            if status == "Task not found":
                raise _AttemptFailed(GenerationFailedError(
                    "The service lost track of the task (Task not found). Try again."))
            await self._sleep(interval)
            interval = min(interval * 1.5, MAX_POLL_INTERVAL_S)

    async def _poll_once(self, deployment: Deployment, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
        response = await self._request("GET", url, headers=headers)
        if response.status_code >= 400:
            error = error_from_response(deployment, Route.BFL, response.status_code, response.content)
            raise _AttemptFailed(error, status=response.status_code, headers=dict(response.headers))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _AttemptFailed(MalformedResponseError("A polling answer could not be read."), failure="malformed")
        return data

    async def _wait_to_fetch_again(self, failed: _AttemptFailed, failures: int) -> None:
        """A poll or a result download failed on its way (5xx, 429, a dropped connection, an unreadable
        answer). The task is accepted, and billed: fetch again rather than send a second generation.

        Raises when the failure is not one to wait out; once fetches have failed repeatedly, the
        error is final, so no second generation is sent either.
        """
        if failed.status is None and failed.failure is None:
            raise failed
        decision = decide_retry(retries_done=failures, status=failed.status, failure=failed.failure,
                                headers=failed.headers, rand=self._rng.random(), max_retries=self._max_retries,
                                cap=self._cap)
        if decision.retry:
            log.info("fetching again after %s (wait %.2fs)", decision.reason, decision.wait)
            await self._sleep(decision.wait)
            return
        if failures and not decision.quota_wall:
            raise _gave_up(failed, failures + 1) from None  # a FluxError: final, the attempt is not resent
        raise failed  # a 401, a quota wall…: the attempt's own handling decides

    async def _download(self, deployment: Deployment, url: str, auth: Auth) -> bytes:
        """Fetch a result URL at once: signed links expire within minutes [open]."""
        url = self._checked_result_url(deployment, url)
        headers = await auth.headers() if _same_host(url, deployment.endpoint) else {}
        failures = 0
        while True:
            try:
                return await self._download_once(deployment, url, headers)
            except _AttemptFailed as failed:
                await self._wait_to_fetch_again(failed, failures)
                failures += 1

    async def _download_once(self, deployment: Deployment, url: str, headers: Mapping[str, str]) -> bytes:
        response = await self._request("GET", url, headers=headers)
        if response.status_code in (401, 403, 404, 410):
            raise _AttemptFailed(GenerationFailedError(
                f"The result link no longer works (HTTP {response.status_code}); it may have expired before "
                "flux-ui could fetch it."))
        if response.status_code >= 400:
            error = error_from_response(deployment, Route.BFL, response.status_code, response.content)
            raise _AttemptFailed(error, status=response.status_code, headers=dict(response.headers))
        if not response.content:
            raise _AttemptFailed(MalformedResponseError("The result link gave an empty file."), failure="empty")
        return response.content

    def _checked_result_url(self, deployment: Deployment, url: str) -> str:
        """Refuse result links that point anywhere but the service (or the configured emulator)."""
        if _same_host(url, deployment.endpoint):
            return url
        parsed = urlparse(url)
        host = (parsed.hostname or "").lower()
        try:
            ipaddress.ip_address(host)
            is_ip = True
        except ValueError:
            is_ip = False
        if parsed.scheme == "https" and not is_ip and host.endswith(RESULT_HOST_SUFFIXES):
            return url
        raise _AttemptFailed(MalformedResponseError(
            f"The service pointed at a result on {host or 'an unknown host'}, which is not one of its own hosts; "
            "flux-ui did not fetch it."))


class _Progress:
    def __init__(self, callback: Callable[[ProgressEvent], None] | None, clock: Callable[[], float],
                 start: float) -> None:
        self._callback = callback
        self._clock = clock
        self._start = start

    def emit(self, stage: Stage, message: str, attempt: int, wait_s: float = 0.0) -> None:
        if self._callback is None:
            return
        try:
            self._callback(ProgressEvent(stage, message, attempt, self._clock() - self._start, wait_s))
        except Exception:  # a broken progress display must not fail the request
            log.exception("progress callback failed")


def _gave_up(failed: _AttemptFailed, attempts: int, asked_wait: float | None = None) -> FluxError:
    """The last failure as the person reads it: with what to do when answers kept arriving without a
    usable image (the parser's messages only say what was wrong), or when the service asked for a
    longer wait than flux-ui sits through, and how many attempts were made."""
    error = failed.error
    text = error.message
    if failed.failure in ("empty", "malformed"):
        text += " Try again in a moment."
    if asked_wait is not None:
        text += (f" The service asks to wait {asked_wait:.0f} s before trying again, longer than flux-ui waits "
                 f"inside one request; try again in {max(1, round(asked_wait / 60))} min.")
    if attempts > 1:
        text += f" (after {attempts} attempts)"
    error.args = (text,)
    return error


def _billed_by(failed: _AttemptFailed, accepted: bool) -> Billed:
    """What a failed attempt that reached the service costs: an error answer nothing, an accepted task
    its image, an answer that never arrived whole (or was unreadable) perhaps."""
    if accepted:
        return "yes"
    if failed.status is not None:
        return "no"
    return "maybe"


def _told(error: FluxError, click: _Click) -> FluxError:
    """The click's error with what all its attempts cost, said in its message."""
    return with_billing(error, click.sent, click.billed)


def _inspect(image: bytes, click: _Click) -> ImageInfo:
    try:
        return inspect_image(image)
    except ValueError as exc:
        click.spent("yes")  # an answer with an image in it, billed, but not one flux-ui can use
        error = MalformedResponseError(f"The service returned something that is not a usable image: {exc}")
        raise _AttemptFailed(error, failure="malformed") from None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _same_host(url: str, endpoint: str) -> bool:
    a, b = urlparse(url), urlparse(endpoint)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)

