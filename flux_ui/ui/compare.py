"""The Compare tab: one prompt, one seed and one shape on 2–5 models at once, side by side.

Each model gets its own asyncio task through the shared client, so every request waits only
in its own deployment's pacing and the results show as each arrives. A blind mode shuffles
the results and hides the names until the person picks a favourite; those votes feed the
tally (:mod:`flux_ui.tally`). The handlers at the top take and return plain values; ``build``
only lays out and wires.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from flux_ui.client.core import ProgressEvent
from flux_ui.client.errors import FluxError, ValidationError
from flux_ui.client.validation import GenerationRequest, finite
from flux_ui.history import History
from flux_ui.registry import MODELS, AspectRatioSize, PixelSize, parse_aspect_ratio
from flux_ui.runtime import Runtime
from flux_ui.tally import Tally
from flux_ui.ui import examples, handlers, progress
from flux_ui.ui.common import TabContext, TabHandle, error_text, flag, model_choices, named_signature
from flux_ui.ui.controls import SIZE_PRESETS
from flux_ui.ui.text import inert

TAB = "compare"
MIN_MODELS, MAX_MODELS = 2, 5
LABELS = "ABCDE"
DEFAULT_PICKS = 3
#: The seed flux-ui picks when asked to randomize: the range the client itself draws from.
RANDOM_SEED_MAX = 2**31 - 1
SEED_LIMIT = 2**32 - 1


# --- handlers: plain values in, plain values out -------------------------------------------

def comparable_models(models: Sequence[str]) -> list[str]:
    """The deployed models that can make an image from a prompt alone."""
    return [m for m in models if m in MODELS and MODELS[m].text_to_image]


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


def pixel_size(rule: PixelSize, ratio: tuple[int, int]) -> tuple[int, int]:
    """A shape on the model's grid at about its default area, as the text-to-image presets make it."""
    target, m = rule.default[0] * rule.default[1], rule.multiple
    w = int((target * ratio[0] / ratio[1]) ** 0.5) // m * m
    h = int((target * ratio[1] / ratio[0]) ** 0.5) // m * m
    if rule.max_side and max(w, h) > rule.max_side:
        scale = rule.max_side / max(w, h)
        w, h = int(w * scale) // m * m, int(h * scale) // m * m
    return max(w, rule.min_side), max(h, rule.min_side)


def size_params(model_id: str, shape: str) -> dict[str, Any]:
    """The size parameters that give this model this shape: width/height, or Kontext's aspect_ratio."""
    rule = MODELS[model_id].size
    if isinstance(rule, AspectRatioSize):
        return {"aspect_ratio": shape}
    ratio = parse_aspect_ratio(shape)
    assert ratio is not None, "the shape is checked before sizes are worked out"
    w, h = pixel_size(rule, ratio)
    return {"width": w, "height": h}


def nearest_shape(width: int, height: int) -> str:
    """The preset closest to a saved image's proportions (for "reuse settings")."""
    def distance(shape: str) -> float:
        w, h = parse_aspect_ratio(shape) or (1, 1)
        return abs(math.log(width / height) - math.log(w / h))
    return min(SIZE_PRESETS, key=distance)


@dataclass
class Slot:
    """One model's part in a comparison, filled in as its request goes."""

    model: str
    event: ProgressEvent | None = None
    generated: handlers.Generated | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.generated is not None or self.error is not None


@dataclass
class Comparison:
    """A running (then finished) comparison; ``arrivals`` lists slot indices as they finished."""

    prompt: str
    seed: int
    shape: str
    slots: list[Slot]
    elapsed: float = 0.0
    arrivals: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return len(self.arrivals) == len(self.slots)

    @property
    def images(self) -> int:
        return sum(s.generated is not None for s in self.slots)


async def run_comparison(runtime: Runtime, prompt: str, models: Sequence[str], shape: str,
                         seed: int) -> AsyncIterator[Comparison]:
    """Send one request per model at once; yield the comparison whenever one finishes, and every tick.

    The same object is yielded each time, updated in place. Closing the generator (the Stop
    button) cancels every request still waiting.
    """
    start = time.monotonic()
    comp = Comparison(prompt, seed, shape, [Slot(m) for m in models])

    async def one(index: int) -> None:
        slot = comp.slots[index]
        params = {"seed": seed, **size_params(slot.model, shape)}
        try:
            slot.generated = await handlers.generate(runtime, slot.model, prompt, params, tab=TAB,
                                                     on_event=lambda e: setattr(slot, "event", e))
        except FluxError as err:
            slot.error = str(err)
        comp.arrivals.append(index)

    pending = {asyncio.create_task(one(i)) for i in range(len(models))}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=progress.TICK_S, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a bug (not a FluxError) surfaces instead of hanging a slot
            comp.elapsed = time.monotonic() - start
            yield comp
    finally:
        for task in pending:
            task.cancel()


