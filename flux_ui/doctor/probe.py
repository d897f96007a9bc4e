"""Reachability, authentication and each deployment's existence, with nothing generated or billed.

Each deployment is asked, on each of its routes, the client's probe
(:meth:`flux_ui.client.FoundryClient.probe`): a request the service refuses before it generates.
Its answer says what the doctor needs: any answer at all means the endpoint is reachable, 401 or 403
that the credential is refused, 404 that the deployment is missing, and a refusal of the body
(400/422) or the quota gate's 429 that the deployment is there. The client's typed errors carry
the wording, and what to do, that the app itself would show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flux_ui.client import FoundryClient, ProbeAnswer
from flux_ui.doctor.report import Section
from flux_ui.errors import (
    AuthenticationError,
    BadRequestError,
    ContentRefusedError,
    DeploymentNotFoundError,
    FluxError,
    PermissionDeniedError,
    RateLimitError,
    ServiceTimeoutError,
    TransportError,
)
from flux_ui.registry import Route
from flux_ui.secrets import redact
from flux_ui.settings import ENTRA_SCOPE, Deployment, Settings

ROUTE_NAMES = {Route.BFL: "BFL route", Route.IMAGES_GENERATIONS: "Image API generations",
               Route.IMAGES_EDITS: "Image API edits", Route.AML: "Azure ML endpoint"}


@dataclass
class EndpointProbe:
    """One endpoint's probes: the first answer (reachability), the first refusal of the credential,
    and each deployment and route that answered as present."""

    url: str
    variable: str | None  # the setting that names it (None: the doctor's own emulator)
    answered: ProbeAnswer | None = None
    unreachable: FluxError | None = None
    refused: FluxError | None = None
    present: list[tuple[Deployment, Route]] = field(default_factory=list)


def endpoint_of(settings: Settings, deployment: Deployment) -> tuple[str, str | None]:
    """Where a deployment lives and which variable says so."""
    if deployment.model.aml:
        return deployment.endpoint, None if settings.uses_emulator else f"{deployment.model.endpoint_env}_ENDPOINT"
    return settings.endpoint or deployment.endpoint, None if settings.uses_emulator else "AZURE_ENDPOINT"


async def check_deployments(client: FoundryClient, settings: Settings, deployments: Sequence[Deployment],
                            endpoints: Section, found: Section, timeout_s: float,
                            progress: Callable[[str], None]) -> list[tuple[Deployment, Route]]:
    """Probe every route of every deployment; returns those that answered as present."""
    probes: dict[str, EndpointProbe] = {}
    for deployment in deployments:
        url, variable = endpoint_of(settings, deployment)
        probe = probes.setdefault(url, EndpointProbe(url, variable))
        for route in deployment.model.routes:
            progress(f"probing {deployment.model.id} on the {ROUTE_NAMES[route]}")
            await _probe_one(client, probe, deployment, route, found, timeout_s)
    for probe in probes.values():
        _endpoint_checks(probe, settings, deployments, endpoints)
    return [item for probe in probes.values() for item in probe.present]


def _label(deployment: Deployment, route: Route) -> str:
    named = "" if deployment.name == deployment.model.id else f" (deployment {deployment.name!r})"
    return f"{deployment.model.id}{named}, {ROUTE_NAMES[route]}"


async def _probe_one(client: FoundryClient, probe: EndpointProbe, deployment: Deployment, route: Route,
                     found: Section, timeout_s: float) -> None:
    label = _label(deployment, route)
    if probe.unreachable or probe.refused:
        why = "the endpoint is unreachable" if probe.unreachable else "the credentials were refused"
        found.add("info", f"{label}: not checked, {why} (see above)")
        return
    try:
        answer = await client.probe(deployment.model.id, route, timeout_s=timeout_s)
    except TransportError as error:
        probe.unreachable = error
        found.add("info", f"{label}: not checked, the endpoint is unreachable (see above)")
        return
    except AuthenticationError as error:  # no Entra token could be had: nothing was sent
        probe.refused = error
        found.add("info", f"{label}: not checked, no credentials (see above)")
        return
    except FluxError as error:
        found.add("fail", f"{label}: cannot be checked", fix=error.message)
        return
    except Exception as exc:  # a report, not a traceback: whatever broke is named in it
        found.add("fail", f"{label}: cannot be checked ({type(exc).__name__})",
                  fix=f"{redact(str(exc)) or type(exc).__name__}; please report this with this output")
        return
    probe.answered = probe.answered or answer
    _judge(probe, deployment, route, answer, found, label)


def _judge(probe: EndpointProbe, deployment: Deployment, route: Route, answer: ProbeAnswer, found: Section,
           label: str) -> None:
    """What one probe's answer says about the deployment."""
    error = answer.error
    facts = {"model": deployment.model.id, "deployment": deployment.name, "route": route.value,
             "status": answer.status}
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        probe.refused = probe.refused or error
        found.add("info", f"{label}: not checked, the credentials were refused (see above)", facts=facts)
    elif isinstance(error, DeploymentNotFoundError):
        fix = error.message
        if route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS) and (deployment, Route.BFL) in probe.present:
            fix += (" It answers on the BFL route, so the Image API's path form may be at fault: try the other "
                    "value of FLUX_IMAGE_API_PATH (deployment or model).")
        found.add("fail", f"{label}: not found (HTTP {answer.status})", fix=fix, facts=facts)
    elif error is None or isinstance(error, BadRequestError | ContentRefusedError | RateLimitError):
        probe.present.append((deployment, route))
        how = {429: "its quota gate answered 429"}.get(answer.status, f"HTTP {answer.status} to the probe")
        notes = [] if error is not None else [
            f"it answered the probe with HTTP {answer.status} instead of refusing it, so it may have made (and "
            "billed) an image: please report this with this output"]
        found.add("pass", f"{label}: found ({how})", notes=notes, facts=facts)
    else:
        found.add("fail", f"{label}: the service did not answer the probe as expected (HTTP {answer.status})",
                  fix=error.message, facts=facts)


