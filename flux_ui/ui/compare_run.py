"""Running one comparison: the choice checked, one request per model sent at once, results as they arrive.

Each model gets its own asyncio task through the shared client, so every request waits only
in its own deployment's pacing. Everything here takes and returns plain values; what the page
shows for a comparison is :mod:`flux_ui.ui.compare_view`, the tab itself :mod:`flux_ui.ui.compare`.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flux_ui.client import GenerationRequest, finite
from flux_ui.errors import ValidationError
from flux_ui.exports import Axis
from flux_ui.history import History
from flux_ui.registry import MODELS, AspectRatioSize, Mode, parse_aspect_ratio
from flux_ui.runtime import Runtime
from flux_ui.ui import downloads
from flux_ui.ui.common import flag
from flux_ui.ui.controls import SIZE_PRESETS
from flux_ui.ui.fanout import Fanout, Slot, in_group, run_fanout

TAB = "compare"
MIN_MODELS, MAX_MODELS = 2, 5
#: What a blind comparison calls its slots, in order (the page's labels too).
LETTERS = "ABCDE"
DEFAULT_PICKS = 3
#: The seed flux-ui picks when asked to randomize: the range the client itself draws from.
RANDOM_SEED_MAX = 2**31 - 1
SEED_LIMIT = 2**32 - 1


# --- what to send ---------------------------------------------------------------------------

def comparable_models(models: Sequence[str]) -> list[str]:
    """The deployed models that can make an image from a prompt alone."""
    return [m for m in models if m in MODELS and MODELS[m].does(Mode.GENERATE)]


def selection_problem(prompt: Any, models: Any, available: Sequence[str]) -> str | None:
    """Why this comparison cannot be sent, said so the person can fix it; None when it can."""
    if not isinstance(prompt, str) or not prompt.strip():
        return "The prompt is empty. Write a prompt first: every model gets the same one."
    items = list(models) if isinstance(models, list | tuple) else []
    unknown = [m for m in items if not isinstance(m, str) or m not in available]  # before hashing: [[…]] is bad
    if unknown:
        return f"{', '.join(map(str, unknown))} cannot be compared here; choose from {', '.join(available)}."
    picked = list(dict.fromkeys(items))
    if not MIN_MODELS <= len(picked) <= MAX_MODELS:
        return f"Pick {MIN_MODELS} to {MAX_MODELS} models to compare (you picked {len(picked)})."
    return None


def pick_seed(randomize: bool, seed: Any, rng: random.Random | None = None) -> int:
    """The one seed every model gets: a fresh one, or the person's own (checked)."""
    if randomize or seed is None or seed == "":
        return (rng or random.SystemRandom()).randint(0, RANDOM_SEED_MAX)
    number = seed if isinstance(seed, int | float) and not isinstance(seed, bool) else None
    if number is None or not finite(number) or number != int(number) or not 0 <= number <= SEED_LIMIT:
        raise ValueError(f"The seed must be a whole number from 0 to {SEED_LIMIT}; got {seed!r}.")
    return int(number)


def size_params(model_id: str, shape: str) -> dict[str, Any]:
    """The size parameters that give this model this shape: width/height, or Kontext's aspect_ratio."""
    rule = MODELS[model_id].size
    if isinstance(rule, AspectRatioSize):
        return {"aspect_ratio": shape}
    ratio = parse_aspect_ratio(shape)
    assert ratio is not None, "the shape is checked before sizes are worked out"
    w, h = rule.at_ratio(ratio)
    return {"width": max(w, rule.min_side), "height": max(h, rule.min_side)}


def shape_problem(shape: Any) -> str | None:
    if isinstance(shape, str) and parse_aspect_ratio(shape) is not None:
        return None
    return f"The shape must be a width:height ratio such as 1:1 or 16:9; got {shape!r}."


def request_problems(runtime: Runtime, prompt: str, models: Sequence[str], shape: str, seed: int) -> str | None:
    """Why not one of these requests can be sent, said before any is; None when at least one can.

    A model that refuses alone (Kontext and a 1:4 shape) fails in its own slot while the others
    run; when every model would refuse, the comparison is refused whole, so its message says why.
    """
    refused: dict[str, list[str]] = {}
    for model in models:
        try:
            params = {"seed": seed, **size_params(model, shape)}
            runtime.client.validate(GenerationRequest(model, prompt, params=params))
        except ValidationError as err:
            refused.setdefault(str(err), []).append(MODELS[model].display_name)
    if sum(map(len, refused.values())) < len(models):
        return None
    if len(refused) == 1:
        return next(iter(refused))  # the same problem everywhere (an empty prompt, a control character)
    return "Nothing was sent: every model refused. " + " ".join(
        f"{' and '.join(names)}: {message}" for message, names in refused.items())


def prepare_comparison(runtime: Runtime, available: Sequence[str], prompt: Any, models: Any, shape: Any,
                       randomize_seed: Any, seed: Any) -> tuple[list[str], int]:
    """The models, in order and once each, and the seed for a comparison that can be sent; ValidationError if not."""
    problem = selection_problem(prompt, models, available) or shape_problem(shape)
    if problem:
        raise ValidationError(problem)
    try:
        used_seed = pick_seed(flag("randomize_seed", randomize_seed, True), seed)
    except ValueError as err:
        raise ValidationError(str(err), field="seed") from None
    order = list(dict.fromkeys(models))
    problem = request_problems(runtime, prompt, order, shape, used_seed)
    if problem:
        raise ValidationError(problem)
    return order, used_seed


