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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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

_PROMPT_CLOSED = ("flux-ui sends no prompt it could not check (FLUX_UI_SAFETY_FAIL_OPEN), so it did not send "
                  f"this one. {billing_sentence(False, 'no')}")
_IMAGE_CLOSED = ("flux-ui shows no result it could not check (FLUX_UI_SAFETY_FAIL_OPEN). The image was made, so it "
                 "is billed; it is kept for this instance's owner, not in History.")


def instance_is_public(settings: Settings, host: str, share: bool, on_space: bool = False) -> bool:
    """Whether other people use this instance: it has logins, or is reachable from other machines."""
    return bool(settings.logins) or share or on_space or not is_loopback(host)


class SafetyGuard:
    """Content Safety for one running flux-ui: the client, the limits, the outage policy and the quarantine."""

    def __init__(self, settings: SafetySettings, outputs: Path, *, public: bool,
                 transport: httpx.AsyncBaseTransport | None = None, credential: TokenCredential | None = None,
                 timeout_s: float | None = None) -> None:
        self.settings = settings
        self.public = public
        extra = {} if timeout_s is None else {"timeout_s": timeout_s}
        self.client = SafetyClient(settings, transport=transport, credential=credential, **extra)
        self.quarantine = Quarantine(outputs)

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
        """The prompt's verdict if it may be sent; SafetyBlockedError or SafetyUnavailableError if not."""
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
            raise SafetyBlockedError(verdict.message(), verdict=verdict)
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

    def quarantined(self) -> int:
        """How many results are in quarantine (for the owner)."""
        return self.quarantine.count()

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:
        return f"SafetyGuard({self.client!r}, public={self.public}, fail_open={self.settings.fail_open!r})"


def _not_kept(kept: Kept | None) -> str:
    return "" if kept else " (flux-ui could not write it to the quarantine folder, so it is not kept either.)"