def _auth_text(settings: Settings, deployments: Sequence[Deployment], url: str) -> tuple[str, str]:
    """How the credential on this endpoint is sent, and (for Entra ID) the role it needs."""
    mine = [d for d in deployments if endpoint_of(settings, d)[0] == url]
    dep = mine[0]
    if settings.uses_emulator:
        return "the emulator's key", ""
    if dep.auth == "entra":
        return (f"Microsoft Entra ID token (DefaultAzureCredential, scope {ENTRA_SCOPE})",
                " An Entra identity needs the Cognitive Services User role on the resource: for example "
                "az role assignment create --role \"Cognitive Services User\" --assignee <your user or app id> "
                "--scope <the resource's id>.")
    header = "an api-key header" if dep.key_header == "api-key" else "Authorization: Bearer"
    what = f"{dep.model.endpoint_env}_KEY" if dep.model.aml else "AZURE_API_KEY"
    return f"API key {what} (sent as {header})", ""


def _endpoint_checks(probe: EndpointProbe, settings: Settings, deployments: Sequence[Deployment],
                     endpoints: Section) -> None:
    """Reachability, then authentication, for one endpoint."""
    named = f" ({probe.variable})" if probe.variable else ""
    if probe.unreachable is not None:
        where = f"{probe.variable}'s" if probe.variable else "the endpoint's"
        verdict = "no answer in time" if isinstance(probe.unreachable, ServiceTimeoutError) else "unreachable"
        endpoints.add("fail", f"{probe.url}{named}: {verdict}",
                      fix=f"{probe.unreachable.message} Check {where} scheme, host and port; a proxy, a firewall "
                          "or the resource's network rules can also keep this machine out.")
        return
    if probe.answered is None:
        endpoints.add("info", f"{probe.url}{named}: not reached (no credentials to send)")
    else:
        ms = probe.answered.elapsed_s * 1000
        endpoints.add("pass", f"{probe.url}{named}: reachable (answered in {ms:.0f} ms)",
                      facts={"url": probe.url, "elapsed_ms": round(ms)})
    how, role = _auth_text(settings, deployments, probe.url)
    if probe.refused is not None:
        status = getattr(probe.refused, "status", None)
        verdict = f"refused (HTTP {status})" if status else "not to be had, so nothing was sent"
        extra = role if isinstance(probe.refused, PermissionDeniedError) else ""
        endpoints.add("fail", f"{probe.url}: {how} {verdict}", fix=probe.refused.message + extra)
    elif probe.present:
        endpoints.add("pass", f"{probe.url}: {how} accepted")
    else:
        endpoints.add("info", f"{probe.url}: {how} not confirmed (no deployment there answered past it)")
