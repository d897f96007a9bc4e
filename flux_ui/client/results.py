"""Fetching an accepted task's image: polling BFL's task, downloading result links, and checking their hosts.

:class:`ResultFetcher` is the part of :class:`~flux_ui.client.core.FoundryClient` that follows an
answer which is not yet an image. The task is accepted, and billed, by then: a poll or download that
fails on its way is fetched again rather than a second generation sent. A result link is fetched only
from the service's own hosts (:func:`checked_result_url`).
"""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlparse

import httpx

from flux_ui.client.auth import Auth
from flux_ui.client.events import Progress
from flux_ui.client.failures import AttemptFailed, gave_up
from flux_ui.client.retry import decide_retry
from flux_ui.client.wire import Answer, error_from_response
from flux_ui.errors import ContentRefusedError, GenerationFailedError, MalformedResponseError
from flux_ui.registry import Route
from flux_ui.settings import Deployment

log = logging.getLogger("flux_ui.client")

POLL_INTERVAL_S = 0.5
MAX_POLL_INTERVAL_S = 2.0
#: Hosts a result URL may point at, besides the configured endpoint's own host: Azure's
#: and BFL's delivery hosts. Anything else (private addresses above all) is not fetched.
RESULT_HOST_SUFFIXES = (".azure.com", ".windows.net", ".microsoft.com", ".azureedge.net", ".bfl.ai", ".bfl.ml")


class ResultFetcher:
    """Polls and downloads on the client's transport; the client sets the attributes below."""

    _rng: random.Random
    _sleep: Callable[[float], Any]
    _max_retries: int
    _cap: float
    _poll_interval: float
    #: Every HTTP call, with transport failures raised as AttemptFailed (the sender provides it).
    _request: Callable[..., Awaitable[httpx.Response]]

    async def _poll(
        self, deployment: Deployment, answer: Answer, auth: Auth, progress: Progress, attempt: int
    ) -> tuple[Answer, int | None]:
        """Follow BFL's native id/polling_url flow until the task is Ready [open]."""
        assert answer.polling_url is not None
        url = checked_result_url(deployment, answer.polling_url)
        interval = self._poll_interval
        headers = await auth.headers() if same_host(url, deployment.endpoint) else {}
        poll_failures = 0
        while True:
            progress.emit("polling", "The service is generating", attempt)
            try:
                data = await self._poll_once(deployment, url, headers)
            except AttemptFailed as failed:
                await self._wait_to_fetch_again(failed, poll_failures)
                poll_failures += 1
                continue
            finished = task_outcome(deployment, data)
            if finished is not None:
                return finished
            await self._sleep(interval)
            interval = min(interval * 1.5, MAX_POLL_INTERVAL_S)

    async def _poll_once(self, deployment: Deployment, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
        response = await self._request("GET", url, headers=headers)
        if response.status_code >= 400:
            error = error_from_response(deployment, Route.BFL, response.status_code, response.content)
            raise AttemptFailed(error, status=response.status_code, headers=dict(response.headers))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AttemptFailed(MalformedResponseError("A polling answer could not be read."), failure="malformed")
        return data

    async def _wait_to_fetch_again(self, failed: AttemptFailed, failures: int) -> None:
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
            raise gave_up(failed, failures + 1) from None  # a FluxError: final, the attempt is not resent
        raise failed  # a 401, a quota wall…: the attempt's own handling decides

    async def _download(self, deployment: Deployment, url: str, auth: Auth) -> bytes:
        """Fetch a result URL at once: signed links expire within minutes [open]."""
        url = checked_result_url(deployment, url)
        headers = await auth.headers() if same_host(url, deployment.endpoint) else {}
        failures = 0
        while True:
            try:
                return await self._download_once(deployment, url, headers)
            except AttemptFailed as failed:
                await self._wait_to_fetch_again(failed, failures)
                failures += 1

    async def _download_once(self, deployment: Deployment, url: str, headers: Mapping[str, str]) -> bytes:
        response = await self._request("GET", url, headers=headers)
        if response.status_code in (401, 403, 404, 410):
            raise AttemptFailed(GenerationFailedError(
                f"The result link no longer works (HTTP {response.status_code}); it may have expired before "
                "flux-ui could fetch it."))
        if response.status_code >= 400:
            error = error_from_response(deployment, Route.BFL, response.status_code, response.content)
            raise AttemptFailed(error, status=response.status_code, headers=dict(response.headers))
        if not response.content:
            raise AttemptFailed(MalformedResponseError("The result link gave an empty file."), failure="empty")
        return response.content


def task_outcome(deployment: Deployment, data: Mapping[str, Any]) -> tuple[Answer, int | None] | None:
    """A polled task's result link and seed once it is Ready, None while it runs; raises when it ended
    without an image (refused on content grounds, failed, or lost)."""
    status = str(data.get("status", ""))
    if status == "Ready":
        result = data.get("result") or {}
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str) or not sample:
            raise AttemptFailed(MalformedResponseError("The finished task held no image link."), failure="empty")
        seed = result.get("seed") if isinstance(result.get("seed"), int) else None
        return Answer(url=sample), seed
    if status in ("Request Moderated", "Content Moderated"):
        raise ContentRefusedError(
            f"{deployment.model.display_name} refused this request on content grounds ({status}). Rephrase "
            "the prompt or change the reference images and try again.", status=200, code=status)
    if status in ("Error", "Failed"):
        raise AttemptFailed(GenerationFailedError(
            f"The service could not generate the image (task status {status})."), failure="empty",
            billed="no")  # the service's own verdict: it made no image
    if status == "Task not found":
        raise AttemptFailed(GenerationFailedError(
            "The service lost track of the task (Task not found). Try again."))
    return None


def checked_result_url(deployment: Deployment, url: str) -> str:
    """Refuse result links that point anywhere but the service (or the configured emulator)."""
    if same_host(url, deployment.endpoint):
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
    raise AttemptFailed(MalformedResponseError(
        f"The service pointed at a result on {host or 'an unknown host'}, which is not one of its own hosts; "
        "flux-ui did not fetch it."))


def same_host(url: str, endpoint: str) -> bool:
    """Whether ``url`` is on the configured endpoint (same scheme, host and port)."""
    a, b = urlparse(url), urlparse(endpoint)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