async def compare(runtime: Runtime, prompt: str, models: Sequence[str], shape: str, seed: int) -> Comparison:
    """The whole comparison at once (the API's way): the same requests, without the ticks."""
    last = Comparison(prompt, seed, shape, [])
    async for comp in run_comparison(runtime, prompt, models, shape, seed):
        last = comp
    return last


def slot_status(slot: Slot, elapsed: float) -> str:
    """A short line for a slot still waiting: what it waits for and for how long."""
    stage = slot.event.stage if slot.event else "preparing"
    if stage == "paced":
        what = "waiting for quota"
    elif stage == "retrying":
        what = f"retrying (attempt {slot.event.attempt + 1})" if slot.event else "retrying"
    elif stage == "preparing":
        what = "starting"
    else:
        what = "generating"
    return f"⏳ {what} · {elapsed:.1f} s"


def api_record(slot: Slot, image_index: int | None, arrival: int) -> dict[str, Any]:
    """What the API says about one model's result (JSON-able)."""
    record: dict[str, Any] = {"model": slot.model, "arrival": arrival, "image_index": image_index,
                              "error": slot.error}
    if slot.generated is not None:
        r = slot.generated.result
        record.update(seed=r.seed, width=r.info.width, height=r.info.height, format=r.format,
                      time_s=round(r.timings.total_s, 2),
                      cost_usd=None if r.cost_estimate_usd is None else round(r.cost_estimate_usd, 4),
                      history_id=slot.generated.entry.id, caption=handlers.caption(r))
    return record


