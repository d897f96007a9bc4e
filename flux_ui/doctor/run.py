"""One doctor run: the configuration, then the service it points at, then (asked for) one image per route,
then Content Safety when it is configured (:mod:`flux_ui.doctor.safety`).

With no Azure configuration flux-ui runs on its local emulator, so the doctor starts one of its own,
as the app does (on loopback, its key and control token held in this process, no Entra tokens), and
checks against it: a fresh clone gets a full report. Its quotas are off, as pacing is not what the
doctor checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from flux_ui.client import FoundryClient
from flux_ui.client.auth import TokenCredential
from flux_ui.doctor.checks import configuration, environment
from flux_ui.doctor.generation import check_generation
from flux_ui.doctor.probe import check_deployments
from flux_ui.doctor.report import Report
from flux_ui.doctor.safety import check_safety, section_for
from flux_ui.doctor.shared import check_shared
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS, Route
from flux_ui.settings import Settings

#: The doctor's own emulator takes any pace: nothing in it is paced.
_UNPACED = {model_id: Quota(1000, 1.0) for model_id in MODELS}


@dataclass(frozen=True)
class Options:
    """What to check and where the settings come from (``env=None``: the process environment)."""

    generate: bool = False
    models: Sequence[str] = ()  # only these models (empty: every configured one)
    env: Mapping[str, str] | None = None
    dotenv_path: str | Path | None = ".env"
    timeout_s: float = 20.0
    credential: TokenCredential | None = None  # for Entra ID (None: DefaultAzureCredential)
    transport: httpx.AsyncBaseTransport | None = None  # the client's (tests script a service with it)


def _quiet(_: str) -> None:
    return None


async def diagnose(options: Options, progress: Callable[[str], None] = _quiet) -> Report:
    """Every check the options ask for, as a report (never raises for what it finds)."""
    report = Report(environment())
    settings = configuration(options.env, options.dotenv_path, report.section("Configuration"))
    service = report.section("Service")
    if settings is None:
        service.add("info", "not checked: the configuration needs fixing first (above)")
        return report
    emulator = None
    if settings.uses_emulator:
        emulator = Emulator(EmulatorConfig(accept_entra=False, open_controls=False, enforce_quotas=False))
        settings = settings.with_emulator(emulator.start(), emulator.api_key, _UNPACED)
        unset = " and ".join(["AZURE_ENDPOINT", *(f"{s.endpoint_env}_ENDPOINT" for s in MODELS.on_route(Route.AML))])
        service.add("info", f"No Azure configuration ({unset} unset, or FLUX_EMULATOR=on), so flux-ui runs on its "
                            "local emulator: synthetic images, nothing billed. The doctor started one of its own at "
                            f"{settings.endpoint} and checks against it.")
    else:
        service.add("info", f"Foundry resource: {settings.endpoint or '(none; Azure ML endpoints only)'}")
    try:
        await _service_checks(report, settings, options, progress)
        progress("checking Content Safety")
        await check_safety(section_for(report, settings), settings, options.timeout_s, options.credential)
        progress("checking the shared services")
        await check_shared(report.section("Shared services (replicas: docs/deploy.md)"), settings.shared,
                           options.timeout_s)
    finally:
        if emulator is not None:
            emulator.stop()
    return report


async def _service_checks(report: Report, settings: Settings, options: Options,
                          progress: Callable[[str], None]) -> None:
    seen: list[httpx.Response] = []
    endpoints, found = report.section("Endpoints"), report.section(
        "Deployments (each route asked a request the service refuses before generating: nothing billed)")
    deployments = [settings.deployments[m] for m in settings.deployments if not options.models or m in options.models]
    for missing in (m for m in options.models if m not in settings.deployments):
        prefix = MODELS[missing].endpoint_env
        fix = (f"set {prefix}_ENDPOINT and {prefix}_KEY to its Azure ML endpoint's scoring URL and key" if prefix else
               f"deploy it in Foundry and add it to FLUX_DEPLOYMENTS (for example FLUX_DEPLOYMENTS={missing})")
        found.add("fail", f"{missing}: not configured in this installation", fix=fix)
    async with FoundryClient(settings, credential=options.credential, transport=options.transport,
                             on_response=seen.append) as client:
        present = await check_deployments(client, settings, deployments, endpoints, found, options.timeout_s,
                                          progress)
        generation = report.section("Generation (--generate: one smallest request per deployment and route)")
        if not options.generate:
            generation.add("info", "not run: add --generate to send one smallest image request per deployment and "
                                   "route (billed on Foundry) and see what the service does")
            return
        if not present:
            generation.add("info", "not run: no deployment answered as present")
            return
        await check_generation(client, present, generation, progress, seen)
