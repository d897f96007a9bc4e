"""FoundryClient: one request in, one image (or one typed error) out.

Every tab goes through :meth:`FoundryClient.generate`: validate against the registry,
prepare references, wait for the deployment's pacing slot, send, retry what is worth
retrying, follow polling and result URLs, and check the image that came back. This module
holds the public entry and what it returns; sending and retrying are in
:mod:`flux_ui.client.sending`, pacing slots and the deadline in :mod:`flux_ui.client.deadline`,
polling and downloads in :mod:`flux_ui.client.results`, progress events in
:mod:`flux_ui.client.events` (the names importers use are importable from here too).

The deadline is the person's patience and decides only what is *sent*: a request is sent
only while enough of it is left for an answer to come back (:data:`SEND_FLOOR_S`). Once
sent, a request is billed whether or not anyone still waits, so its answer is awaited up to
the service's own timeout; when the deadline passes first, an ``overdue`` event says so,
and the caller decides whether to keep waiting (the tabs let it finish in the background).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx

from flux_ui.client.auth import Auth, EntraAuth, KeyAuth, TokenCredential
from flux_ui.client.deadline import Click, told
from flux_ui.client.events import Progress, ProgressEvent
from flux_ui.client.failures import AttemptFailed
from flux_ui.client.results import POLL_INTERVAL_S
from flux_ui.client.retry import MAX_RETRIES, RETRY_AFTER_CAP_S, parse_retry_after
from flux_ui.client.sending import AttemptSender
from flux_ui.client.validation import GenerationRequest, ValidatedRequest, model_id_text, unknown_model, validate
from flux_ui.client.wire import (
    ProbeAnswer,
    WireRequest,
    build_request,
    error_from_response,
    probe_request,
    summarise_image,
)
from flux_ui.errors import FluxError, ValidationError
from flux_ui.fair_queue import Board
from flux_ui.images import ImageInfo, PreparedImage, prepare_references
from flux_ui.pacing import Pacer, PacerStatus
from flux_ui.registry import MODELS, Route
from flux_ui.settings import Deployment, Settings

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
    params: Mapping[str, Any]  # the validated parameters, by the model's own names (what history keeps)
    params_sent: Mapping[str, Any]  # the exact body, images summarised (for display only)
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


class FoundryClient(AttemptSender):
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
        on_response: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        self.settings = settings
        # Sees every answer (requests, polls, downloads) as it arrives: the doctor reports from it
        # what the service did where the contract leaves it open. It must not raise.
        self._on_response = on_response
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
        #: Every deployment's waiting requests, for the person who asked them (ui/queue_panel.py).
        self.board = Board(settings.users.max_queued)
        self._auth, self._pacers = _per_deployment(settings, credential, clock, sleep, self.board)

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
        progress = Progress(on_event, self._clock, start)
        prepared = await _prepared(checked, progress)
        prepare_s = self._clock() - start
        wire = await self._wire(deployment, checked, prepared)
        click = Click(deadline=start + self._deadline_s, need=self.send_floor(checked.route),
                      budget_s=self._deadline_s, clock=self._clock, order=request.asked)
        try:
            image, info, answer_meta, attempts, stats = await self._send_with_retries(
                deployment, checked, wire, progress, click, before_send
            )
        except FluxError as error:
            raise told(error, click) from None
        total = self._clock() - start
        progress.emit("done", f"Done in {total:.1f} s", attempts)
        return _result(deployment, checked, prepared, wire, image, info, answer_meta, attempts,
                       Timings(prepare_s=prepare_s, total_s=total, **stats))

    async def probe(self, model_id: str, route: Route, timeout_s: float = 20.0) -> ProbeAnswer:
        """Ask a deployment something it refuses before generating (:func:`~flux_ui.client.wire.probe_request`):
        whether the endpoint answers, the credential is taken and the deployment is there, billing nothing.

        Raises ValidationError for a model this installation does not offer, AuthenticationError when no
        Entra token can be had, ServiceConnectionError or ServiceTimeoutError when no answer comes.
        """
        deployment = self._deployment(model_id)
        wire = probe_request(deployment, route, api_version=self.settings.api_version,
                             image_api_path=self.settings.image_api_path)
        headers = {**wire.headers, **await self._auth[deployment.model.id].headers()}
        start = self._clock()
        try:
            response = await self._request(wire.method, wire.url, params=wire.query, content=wire.content,
                                           data=wire.form, files=wire.files, headers=headers, timeout=timeout_s)
        except AttemptFailed as failed:
            raise failed.error from None
        error = None
        if response.status_code >= 400:
            error = error_from_response(deployment, route, response.status_code, response.content,
                                        parse_retry_after(response.headers))
        return ProbeAnswer(response.status_code, error, self._clock() - start)

    async def aclose(self) -> None:
        await self._http.aclose()
        for pacer in self._pacers.values():
            if (close := getattr(pacer, "aclose", None)) is not None:  # a shared pacer's Redis pool
                await close()

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
        raise unknown_model(model_id, self.models)

    async def _wire(self, deployment: Deployment, checked: ValidatedRequest, prepared: list[PreparedImage],
                    ) -> WireRequest:
        """The request body, built once for every attempt."""
        # With ten references the body is megabytes of base64: build and encode it off the
        # event loop, once, so other requests keep moving (and retries resend the same bytes).
        return await asyncio.to_thread(
            build_request, deployment, checked.route, checked.prompt, checked.params, prepared,
            api_version=self.settings.api_version, image_api_path=self.settings.image_api_path, size=checked.size,
        )


async def _prepared(checked: ValidatedRequest, progress: Progress) -> list[PreparedImage]:
    """The references decoded and resized for the model (none when the request has none)."""
    if not checked.references:
        return []
    progress.emit("preparing", f"Preparing {len(checked.references)} reference image(s)", 1)
    return await prepare_references(checked.references, max_pixels=checked.model.max_input_pixels, multiple=16)


def _per_deployment(settings: Settings, credential: TokenCredential | None, clock: Callable[[], float],
                    sleep: Callable[[float], Any], board: Board) -> tuple[dict[str, Auth], dict[str, Pacer]]:
    """Each deployment's credentials (one Entra credential shared by all that use it) and pacer."""
    entra: EntraAuth | None = None
    auth: dict[str, Auth] = {}
    pacers: dict[str, Pacer] = {}
    store = None
    if settings.shared.redis_url:  # replicas share each deployment's window and fair queue (pacing_redis.py)
        from flux_ui.pacing_redis import RedisStore, SharedPacer
        store = RedisStore(settings.shared.redis_url)
    for model_id, dep in settings.deployments.items():
        if dep.auth == "entra":
            entra = entra or EntraAuth(credential)
            auth[model_id] = entra
        else:
            assert dep.api_key is not None
            auth[model_id] = KeyAuth(dep.api_key, dep.key_header)
        if dep.quota is not None and store is not None:
            shared = SharedPacer(dep.quota, store, board=board, name=model_id, key=dep.name, clock=clock)
            pacers[model_id] = shared  # type: ignore[assignment]  # the same interface, duck-typed
        elif dep.quota is not None:
            pacers[model_id] = Pacer(dep.quota, clock=clock, sleep=sleep, board=board, name=model_id)
    return auth, pacers