def api_payload(comp: Comparison) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(gallery of (file, model ID), JSON) for a finished comparison, in the order the models were asked."""
    gallery: list[tuple[str, str]] = []
    records = []
    for i, slot in enumerate(comp.slots):
        index = None
        if slot.generated is not None:
            index = len(gallery)
            gallery.append((slot.generated.path, slot.model))
        records.append(api_record(slot, index, comp.arrivals.index(i) if i in comp.arrivals else -1))
    return gallery, {"prompt": comp.prompt, "seed": comp.seed, "aspect_ratio": comp.shape,
                     "elapsed_s": round(comp.elapsed, 2), "results": records}


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
    problem = selection_problem(prompt, models, available) or _shape_problem(shape)
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


async def handle_compare(runtime: Runtime, available: Sequence[str], prompt: Any, models: Any, aspect_ratio: Any,
                         randomize_seed: Any, seed: Any) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
    """The /compare endpoint on the values as sent: (images, results, message); the message says why
    nothing was sent, and is empty otherwise."""
    try:
        order, used_seed = prepare_comparison(runtime, available, prompt, models, aspect_ratio, randomize_seed, seed)
    except ValidationError as err:
        return [], {"results": []}, str(err)
    comp = await compare(runtime, prompt, order, aspect_ratio, used_seed)
    gallery, payload = api_payload(comp)
    return gallery, payload, ""


def compared_with(history: History, settings: Mapping[str, Any], available: Sequence[str]) -> list[str]:
    """The models compared alongside a saved image (same prompt and seed, made in this tab)."""
    prompt, seed = settings.get("prompt"), settings.get("seed")
    if settings.get("tab") != TAB or not isinstance(prompt, str) or not prompt:
        return []
    same = {e.model for e in history.list(text=prompt, limit=100) if e.tab == TAB and e.prompt == prompt
            and e.seed == seed}
    return [m for m in available if m in same][:MAX_MODELS]


def tally_table(tally: Tally) -> str:
    """The blind-vote tally as a small Markdown table, or how to start one."""
    rows = tally.standings()
    if not rows:
        return "_No blind votes yet: turn on **Blind mode**, compare, and pick a favourite._"
    lines = ["| Model | Wins | Shown | Win rate |", "|---|--:|--:|--:|"]
    for s in rows:
        name = MODELS[s.model].display_name if s.model in MODELS else inert(s.model)  # the tally file's
        lines.append(f"| {name} | {s.wins} | {s.shown} | {s.win_rate:.0%} |")
    return "\n".join(lines)


# --- what the page shows for a comparison -------------------------------------------------

def slot_views(comp: Comparison) -> list[dict[str, Any]]:
    """Plain per-slot facts the page keeps in a gr.State (for the slider, votes and Stop)."""
    return [{"model": s.model, "label": LABELS[i], "path": s.generated.path if s.generated else None,
             "caption": handlers.caption(s.generated.result) if s.generated else None, "error": s.error}
            for i, s in enumerate(comp.slots)]


def display_name(view: Mapping[str, Any], blind: bool, revealed: bool) -> str:
    """What a slot is called: the model, or its letter while the vote is blind."""
    name = MODELS[view["model"]].display_name
    if not blind:
        return name
    return f"{view['label']}: {name}" if revealed else f"Image {view['label']}"


def caption_text(view: Mapping[str, Any], blind: bool, revealed: bool, winner: int | None = None,
                 index: int = -1) -> str:
    """The caption under a finished slot."""
    if view["error"]:
        head = f"**{display_name(view, blind, True)}**" if blind else f"**{MODELS[view['model']].display_name}**"
        return f"{head}\n\n{error_text(FluxError(view['error']))}"
    if blind and not revealed:
        return f"**Image {view['label']}** · ready"
    prefix = f"**{view['label']}** {'★ your pick ' if index == winner else ''}· " if blind else ""
    return prefix + str(view["caption"])


def pick_choices(views: Sequence[Mapping[str, Any]], blind: bool, revealed: bool) -> list[tuple[str, int]]:
    return [(display_name(v, blind, revealed), i) for i, v in enumerate(views) if v["path"]]


def slider_value(views: Sequence[Mapping[str, Any]] | None, left: Any, right: Any) -> tuple[str, str] | None:
    """The two images the A/B slider shows, or None while they are not both there."""
    if not views:
        return None
    picks = [views[i]["path"] if isinstance(i, int) and 0 <= i < len(views) else None for i in (left, right)]
    return (picks[0], picks[1]) if all(picks) else None


def frame(comp: Comparison, blind_mode: bool, fresh: set[int], final: bool) -> list[Any]:
    """One streamed update for the run outputs (status, seed, stop, state, columns, images, captions,
    votes, left, right, slider, hint), complete in itself.

    Gradio's page can skip streamed updates that arrive close together and render only the
    latest (seen with results a few hundred ms apart), so every frame carries each finished
    slot's image again; unchanged values travel as empty diffs. Only the slider picks are set
    once, when two images first exist, so a pick made meanwhile is not undone.
    """
    views = slot_views(comp)
    cols, imgs, caps, vote_btns = [], [], [], []
    for i in range(MAX_MODELS):
        if i >= len(views):
            cols.append(gr.update(visible=False))
            imgs.append(gr.update(value=None))
            caps.append("")
            vote_btns.append(gr.update(visible=False))
            continue
        view, slot = views[i], comp.slots[i]
        cols.append(gr.update(visible=True))
        label = display_name(view, blind_mode, False)
        if not slot.finished:
            imgs.append(gr.update(value=None, label=label))
            caps.append(f"**{label}**\n\n{slot_status(slot, comp.elapsed)}")
        else:
            imgs.append(gr.update(value=view["path"], label=label))
            caps.append(caption_text(view, blind_mode, False))
        can_vote = final and blind_mode and comp.images >= MIN_MODELS and view["path"] is not None
        vote_btns.append(gr.update(visible=can_vote))
    choices = pick_choices(views, blind_mode, False)
    before = len([c for c in choices if c[1] not in fresh])
    if before < 2 <= len(choices):  # the moment two images exist: show them on the slider
        a, b = choices[0][1], choices[1][1]
        pick = [gr.update(choices=choices, value=a), gr.update(choices=choices, value=b),
                gr.update(value=slider_value(views, a, b), visible=True), gr.update(visible=False)]
    else:
        pick = [gr.update(choices=choices), gr.update(choices=choices), gr.update(), gr.update()]
    head = summary(comp, blind_mode) if final else (
        f"⏳ {comp.elapsed:.1f} s · {len(comp.arrivals)} of {len(comp.slots)} done · "
        f"seed {comp.seed} on every model · {comp.shape}")
    return [head, gr.update(), gr.update(visible=not final), {"blind": blind_mode, "voted": False,
                                                               "views": views},
            *cols, *imgs, *caps, *vote_btns, *pick]


def settle_picks(state: Mapping[str, Any] | None, left: Any, right: Any) -> list[Any]:
    """Keep the slider's two picks if both are results, else take the first two results."""
    views = (state or {}).get("views") or []
    ready = [i for i, v in enumerate(views) if v["path"]]
    if left not in ready or right not in ready:
        left, right = (ready[0], ready[1]) if len(ready) >= 2 else (None, None)
    value = slider_value(views, left, right)
    return [gr.update(value=left), gr.update(value=right), gr.update(value=value, visible=value is not None),
            gr.update(visible=value is None)]