# --- sending it ---------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Comparison(Fanout):
    """A running (then finished) comparison: one slot per model, the same prompt, seed and shape."""

    prompt: str
    seed: int
    shape: str
    id: str = ""  # the History group its images are saved in


def shared_format(models: Sequence[str]) -> str | None:
    """An output format every model can return (PNG first): a blind comparison asks them all for it,
    so no file type gives a model away."""
    offered = [set(p.choices) if (p := MODELS[m].param("output_format")) else set() for m in models]
    return next((fmt for fmt in ("png", "jpeg", "webp") if all(fmt in choices for choices in offered)), None)


def comparison(prompt: str, models: Sequence[str], shape: str, seed: int, blind: bool = False) -> Comparison:
    """The comparison to send: one request per model, at its own size for the shape (and, blind, all in
    one output format)."""
    fmt = shared_format(models) if blind else None
    same = {"output_format": fmt} if fmt else {}
    run_id = uuid.uuid4().hex
    extra = in_group("comparison", run_id)
    slots = [Slot(m, prompt, {"seed": seed, **size_params(m, shape), **same}, extra) for m in models]
    return Comparison(slots=slots, prompt=prompt, seed=seed, shape=shape, id=run_id)


async def run_comparison(runtime: Runtime, prompt: str, models: Sequence[str], shape: str, seed: int,
                         blind: bool = False, start: float | None = None,
                         clock: Callable[[], float] = time.monotonic) -> AsyncIterator[Comparison]:
    """Send one request per model at once; yield the comparison whenever one finishes, and every tick
    (the same object, updated in place), its ``elapsed`` counted from ``start`` (a ``clock()`` reading;
    default now). Closing the generator (Stop) cancels every request still waiting."""
    comp = comparison(prompt, models, shape, seed, blind)
    async for _ in run_fanout(runtime, comp, TAB, start=start, clock=clock):
        yield comp


async def export_comparison(runtime: Runtime, comp: Comparison, blind: bool) -> downloads.Exports:
    """The comparison as a one-row contact sheet and a ZIP. Blind, the cells are the page's letters and
    nothing in either file names a model (the names show on the page after the vote)."""
    names = [f"Image {letter}" if blind else MODELS[s.model].display_name
             for letter, s in zip(LETTERS, comp.slots, strict=False)]
    settings: dict[str, Any] = {"generator": "flux-ui", "kind": "comparison", "prompt": comp.prompt, "seed": comp.seed,
                                "shape": comp.shape}
    if not blind:
        settings["models"] = [s.model for s in comp.slots]
    cells = downloads.row_cells(comp.slots, names, {"tab": TAB}, blind=blind)
    return await downloads.export_row(runtime.history.folder, "compare", comp.id, cells, title=comp.prompt,
                                      axis=Axis("Image" if blind else "Model", tuple(names)), settings=settings,
                                      blind=blind)


async def compare(runtime: Runtime, prompt: str, models: Sequence[str], shape: str, seed: int,
                  start: float | None = None) -> Comparison:
    """The whole comparison at once (the API's way): the same requests, without the ticks; ``elapsed``
    from ``start`` (a ``time.monotonic()`` reading: when the call arrived; default now)."""
    last = comparison(prompt, (), shape, seed)
    async for comp in run_comparison(runtime, prompt, models, shape, seed, start=start):
        last = comp
    return last


# --- settings saved by an earlier comparison ------------------------------------------------------

def compared_with(history: History, settings: Mapping[str, Any], available: Sequence[str]) -> list[str]:
    """The models compared alongside a saved image (same prompt and seed, made in this tab)."""
    prompt, seed = settings.get("prompt"), settings.get("seed")
    if settings.get("tab") != TAB or not isinstance(prompt, str) or not prompt:
        return []
    same = {e.model for e in history.list(text=prompt, limit=100) if e.tab == TAB and e.prompt == prompt
            and e.seed == seed}
    return [m for m in available if m in same][:MAX_MODELS]


def reused_models(history: History, settings: Mapping[str, Any], available: Sequence[str]) -> list[str] | None:
    """The models to tick for a saved image: its own and those it was compared with (or the first few
    others); None when its model cannot be compared here."""
    model_id = settings.get("model")
    if model_id not in available:
        return None
    together = compared_with(history, settings, available)
    if len(together) < MIN_MODELS:
        together = [model_id, *[m for m in available[:DEFAULT_PICKS] if m != model_id]]
    return [m for m in available if m in together or m == model_id][:MAX_MODELS]


def nearest_shape(width: int, height: int) -> str:
    """The preset closest to a saved image's proportions (for "reuse settings")."""
    def distance(shape: str) -> float:
        w, h = parse_aspect_ratio(shape) or (1, 1)
        return abs(math.log(width / height) - math.log(w / h))
    return min(SIZE_PRESETS, key=distance)


def saved_shape(settings: Mapping[str, Any]) -> str:
    """The shape a saved image was made at: its aspect ratio, or the preset nearest its size."""
    params = settings.get("params") or {}
    ratio = params.get("aspect_ratio") if isinstance(params, Mapping) else None
    if isinstance(ratio, str) and ratio in SIZE_PRESETS:
        return ratio
    size = settings.get("size")
    if isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return nearest_shape(size[0], size[1])
    return "1:1"
