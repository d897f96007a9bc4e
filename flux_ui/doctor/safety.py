"""The Content Safety check: configured or not, the endpoint reachable, the key or Entra ID accepted,
the blocklists there.

Foundry filters nothing for FLUX, so an instance other people use should check with Azure AI
Content Safety (:mod:`flux_ui.safety`). When it is configured, the doctor asks it what the app
asks before every request: ``text:analyze`` of a harmless one-word text, through the app's own
:class:`~flux_ui.safety.SafetyClient` (so the same key or Entra token, the same blocklists, the same
errors and fixes). That is one text record on the resource's bill (the free tier includes some
each month); no image is analysed. Not configured, nothing is sent.
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

from flux_ui.client.auth import TokenCredential
from flux_ui.doctor.report import Report, Section
from flux_ui.errors import SafetyConnectionError, SafetyStatusError, SafetyTimeoutError, SafetyUnavailableError
from flux_ui.safety import SafetyClient, service_text
from flux_ui.settings import Settings
from flux_ui.settings_safety import CATEGORIES, SafetySettings

#: What the doctor asks Content Safety about: one harmless word.
WORD = "hello"
TITLE = "Content Safety"
ASKED = (f"{TITLE} (one text:analyze of the word {WORD!r}: the resource bills it as one text record; "
         "no image is analysed)")


def section_for(report: Report, settings: Settings) -> Section:
    """The report's Content Safety section, its title saying what the check costs when it sends one."""
    if settings.safety.mode == "emulator":
        return report.section(f"{TITLE} (one text:analyze of the word {WORD!r}, on the emulator: nothing billed)")
    return report.section(ASKED if settings.safety.enabled else TITLE)


async def check_safety(section: Section, settings: Settings, timeout_s: float,
                       credential: TokenCredential | None = None) -> None:
    """Whether prompts and results would be checked, and whether Content Safety answers as the app needs."""
    safety = settings.safety
    if not safety.enabled:
        section.add("info", "off: CONTENT_SAFETY_ENDPOINT is not set, so prompts and results are not checked. "
                            "Foundry filters nothing for FLUX: for an instance other people use, set "
                            "CONTENT_SAFETY_ENDPOINT (and CONTENT_SAFETY_KEY, or Entra ID), or "
                            "FLUX_UI_SAFETY=emulator to try it on the local emulator")
        return
    section.add("info", f"on: prompts and results are checked by {service_text(safety)}")
    section.add("info", _policy(safety))
    host = urlparse(safety.endpoint or "").netloc or str(safety.endpoint)
    client = SafetyClient(safety, credential=credential, timeout_s=timeout_s)
    start = time.monotonic()
    try:
        analysis, _ = await client.analyze_text(WORD)
    except SafetyUnavailableError as err:
        _judge_failure(section, safety, host, err, time.monotonic() - start)
        return
    finally:
        await client.aclose()
    ms = (time.monotonic() - start) * 1000
    section.add("pass", f"{host}: reachable (answered text:analyze in {ms:.0f} ms)",
                facts={"endpoint": safety.endpoint, "elapsed_ms": round(ms)})
    section.add("pass", f"{host}: {_auth_text(safety)} accepted")
    if safety.blocklists:
        section.add("pass", f"blocklists found: {', '.join(safety.blocklists)}")
    scores = {s.category: s.severity for s in analysis.categories}
    section.add("info", f"{WORD!r} was judged " + ", ".join(f"{c} {scores.get(c, 0)}" for c in CATEGORIES),
                facts={"categories": scores})


def _policy(safety: SafetySettings) -> str:
    limits = ", ".join(f"{c} {safety.limit(c)}" for c in CATEGORIES)
    outage = {"no": "prompts and results are refused",
              "private": "prompts and results are let through unchecked on a private instance only (no logins, "
                         "loopback), refused on one other people use",
              "yes": "prompts and results are let through unchecked"}[safety.fail_open]
    return (f"highest severity let through: {limits}; while Content Safety cannot answer, {outage} "
            f"(FLUX_UI_SAFETY_FAIL_OPEN={safety.fail_open})")


def _auth_text(safety: SafetySettings) -> str:
    if safety.mode == "emulator":
        return "the emulator's key"
    if safety.auth == "key":
        return "CONTENT_SAFETY_KEY (sent as Ocp-Apim-Subscription-Key)"
    return "Microsoft Entra ID token (DefaultAzureCredential, scope https://cognitiveservices.azure.com/.default)"


def _judge_failure(section: Section, safety: SafetySettings, host: str, err: SafetyUnavailableError,
                   elapsed_s: float) -> None:
    """What a failed check says: unreachable, reachable but refusing the credential, or a missing blocklist."""
    if isinstance(err, SafetyConnectionError | SafetyTimeoutError):
        section.add("fail", f"{host} (CONTENT_SAFETY_ENDPOINT): "
                            f"{'no answer in time' if isinstance(err, SafetyTimeoutError) else 'unreachable'}",
                    fix=f"{err.message} A proxy, a firewall or the resource's network rules can also keep this "
                        "machine out.")
        return
    status = err.status
    if status is None:  # no Entra token to be had: nothing was sent
        section.add("fail", f"{host}: {_auth_text(safety)} not to be had, so nothing was sent", fix=err.message)
        return
    if not isinstance(err, SafetyStatusError):  # a 200 whose body is not an analysis
        section.add("fail", f"{host}: answered text:analyze with something flux-ui cannot read", fix=err.message)
        return
    section.add("pass", f"{host}: reachable (answered HTTP {status} in {elapsed_s * 1000:.0f} ms)")
    if status in (401, 403):
        section.add("fail", f"{host}: {_auth_text(safety)} refused (HTTP {status})", fix=err.message)
    elif status == 404 and err.code == "BlocklistNotFound":
        section.add("pass", f"{host}: {_auth_text(safety)} accepted")
        section.add("fail", f"a blocklist in FLUX_UI_SAFETY_BLOCKLISTS ({', '.join(safety.blocklists)}) is not "
                            "on the resource", fix=err.message)
    else:
        section.add("fail", f"{host}: Content Safety did not answer text:analyze as expected (HTTP {status})",
                    fix=err.message)