def stopped(state: Mapping[str, Any] | None) -> list[Any]:
    """After Stop: status, the hidden Stop button, and "stopped" on each slot still waiting."""
    caps: list[Any] = [gr.update()] * MAX_MODELS
    for i, view in enumerate((state or {}).get("views") or []):
        if not view["path"] and not view["error"]:
            caps[i] = f"**{display_name(view, bool(state and state['blind']), False)}**\n\n⏹ stopped"
    return [progress.STOPPED, gr.update(visible=False), *caps]


def summary(comp: Comparison, blind: bool) -> str:
    """The status line once every model has answered."""
    n = len(comp.slots)
    line = f"Done: {comp.images} of {n} images in {comp.elapsed:.1f} s · seed {comp.seed} on every model · {comp.shape}"
    if comp.images < n:
        line += " · see the failed slot for why"
    if blind and comp.images >= MIN_MODELS:
        line += "\n\nWhich is best? Pick with the buttons under the images; the names show after your vote."
    return line


# --- layout and wiring ---------------------------------------------------------------------

@dataclass
class _SlotWidgets:
    column: gr.Column
    image: gr.Image
    caption: gr.Markdown
    vote: gr.Button


def _slot_widgets(i: int) -> _SlotWidgets:
    with gr.Column(visible=False, min_width=220, elem_id=f"compare-slot-{i}") as column:
        image = gr.Image(label=f"Result {i + 1}", type="filepath", interactive=False, height=340,
                         buttons=["download", "fullscreen"], elem_id=f"compare-image-{i}")
        caption = gr.Markdown("", elem_id=f"compare-caption-{i}")
        vote = gr.Button(f"{LABELS[i]} is best", visible=False, size="sm", elem_id=f"compare-vote-{i}")
    return _SlotWidgets(column, image, caption, vote)


