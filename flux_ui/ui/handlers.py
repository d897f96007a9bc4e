"""What the tabs do, as plain async functions of plain values (no Gradio in here)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flux_ui import spend
from flux_ui.client import COMMITTED_STAGES, GenerationRequest, GenerationResult, ProgressEvent, snap_size
from flux_ui.errors import FluxError, NoRoomError, NotSavedError, ValidationError, overdue_error, with_billing
from flux_ui.history import Entry, settings_of
from flux_ui.identity import current_user
from flux_ui.registry import MODELS, PixelSize, Route
from flux_ui.runtime import Runtime
from flux_ui.ui.text import inert

log = logging.getLogger("flux_ui.handlers")


@dataclass(frozen=True)
class Generated:
    """An image for the person: saved to History, or (``unsaved`` says why) offered from memory only."""

    result: GenerationResult
    entry: Entry
    unsaved: str | None = None

    @property
    def path(self) -> str:
        return str(self.entry.path)

    @property
    def saved(self) -> bool:
        return self.unsaved is None


def collect_params(model: str, values: Mapping[str, Any], randomize_seed: bool = False) -> dict[str, Any]:
    """The values of the controls the model takes, without the empty ones the client fills.

    For a model flux-ui does not know, nothing is dropped: the client then names the problem.
    """
    spec = MODELS.get(model) if isinstance(model, str) else None
    if spec is None:
        return {k: v for k, v in values.items() if v is not None}
    params: dict[str, Any] = {}
    for name, value in values.items():
        p = spec.param(name)
        if p is None:
            continue
        if value is None or (name == "seed" and randomize_seed) or (p.kind == "aspect_ratio" and value == ""):
            continue  # the client fills the model's default (a fresh seed, for the seed)
        params[name] = value
    return params


async def generate(
    runtime: Runtime,
    model: str,
    prompt: str,
    params: Mapping[str, Any],
    references: Sequence[bytes] = (),
    route: Route | None = None,
    tab: str = "text-to-image",
    on_event: Callable[[ProgressEvent], None] | None = None,
    extra: Mapping[str, Any] | None = None,
    allowance: spend.Allowance | None = None,
) -> Generated:
    """Send one request through the shared client and save the image before returning it.

    First its cost is held against the day's caps (from its run's ``allowance`` when it is one of a
    grid's, a comparison's or a run of variations'), or it is refused with nothing sent; its audit row
    is settled by what becomes of it (:mod:`flux_ui.spend`, :mod:`flux_ui.audit`).

    With content safety on, the prompt is checked first (before the job, so a refused prompt never
    waits for a quota slot: nothing is sent or billed) and the image before it is saved or shown
    (in the job: a result that arrives after Stop is checked too); see :func:`_screen_prompt`.

    The work is a job the runtime owns, and this call only waits for it. Cancelled (Stop, a closed
    page) before the request is sent, the job is cancelled too: nothing is sent or billed. Cancelled
    after, or past the deadline, only the wait ends: the answer is still awaited and its image saved
    to History, because it is billed either way.
    """
    request = GenerationRequest(model=model, prompt=prompt, references=tuple(references), params=dict(params),
                                route=route)
    spec = MODELS.get(model) if isinstance(model, str) else None
    charge = await spend.admit(runtime, request, tab, current_user().id, allowance)  # BudgetError: nothing sent
    try:
        if spec is not None:
            try:
                runtime.history.check_room(spec)
            except NoRoomError as err:
                raise with_billing(err, False, "no") from None
        await _screen_prompt(runtime, request)
        watch = _Watch(on_event)
        job = runtime.jobs.start(charge.track(lambda: _make(runtime, request, tab, watch, extra),
                                              lambda: watch.committed, lambda made: made.result.service_cost))
    except BaseException as err:  # refused before its job: its row says why, and nothing counts
        charge.refused(err)
        raise
    watch.task = job
    return await _wait(runtime, job, watch, spec.display_name if spec else str(model))


@dataclass
class _Watch:
    """What the person's wait knows of its job: whether the request reached the service, whether anyone
    still waits, and whether the deadline passed with the request in flight."""

    on_event: Callable[[ProgressEvent], None] | None
    task: asyncio.Task[Generated] | None = None
    committed: bool = False
    waiting: bool = True
    overdue: asyncio.Event = field(default_factory=asyncio.Event)

    def event(self, event: ProgressEvent) -> None:
        self.committed = event.stage in COMMITTED_STAGES
        if event.stage == "overdue":
            self.overdue.set()
        if not self.waiting and not self.committed and self.task is not None:
            self.task.cancel()  # nobody waits any more: send nothing new (a retry, a request still paced)
        elif self.waiting and self.on_event is not None:
            self.on_event(event)

    def stop_waiting(self) -> None:
        self.waiting = False
        if not self.committed and self.task is not None:
            self.task.cancel()  # not sent yet: nothing is sent, nothing billed


async def _wait(runtime: Runtime, job: asyncio.Task[Generated], watch: _Watch, name: str) -> Generated:
    """The person's wait: the job's outcome, or, when the deadline passes while the request is with the
    service, the error that says it was sent and will be saved when it arrives."""
    overdue = asyncio.ensure_future(watch.overdue.wait())
    try:
        await asyncio.wait({job, overdue}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        watch.stop_waiting()
        raise
    finally:
        overdue.cancel()
    if job.done():
        return job.result()
    watch.stop_waiting()
    raise overdue_error(name, runtime.client.deadline_s, runtime.client.service_timeout_s)


async def _make(runtime: Runtime, request: GenerationRequest, tab: str, watch: _Watch,
                extra: Mapping[str, Any] | None = None) -> Generated:
    """The job: generate (checking the outputs folder's space right before each send), then keep the image."""
    spec = MODELS.get(request.model) if isinstance(request.model, str) else None
    before_send = (lambda: runtime.history.check_room(spec)) if spec is not None else None
    try:
        result = await runtime.client.generate(request, watch.event, before_send=before_send)
    except FluxError as err:
        if not watch.waiting:
            log.warning("a generation nobody waited for ended without an image: %s", err)
        raise
    if runtime.safety is not None:  # before History or the page: a blocked image is quarantined, never saved
        await runtime.safety.screen_image(result.image, about=_made_of(result, tab))
    generated = await _keep(runtime, result, tab, extra, request.references)
    await asyncio.to_thread(_remember, runtime, tab, result.prompt)
    if not watch.waiting:
        log.info("kept an image that arrived after the person stopped waiting (%s): %s", request.model,
                 generated.path if generated.saved else generated.unsaved)
    return generated


async def _screen_prompt(runtime: Runtime, request: GenerationRequest) -> None:
    """Content Safety's check of the prompt as it would be sent; SafetyError (nothing sent) if refused.

    The request is validated first, so a prompt the client would refuse anyway costs no check. Only
    the prompt is checked: a negative prompt names what to leave out (a list of harms would be flagged
    for asking for none), and whatever the model then draws is checked as an image.
    """
    if runtime.safety is None:
        return
    checked = runtime.client.validate(request)  # ValidationError: refused as the client would, nothing sent
    await runtime.safety.screen_prompt(checked.prompt)


def _made_of(result: GenerationResult, tab: str) -> dict[str, Any]:
    """What a quarantined result was made from, for its record (the owner's, never the page's)."""
    return {"user": current_user().id, "tab": tab, "model": result.model, "deployment": result.deployment,
            "route": result.route.value, "prompt": result.prompt, "seed": result.seed, "size": list(result.size),
            "params": dict(result.params), "cost_estimate_usd": result.cost_estimate_usd,
            "service_cost": result.service_cost}


async def _keep(runtime: Runtime, result: GenerationResult, tab: str,
                extra: Mapping[str, Any] | None = None, inputs: Sequence[bytes] = ()) -> Generated:
    """Save a billed image to History (with ``extra``: the group it belongs to, and ``inputs``: the
    request's reference images, in order); when that fails, offer it from memory instead of losing it."""
    try:
        entry = await asyncio.to_thread(runtime.history.save, result, tab, extra, inputs)  # off the loop
    except Exception as err:  # a full disk, or a bug: the image is paid for either way
        if not isinstance(err, NotSavedError):
            log.exception("saving an image failed")
            err = NotSavedError(f"The image could not be saved ({type(err).__name__}), so it is not in History.",
                                folder=runtime.history.folder)
        return await asyncio.to_thread(_offer_unsaved, runtime, result, tab, err, extra, inputs)
    if len(runtime.unsaved):
        await asyncio.to_thread(runtime.unsaved.flush, runtime.history)
    return Generated(result, entry)


def _remember(runtime: Runtime, tab: str, prompt: str) -> None:
    """Add a prompt that made an image to its tab's Recent prompts; a failure there costs nothing else."""
    try:
        runtime.styles.remember(tab, prompt)
    except Exception:  # a locked or full database: the image is saved, only the recall is lost
        log.exception("could not remember the prompt for Recent prompts")


def _offer_unsaved(runtime: Runtime, result: GenerationResult, tab: str, err: NotSavedError,
                   extra: Mapping[str, Any] | None = None, inputs: Sequence[bytes] = ()) -> Generated:
    """Keep the image in memory with a download copy, and say in its caption that it is not in History."""
    kept = runtime.unsaved.keep(result, tab, str(err), extra, inputs)
    if err.placed is not None:  # whole on disk, but not indexed: it is listed when the folder next opens
        runtime.unsaved.forget(kept)
    if kept.path is None:
        raise NotSavedError(
            f"{err} The service made the image, and bills it, but no copy to download could be written either: "
            "flux-ui holds it in memory and adds it to History with the next image saved there (it is lost if "
            f"flux-ui stops first). Free some space in {err.folder}.", folder=err.folder)
    note = (f"⚠️ {err} Download it now (the download button on the image). "
            + ("It is listed in History when flux-ui next starts." if err.placed is not None else
               "flux-ui keeps it in memory and adds it to History with the next image saved there, but loses it "
               "if it stops first."))
    shown = replace(result, warnings=(*result.warnings, note))
    entry = Entry("", 0.0, tab, result.model, result.prompt, result.seed, result.info.width, result.info.height,
                  result.format, kept.path, settings_of(result, tab, extra))
    return Generated(shown, entry, unsaved=note)


def caption(result: GenerationResult) -> str:
    """What a person reads under the image: what, how big, which seed, how long, what it cost; then every
    parameter sent (the validated ``params``, by the model's own names); then what flux-ui changed or warns of.

    Each cost says what it is in. flux-ui's estimate is in US dollars, from the registry's list price.
    The service's own figure, ``request_meta.cost``, is shown as the service gives it, with "(unit not
    documented)": the contract shows the field (3 for a 1.05 MP FLUX.2 [pro] image) but never says in what
    unit. The emulator plays it as credits of $0.01, which fits that example, but that is the emulator's
    reading rather than the service's word, so flux-ui neither turns it into dollars nor merges the two.
    """
    spec = MODELS[result.model]
    parts = [f"**{spec.display_name}**", f"{result.info.width}×{result.info.height} {result.format.upper()}",
             f"seed {result.seed}" if result.seed is not None else "seed not reported"]
    parts.append(f"{result.timings.total_s:.1f} s")
    if result.timings.paced_s >= 0.05:
        parts.append(f"{result.timings.paced_s:.1f} s waiting for quota")
    if result.attempts > 1:
        parts.append(f"{result.attempts} attempts")
    parts += cost_parts(result)
    lines = [" · ".join(parts)]
    if sent := params_text(result):
        lines.append(f"\n{sent}")  # a paragraph of its own on the page
    lines += [f"- {note}" for note in (*result.adjustments, *result.warnings)]
    return "\n".join(lines)


def cost_parts(result: GenerationResult) -> list[str]:
    """The costs, each with its unit (see :func:`caption`): the list-price estimate, the service's figure."""
    price = MODELS[result.model].price
    parts = []
    if result.cost_estimate_usd is not None:
        parts.append(f"≈ ${result.cost_estimate_usd:.3f} (list price)")
    elif price.note:
        parts.append(f"no list price ({price.note})")
    if result.service_cost is not None:
        parts.append(f"service cost {result.service_cost:g} (unit not documented)")
    return parts


def params_text(result: GenerationResult) -> str:
    """"Sent: guidance 4.5 · steps 50 · …": every parameter the request carried but the seed and the size,
    which the caption's first line gives (a width and height other than the image's are said here)."""
    spec = MODELS[result.model]
    params = dict(result.params)
    shown = []
    asked = (params.pop("width", None), params.pop("height", None))
    if None not in asked and asked != result.size:
        shown.append(f"asked for {asked[0]}×{asked[1]}")
    params.pop("seed", None)
    order = [p.name for p in spec.all_params]  # the registry's order: the shape first, as the form has it
    for name, value in sorted(params.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
        p = spec.param(name)
        label = (p.label if p is not None else name.replace("_", " ")).lower()
        shown.append(f"{label} {_shown_value(value, p is not None and p.kind == 'text')}")
    return f"Sent: {' · '.join(shown)}" if shown else ""


def _shown_value(value: Any, typed: bool) -> str:
    """A parameter's value as the caption says it; ``typed``: the person's own text (a negative prompt)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if typed:
        return f"“{inert(value)}”" if value else "none"
    return str(value)  # a number, a choice or a ratio the client checked against the registry


def size_note(model: str, width: Any, height: Any) -> str:
    """What the service will make of a width and height, said before anything is sent."""
    spec = MODELS.get(model)
    if spec is None or not isinstance(spec.size, PixelSize) or width is None or height is None:
        return ""
    try:
        (w, h), notes = snap_size(spec, width, height)
    except ValidationError as err:
        return f"⚠️ {inert(err)}"
    return notes[0] if notes else f"{w}×{h}, {w * h / 1_000_000:.2f} MP."
