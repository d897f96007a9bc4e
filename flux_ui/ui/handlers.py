"""What the tabs do, as plain async functions of plain values (no Gradio in here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flux_ui.client.core import GenerationResult, ProgressEvent
from flux_ui.client.errors import ValidationError
from flux_ui.client.validation import GenerationRequest, snap_size
from flux_ui.history import Entry
from flux_ui.registry import MODELS, PixelSize, Route
from flux_ui.runtime import Runtime
from flux_ui.ui.text import inert


@dataclass(frozen=True)
class Generated:
    result: GenerationResult
    entry: Entry

    @property
    def path(self) -> str:
        return str(self.entry.path)


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
) -> Generated:
    """Send one request through the shared client and save the image before returning it."""
    request = GenerationRequest(model=model, prompt=prompt, references=tuple(references), params=dict(params),
                                route=route)
    result = await runtime.client.generate(request, on_event)
    entry = await asyncio.to_thread(runtime.history.save, result, tab)  # disk and SQLite: off the loop
    return Generated(result, entry)


def caption(result: GenerationResult) -> str:
    """One line a person reads under the image: what, how big, which seed, how long, how much."""
    spec = MODELS[result.model]
    parts = [f"**{spec.display_name}**", f"{result.info.width}×{result.info.height} {result.format.upper()}"]
    if result.seed is not None:
        parts.append(f"seed {result.seed}")
    parts.append(f"{result.timings.total_s:.1f} s")
    if result.timings.paced_s >= 0.05:
        parts.append(f"{result.timings.paced_s:.1f} s waiting for quota")
    if result.attempts > 1:
        parts.append(f"{result.attempts} attempts")
    if result.cost_estimate_usd is not None:
        parts.append(f"≈ ${result.cost_estimate_usd:.3f}")
    if result.service_cost is not None:
        parts.append(f"service cost {result.service_cost:g}")
    lines = [" · ".join(parts)]
    lines += [f"- {note}" for note in (*result.adjustments, *result.warnings)]
    return "\n".join(lines)


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