def build(ctx: TabContext) -> TabHandle:
    runtime = ctx.runtime
    available = comparable_models(runtime.models)
    tally = Tally(runtime.settings.output_dir)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            prompt = gr.Textbox(label="Prompt", lines=3, max_lines=10, elem_id="compare-prompt",
                                placeholder="A glass teapot on a windowsill, morning light, film photo",
                                info="Every model gets this prompt. Ctrl+Enter (⌘+Enter) compares.")
            with gr.Row():
                run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="compare-stop", scale=1, visible=False)
            status = gr.Markdown("", elem_id="compare-status", elem_classes=["flux-status"])
        with gr.Column(scale=2, min_width=320):
            picked = gr.CheckboxGroup(model_choices(available), value=available[:DEFAULT_PICKS], label="Models",
                                      info=f"Pick {MIN_MODELS} to {MAX_MODELS}; each is sent at once, "
                                           "within its own quota.", elem_id="compare-models")
            with gr.Row():
                shape = gr.Dropdown(list(SIZE_PRESETS), value="1:1", label="Shape", elem_id="compare-shape",
                                    info="Each model makes it at its own size.", min_width=140)
                seed = gr.Number(value=None, precision=0, minimum=0, maximum=SEED_LIMIT, label="Seed",
                                 elem_id="compare-seed", min_width=140,
                                 info="One seed for every model; shows the last one used.")
            with gr.Row():
                randomize = gr.Checkbox(value=True, label="Randomize seed", elem_id="compare-randomize")
                blind = gr.Checkbox(value=False, label="Blind mode", elem_id="compare-blind",
                                    info="Shuffle and hide the names until you pick a favourite.")
    examples.compare(available, prompt, picked, shape, MIN_MODELS)
    with gr.Row(equal_height=False, elem_id="compare-results"):
        slots = [_slot_widgets(i) for i in range(MAX_MODELS)]
    with gr.Accordion("A/B slider", open=True, elem_id="compare-ab"):
        ab_hint = gr.Markdown("The slider appears here once two results are ready; then pick any two.",
                              elem_id="compare-ab-hint")
        with gr.Row():
            left = gr.Dropdown(choices=[], value=None, label="Left image", elem_id="compare-left", interactive=True)
            right = gr.Dropdown(choices=[], value=None, label="Right image", elem_id="compare-right", interactive=True)
        slider = gr.ImageSlider(type="filepath", interactive=False, label="Drag to compare", elem_id="compare-slider",
                                buttons=["fullscreen"], visible=False, max_height=560)
    with gr.Accordion("Blind-vote tally", open=True, elem_id="compare-tally-box"):
        tally_md = gr.Markdown(tally_table(tally), elem_id="compare-tally")
    views_state = gr.State(None)
    api_trigger = gr.Button(visible=False, elem_id="compare-api")
    api_gallery = gr.Gallery(visible=False, label="Images", elem_id="compare-api-gallery")
    api_json = gr.JSON(visible=False, label="Results", elem_id="compare-api-results")

    columns = [s.column for s in slots]
    images = [s.image for s in slots]
    captions = [s.caption for s in slots]
    votes = [s.vote for s in slots]
    run_outputs = [status, seed, stop, views_state, *columns, *images, *captions, *votes, left, right, slider,
                   ab_hint]

    def no_change(message: str) -> list[Any]:
        return [message, *[gr.update()] * (len(run_outputs) - 1)]

    async def run_ui(prompt_text: str, chosen: list[str], shape_text: str, randomize_seed: bool,
                     seed_value: Any, blind_mode: bool) -> AsyncIterator[list[Any]]:
        try:
            order, used_seed = prepare_comparison(runtime, available, prompt_text, chosen, shape_text, randomize_seed,
                                                  seed_value)
        except ValidationError as err:
            yield no_change(error_text(err))
            return
        if blind_mode:
            random.shuffle(order)
        start = Comparison(prompt_text, used_seed, shape_text, [Slot(m) for m in order])
        first = frame(start, blind_mode, set(), False)
        first[1] = gr.update(value=used_seed) if randomize_seed else gr.update()
        first[-4:] = [gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                      gr.update(value=None, visible=False), gr.update(visible=True)]
        yield first
        seen: set[int] = set()
        async for comp in run_comparison(runtime, prompt_text, order, shape_text, used_seed):
            fresh = set(comp.arrivals) - seen
            seen |= fresh
            yield frame(comp, blind_mode, fresh, comp.finished)

    run_inputs = [prompt, picked, shape, randomize, seed, blind]
    run_event = run.click(run_ui, run_inputs, run_outputs, api_visibility="private", preprocess=False)
    # The picks made mid-stream may have been among the skipped updates: settle them at the end,
    # keeping whatever the person chose meanwhile.
    run_event.then(settle_picks, [views_state, left, right], [left, right, slider, ab_hint],
                   api_visibility="private", preprocess=False)

    stop.click(stopped, views_state, [status, stop, *captions], cancels=[run_event], api_visibility="private")

    def on_pick(views: Mapping[str, Any] | None, a: Any, b: Any) -> Any:
        value = slider_value((views or {}).get("views"), a, b)
        return gr.update(value=value, visible=value is not None)

    for dropdown in (left, right):
        dropdown.input(on_pick, [views_state, left, right], slider, api_visibility="private", preprocess=False)

    def on_vote(index: int, views: Mapping[str, Any] | None) -> list[Any]:
        return vote(tally, index, views)

    vote_outputs = [status, views_state, *images, *captions, *votes, left, right, tally_md]
    for i, button in enumerate(votes):
        button.click(lambda v, i=i: on_vote(i, v), views_state, vote_outputs, api_visibility="private")
    ctx.demo.load(lambda: tally_table(tally), None, tally_md, api_visibility="private")

    async def compare_api(prompt: str, models: list[str], aspect_ratio: str = "1:1", randomize_seed: bool = True,
                          seed: int | None = None) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
        """Compare 2 to 5 models on one prompt, one seed and one shape, all sent at once.

        ``models`` is a list of model IDs (e.g. ["FLUX.2-pro", "FLUX-1.1-pro"]); ``aspect_ratio``
        ("1:1", "16:9", …) becomes each model's own size (width/height on its grid, or Kontext's
        aspect_ratio). With ``randomize_seed`` flux-ui picks one seed for all; otherwise ``seed``.

        Returns (images, results, message). ``images`` is a gallery of the saved originals, each
        captioned with its model ID. ``results`` is {prompt, seed, aspect_ratio, elapsed_s, results:
        [one per model, in the order asked: model, image_index (into images, or None), arrival (0 =
        first to finish), error (None or why it failed), and for an image seed, width, height, format,
        time_s, cost_usd, history_id, caption]}. ``message`` is empty, or says why nothing was sent.
        """
        return await handle_compare(runtime, available, prompt, models, aspect_ratio, randomize_seed, seed)

    compare_api.__name__ = "compare"  # MCP names the tool after the function
    compare_api.__signature__ = named_signature(  # type: ignore[attr-defined]
        ["prompt", "models"], {"aspect_ratio": "1:1", "randomize_seed": True, "seed": None})
    api_trigger.click(compare_api, [prompt, picked, shape, randomize, seed], [api_gallery, api_json, status],
                      api_name="compare", preprocess=False)

    def apply(settings: Mapping[str, Any]) -> list[Any]:
        """Load a saved image's prompt and seed, with its model (and those it was compared with) ticked."""
        model_id = settings.get("model")
        seed_value = settings.get("seed")
        chosen: Any = gr.update()
        if model_id in available:
            together = compared_with(runtime.history, settings, available)
            if len(together) < MIN_MODELS:
                together = [model_id, *[m for m in available[:DEFAULT_PICKS] if m != model_id]]
            chosen = gr.update(value=[m for m in available if m in together or m == model_id][:MAX_MODELS])
        return [gr.update(value=settings.get("prompt", "")), chosen,
                gr.update(value=_saved_shape(settings)),
                gr.update(value=not isinstance(seed_value, int)),
                gr.update(value=seed_value if isinstance(seed_value, int) else None)]

    return TabHandle(tab_id="compare", name=TAB, outputs=[prompt, picked, shape, randomize, seed], apply=apply,
                     models=available)