def _result(deployment: Deployment, checked: ValidatedRequest, prepared: list[PreparedImage], wire: WireRequest,
            image: bytes, info: ImageInfo, answer_meta: Mapping[str, Any], attempts: int,
            timings: Timings) -> GenerationResult:
    """The image with what was asked, what was sent, what flux-ui changed and what the service said."""
    adjustments = list(checked.adjustments)
    for i, ref in enumerate(prepared, start=1):
        adjustments.extend(f"Image {i}: {note}." for note in ref.adjustments)
    seed = checked.params.get("seed", answer_meta.get("seed"))
    revised = answer_meta.get("revised_prompt")
    return GenerationResult(
        image=image,
        info=info,
        model=checked.model.id,
        deployment=deployment.name,
        route=checked.route,
        prompt=checked.prompt,
        seed=seed if isinstance(seed, int) else None,
        params=dict(checked.params),
        params_sent=dict(wire.shown),
        references=tuple(summarise_image(i, ref) for i, ref in enumerate(prepared, start=1)),
        adjustments=tuple(adjustments),
        warnings=checked.warnings,
        service_cost=_number(answer_meta.get("cost")),
        cost_estimate_usd=checked.model.price.estimate(info.width * info.height),
        input_mp=_number(answer_meta.get("input_mp")),
        output_mp=_number(answer_meta.get("output_mp")) or round(info.width * info.height / 1_000_000, 3),
        revised_prompt=revised if isinstance(revised, str) else None,
        attempts=attempts,
        timings=timings,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
