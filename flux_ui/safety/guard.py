"""The two checks a tab makes: a prompt before it is sent, a result before it is shown or saved.

    guard = SafetyGuard.from_settings(runtime.settings, public=instance_is_public(...))  # None: off
    if guard:
        await guard.screen_prompt(prompt)          # before the FLUX request: nothing sent if it raises
        ...
        await guard.screen_image(result.image, about={"model": ..., "prompt": ..., "user": ...})
                                                   # before History.save and the page

Each returns the :class:`~flux_ui.safety.verdict.Verdict` of what it let through (``checked``
False when Content Safety gave none and the settings fail open), or raises a
:class:`~flux_ui.errors.SafetyError` whose message is for the person: ``SafetyBlockedError`` names
the category; ``SafetyUnavailableError`` says Content Safety could not answer. A blocked or
unchecked result is kept in quarantine (``err.quarantined``) before the error is raised. What a
prompt error cost is "nothing sent"; a result's is "billed", in its fields and its words.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from flux_ui.client.auth import TokenCredential
from flux_ui.errors import SafetyBlockedError, SafetyUnavailableError, billing_sentence
from flux_ui.hosts import is_loopback
from flux_ui.safety.client import SafetyClient
from flux_ui.safety.quarantine import Kept, Quarantine
from flux_ui.safety.verdict import Verdict
from flux_ui.settings import Settings
from flux_ui.settings_safety import SafetySettings

log = logging.getLogger("flux_ui.safety")
#: How long a prompt's verdict is reused, and for how many prompts at most: long enough for one run's
#: images and a person's quick retry, short enough that a blocklist the owner just edited soon applies.
REMEMBER_S = 60.0
REMEMBERED = 256
#: How long a count of the quarantine folder is reused (the owner's panel asks every second).
COUNT_S = 2.0

_PROMPT_CLOSED = ("flux-ui sends no prompt it could not check (FLUX_UI_SAFETY_FAIL_OPEN), so it did not send "
                  f"this one. {billing_sentence(False, 'no')}")
_IMAGE_CLOSED = ("flux-ui shows no result it could not check (FLUX_UI_SAFETY_FAIL_OPEN). The image was made, so it "
                 "is billed; it is kept for this instance's owner, not in History.")


def instance_is_public(settings: Settings, host: str, share: bool, on_space: bool = False) -> bool:
    """Whether other people use this instance: it has logins, or is reachable from other machines."""
    return bool(settings.logins) or share or on_space or not is_loopback(host)


def service_text(safety: SafetySettings) -> str:
    """Which Content Safety checks, in words for the banner and the console: a host and how flux-ui signs
    in, never a key."""
    if safety.mode == "emulator":
        return "the local emulator's Content Safety (FLUX_UI_SAFETY=emulator)"
    host = urlparse(safety.endpoint or "").netloc or "an unnamed endpoint"
    how = "a key" if safety.auth == "key" else "Microsoft Entra ID"
    return f"Azure AI Content Safety at {host} (signed in with {how})"


class SafetyGuard:
    """Content Safety for one running flux-ui: the client, the limits, the outage policy and the quarantine."""

    def __init__(self, settings: SafetySettings, outputs: Path, *, public: bool,
                 transport: httpx.AsyncBaseTransport | None = None, credential: TokenCredential | None = None,
                 timeout_s: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.public = public
        extra = {} if timeout_s is None else {"timeout_s": timeout_s}
        self.client = SafetyClient(settings, transport=transport, credential=credential, **extra)
        self.quarantine = Quarantine(outputs)
        self._asking: dict[str, asyncio.Task[Verdict]] = {}  # prompts being checked now
        self._recent: OrderedDict[str, tuple[float, Verdict]] = OrderedDict()  # verdicts, newest last
        self._clock = clock
        self._counted: tuple[float, int] | None = None  # (when, how many) the quarantine held

    @classmethod
    def from_settings(cls, settings: Settings, *, public: bool, **options: Any) -> SafetyGuard | None:
        """The guard these settings ask for, or None when safety is off.

        With ``FLUX_UI_SAFETY=emulator`` the settings must already point at the running emulator
        (``Settings.with_emulator`` does it).
        """
        safety = settings.safety
        if not safety.enabled:
            return None
        if not safety.endpoint:
            raise ValueError("FLUX_UI_SAFETY=emulator: start the emulator (Settings.with_emulator) before the guard")
        return cls(safety, settings.output_dir, public=public, **options)

    def fails_open(self) -> bool:
        return self.settings.fails_open(self.public)

    async def screen_prompt(self, prompt: str) -> Verdict:
        """The prompt's verdict if it may be sent; SafetyBlockedError or SafetyUnavailableError if not.

        A grid, a comparison or a run of variations asks about one prompt for each of its images at
        once: they share one check, and a verdict is reused for :data:`REMEMBER_S` (an outage is
        not remembered), so a 16-image grid costs one text record, not 16.
        """
        verdict = self._remembered(prompt)
        if verdict is None:
            loop = asyncio.get_running_loop()
            asking = self._asking.get(prompt)
            if asking is None or asking.get_loop() is not loop:
                asking = loop.create_task(self._ask(prompt))
                self._asking[prompt] = asking
                asking.add_done_callback(lambda done: self._settled(prompt, done))
            verdict = await asyncio.shield(asking)  # one caller's Stop does not cancel the others' check
        if verdict.blocked:
            raise SafetyBlockedError(verdict.message(), verdict=verdict)
        return verdict

    def _remembered(self, prompt: str) -> Verdict | None:
        now = self._clock()
        while self._recent and (len(self._recent) > REMEMBERED or
                                next(iter(self._recent.values()))[0] <= now - REMEMBER_S):
            self._recent.popitem(last=False)
        found = self._recent.get(prompt)
        return found[1] if found else None

    def _settled(self, prompt: str, done: asyncio.Task[Verdict]) -> None:
        if self._asking.get(prompt) is done:
            del self._asking[prompt]
        if not done.cancelled() and done.exception() is None and done.result().checked:
            self._recent[prompt] = (self._clock(), done.result())
            self._recent.move_to_end(prompt)

    async def _ask(self, prompt: str) -> Verdict:
        """Content Safety's verdict on a prompt (blocked or not); SafetyUnavailableError when it fails closed."""
        limits = self.settings.max_severity
        try:
            analysis, parts = await self.client.analyze_text(prompt)
        except SafetyUnavailableError as err:
            if self.fails_open():
                log.warning("Content Safety gave no verdict on a prompt; sending it unchecked "
                            "(FLUX_UI_SAFETY_FAIL_OPEN=%s): %s", self.settings.fail_open, err)
                return Verdict.unchecked("prompt", err.message, limits)
            raise type(err)(f"{err.message} {_PROMPT_CLOSED}", status=err.status, code=err.code) from None
        verdict = Verdict.of("prompt", analysis, limits, parts)
        if verdict.blocked:
            log.info("Content Safety blocked a prompt (%s); nothing sent", ", ".join(verdict.blocked_by))
        return verdict

    async def screen_image(self, image: bytes, about: Mapping[str, Any] | None = None) -> Verdict:
        """The result's verdict if it may be shown; otherwise it is quarantined and an error raised.

        ``about``: what the image was made from (model, prompt, seed, user...), kept in its record.
        """
        limits = self.settings.max_severity
        try:
            analysis, fitted = await self.client.analyze_image(image)
        except SafetyUnavailableError as err:
            if self.fails_open():
                log.warning("Content Safety gave no verdict on a result; showing it unchecked "
                            "(FLUX_UI_SAFETY_FAIL_OPEN=%s): %s", self.settings.fail_open, err)
                return Verdict.unchecked("image", err.message, limits)
            unchecked = Verdict.unchecked("image", err.message, limits)
            kept = await self._keep(image, unchecked, about, "unchecked")
            raise type(err)(f"{err.message} {_IMAGE_CLOSED}{_not_kept(kept)}", status=err.status, code=err.code,
                            quarantined=kept.image if kept else None, sent=True, billed="yes") from None
        verdict = Verdict.of("image", analysis, limits)
        if verdict.blocked:
            kept = await self._keep(image, verdict, about, "blocked", analysed_as=fitted.changes or "as made")
            log.info("Content Safety blocked a result (%s); kept in quarantine", ", ".join(verdict.blocked_by))
            raise SafetyBlockedError(f"{verdict.message()}{_not_kept(kept)}", verdict=verdict,
                                     quarantined=kept.image if kept else None, sent=True, billed="yes")
        return verdict

    async def _keep(self, image: bytes, verdict: Verdict, about: Mapping[str, Any] | None, reason: str,
                    **extra: Any) -> Kept | None:
        record = {"reason": reason, "verdict": verdict.to_json(), "about": dict(about or {}), **extra}
        try:
            return await asyncio.to_thread(self.quarantine.keep, image, record)
        except OSError as exc:
            log.error("could not keep a %s result in %s: %s", reason, self.quarantine.folder, exc)
            return None
        finally:
            self._counted = None

    def quarantined(self) -> int:
        """How many results are in quarantine (for the owner): the folder counted at most every COUNT_S."""
        counted, now = self._counted, self._clock()
        if counted is None or now - counted[0] >= COUNT_S:
            counted = self._counted = (now, self.quarantine.count())
        return counted[1]

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"SafetyGuard({self.client!r}, public={self.public}, fail_open={self.settings.fail_open!r})"


def _not_kept(kept: Kept | None) -> str:
    return "" if kept else " (flux-ui could not write it to the quarantine folder, so it is not kept either.)"