def _shape_problem(shape: Any) -> str | None:
    if isinstance(shape, str) and parse_aspect_ratio(shape) is not None:
        return None
    return f"The shape must be a width:height ratio such as 1:1 or 16:9; got {shape!r}."


def _saved_shape(settings: Mapping[str, Any]) -> str:
    params = settings.get("params") or {}
    ratio = params.get("aspect_ratio") if isinstance(params, Mapping) else None
    if isinstance(ratio, str) and ratio in SIZE_PRESETS:
        return ratio
    size = settings.get("size")
    if isinstance(size, list | tuple) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return nearest_shape(size[0], size[1])
    return "1:1"


def vote(tally: Tally, index: int, state: Mapping[str, Any] | None) -> list[Any]:
    """Count a blind vote and reveal the names: status, state, images, captions, votes, picks, tally."""
    views = list((state or {}).get("views") or [])
    unchanged = [gr.update()] * (1 + 1 + 3 * MAX_MODELS + 3)
    if not state or not state.get("blind") or state.get("voted") or index >= len(views) or not views[index]["path"]:
        return ["This comparison has no open blind vote.", *unchanged[1:]]
    shown = [v["model"] for v in views if v["path"]]
    tally.record(views[index]["model"], shown)
    images = [gr.update(label=display_name(v, True, True)) for v in views]
    captions = [caption_text(v, True, True, index, i) for i, v in enumerate(views)]
    pad = MAX_MODELS - len(views)
    choices = pick_choices(views, True, True)
    winner = display_name(views[index], True, True)
    return [f"★ You picked **{winner}**. Counted in the tally below.", {**state, "voted": True},
            *images, *[gr.update()] * pad, *captions, *[gr.update()] * pad,
            *[gr.update(visible=False)] * MAX_MODELS,
            gr.update(choices=choices), gr.update(choices=choices), tally_table(tally)]
