"""Sending one request on the wire: each attempt after its pacing slot, retried while worth it and still in time.

:class:`AttemptSender` is the part of :class:`~flux_ui.client.core.FoundryClient` that sends: the retry
loop, one attempt awaited up to the service's timeout (with an ``overdue`` event when the deadline
passes first), and the HTTP call every request, poll and download goes through (:meth:`_request`).
Once sent, an attempt is billed whether or not anyone still waits, and the click's cost says so.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import httpx

from flux_ui.client.auth import Auth
from flux_ui.client.deadline import Click, wait_for_slot
from flux_ui.client.events import Progress
from flux_ui.client.failures import AttemptFailed, billed_by, gave_up
from flux_ui.client.results import ResultFetcher
from flux_ui.client.retry import Failure, RetryDecision, decide_retry, parse_retry_after, retry_line
from flux_ui.client.validation import ValidatedRequest
from flux_ui.client.wire import Answer, WireRequest, error_from_response, parse_answer
from flux_ui.errors import (
    ContentRefusedError,
    FluxError,
    MalformedResponseError,
    QuotaExhaustedError,
    ServiceConnectionError,
    ServiceError,
    ServiceTimeoutError,
)
from flux_ui.images import ImageInfo, inspect_image
from flux_ui.pacing import Pacer, trace_sends
from flux_ui.registry import Route
from flux_ui.settings import Deployment

log = logging.getLogger("flux_ui.client")


class AttemptSender(ResultFetcher):
    """Sends a click's attempts and follows each to its image; the client sets the attributes below."""

    _http: httpx.AsyncClient
    _auth: dict[str, Auth]
    _pacers: dict[str, Pacer]
    _rng: random.Random
    _clock: Callable[[], float]
    _deadline_s: float
    _service_timeout: float
    _on_response: Callable[[httpx.Response], None] | None

    async def _send_with_retries(
        self, deployment: Deployment, checked: ValidatedRequest, wire: WireRequest, progress: Progress,
        click: Click, before_send: Callable[[], None] | None,
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
                await wait_for_slot(click, pacer, checked, progress, attempt, stats)
                if before_send is not None:
                    before_send()
                progress.emit("sent", f"Sent to {checked.model.display_name}", attempt)
                image, meta = await self._exchange(deployment, checked, wire, auth, progress, attempt, stats, click)
                decode_start = self._clock()
                info = inspect_answer(image, click)
                stats["decode_s"] += self._clock() - decode_start
                return image, info, meta, attempt, stats
            except AttemptFailed as failed:
                if failed.status is None and failed.failure is None:
                    raise failed.error from None  # final by nature (an expired link, a lost task)
                if failed.status == 401 and not refreshed_auth and auth.invalidate():
                    refreshed_auth = True  # an expired Entra token: one fresh try, not a retry
                    continue
                decision = self._retry_decision(checked, failed, attempt, retries, click)
                retries += 1
                log.info("retrying %s after %s (wait %.2fs)", checked.model.id, decision.reason, decision.wait)
                progress.emit("retrying", retry_line(decision.reason, decision.wait, attempt + 1,
                                                     attempt + 1 + self._max_retries - retries), attempt, decision.wait)
                if failed.status == 429 and pacer is not None:
                    # Hold the whole deployment back; the retry then waits in the pacer like
                    # every other request to it, instead of jumping the queue.
                    pacer.penalize(decision.wait)
                else:
                    await self._sleep(decision.wait)
                    stats["retry_wait_s"] += decision.wait

    def _retry_decision(self, checked: ValidatedRequest, failed: AttemptFailed, attempt: int, retries: int,
                        click: Click) -> RetryDecision:
        """Whether (and after how long) to send the attempt again; raises the click's error when not."""
        decision = decide_retry(
            retries_done=retries, status=failed.status, failure=failed.failure, headers=failed.headers,
            message=failed.error.message if isinstance(failed.error, ServiceError) else None,
            rand=self._rng.random(), time_left=click.time_to_send(),
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
            raise gave_up(failed, attempt, asked_wait=decision.wait if decision.wait > self._cap else None
                          ) from None
        return decision

    async def _exchange(
        self, deployment: Deployment, checked: ValidatedRequest, wire: WireRequest, auth: Auth,
        progress: Progress, attempt: int, stats: dict[str, float], click: Click,
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
            raise AttemptFailed(ServiceTimeoutError(
                f"No image from {checked.model.display_name} within {self._service_timeout:g} s of sending it, "
                "the longest flux-ui waits for an answer. Try again later."), failure="timeout") from None
        except AttemptFailed as failed:
            if failed.failure != "connect":  # a refused connection never reached the service
                click.spent(failed.billed or billed_by(failed, click.accepted))
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
        progress: Progress, attempt: int, stats: dict[str, float], click: Click,
    ) -> tuple[bytes, dict[str, Any]]:
        headers = {**wire.headers, **await auth.headers()}
        response = await self._request(
            wire.method, wire.url, params=wire.query, content=wire.content, data=wire.form, files=wire.files,
            headers=headers,
            # The pacer re-stamps this request's slot when its body is written (see pacing.mark_sent).
            extensions={"trace": trace_sends},
        )
        if response.status_code >= 400:
            retry_after = parse_retry_after(response.headers)
            error = error_from_response(deployment, checked.route, response.status_code, response.content,
                                        retry_after)
            raise AttemptFailed(error, status=response.status_code, headers=dict(response.headers))
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
            response = await self._http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            host = urlparse(url).netloc
            raise AttemptFailed(ServiceConnectionError(
                f"Could not connect to {host} ({type(exc).__name__}). Check the endpoint URL in your settings "
                "and this machine's network."), failure="connect") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise AttemptFailed(ServiceConnectionError(
                f"The connection dropped before the answer arrived ({type(exc).__name__}). Try again in a moment; "
                "if it keeps happening, check this machine's network or proxy.", sent=True, billed="maybe"),
                failure="dropped") from None
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise AttemptFailed(ServiceTimeoutError(
                f"The service did not answer in time ({type(exc).__name__}). Try again later."),
                failure="timeout") from None
        if self._on_response is not None:
            self._on_response(response)
        return response

    def _parse(self, route: Route, response: httpx.Response) -> Answer:
        try:
            return parse_answer(route, response.headers.get("content-type", ""), response.content)
        except ContentRefusedError:
            raise
        except ServiceError as error:
            kind: Failure = "malformed" if isinstance(error, MalformedResponseError) else "empty"
            raise AttemptFailed(error, failure=kind) from None


def inspect_answer(image: bytes, click: Click) -> ImageInfo:
    """The image's format and size, or a (billed) failure when it is not a usable image."""
    try:
        return inspect_image(image)
    except ValueError as exc:
        click.spent("yes")  # an answer with an image in it, billed, but not one flux-ui can use
        error = MalformedResponseError(f"The service returned something that is not a usable image: {exc}")
        raise AttemptFailed(error, failure="malformed") from None
