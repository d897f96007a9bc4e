"""What a comparison looks like: slot tiles and captions, the A/B slider's picks, the API's gallery, the tally.

Nothing here sends a request or writes a file: each function turns a comparison
(:mod:`flux_ui.ui.compare_run`) or the page's state for one into the values and updates the
tab (:mod:`flux_ui.ui.compare`) shows. A slot's model is named openly, hidden behind its letter
while a blind vote is open, or revealed once it is cast (:class:`Blindness`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import gradio as gr

from flux_ui.errors import FluxError
from flux_ui.exports import model_names
from flux_ui.registry import MODELS
from flux_ui.tally import Tally
from flux_ui.ui import handlers, progress
from flux_ui.ui.common import ALERT_MARK, error_text
from flux_ui.ui.compare_run import LETTERS, MAX_MODELS, MIN_MODELS, Comparison
from flux_ui.ui.fanout import Slot
from flux_ui.ui.text import inert

LABELS = LETTERS
NO_OPEN_VOTE = "This comparison has no open blind vote."


class Blindness(Enum):
    """How the page names each slot's model."""

    OPEN = "open"  # blind mode off: every name shown
    HIDDEN = "hidden"  # a blind vote is open: letters only
    REVEALED = "revealed"  # the vote is cast: letters and names

    @classmethod
    def of(cls, blind_mode: bool, voted: bool = False) -> Blindness:
        if not blind_mode:
            return cls.OPEN
        return cls.REVEALED if voted else cls.HIDDEN

    @property
    def blind(self) -> bool:
        """Whether the slots go by their letters (a blind vote, open or cast)."""
        return self is not Blindness.OPEN


# --- one slot ----------------------------------------------------------------------------------

def slot_views(comp: Comparison) -> list[dict[str, Any]]:
    """Plain per-slot facts the page keeps in a gr.State (for the slider, votes and Stop)."""
    return [{"model": s.model, "label": LABELS[i], "path": s.generated.path if s.generated else None,
             "caption": handlers.caption(s.generated.result) if s.generated else None, "error": s.error}
            for i, s in enumerate(comp.slots)]


def display_name(view: Mapping[str, Any], blindness: Blindness) -> str:
    """What a slot is called: the model, or its letter while the vote is blind."""
    name = MODELS[view["model"]].display_name
    if blindness is Blindness.OPEN:
        return name
    return f"{view['label']}: {name}" if blindness is Blindness.REVEALED else f"Image {view['label']}"


def alt_text(view: Mapping[str, Any], blindness: Blindness) -> str:
    """What a screen reader says for a slot's image (and names the tile's click-to-view button), no more
    than the page shows: the model, or only its letter while the vote is blind."""
    name = display_name(view, blindness)
    return f"{name}, result" if blindness.blind else f"Result from {name}"


def unnamed(text: str) -> str:
    """A message with every model's ID, display name and route path replaced, for a blind vote."""
    for name in model_names():
        text = re.sub(re.escape(name), "this model", text, flags=re.IGNORECASE)
    return text


def caption_text(view: Mapping[str, Any], blindness: Blindness, winner: int | None = None, index: int = -1) -> str:
    """The caption under a finished slot."""
    if view["error"] and blindness is Blindness.HIDDEN:  # out of the vote, but naming it would narrow the guess
        return f"**Image {view['label']}** · failed\n\n{error_text(FluxError(unnamed(view['error'])))}"
    if view["error"]:
        return f"**{display_name(view, blindness)}**\n\n{error_text(FluxError(view['error']))}"
    if blindness is Blindness.HIDDEN:
        return f"**Image {view['label']}** · ready"
    prefix = f"**{view['label']}** {'★ your pick ' if index == winner else ''}· " if blindness.blind else ""
    return prefix + str(view["caption"])


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


# --- the A/B slider ------------------------------------------------------------------------------

def pick_choices(views: Sequence[Mapping[str, Any]], blindness: Blindness) -> list[tuple[str, int]]:
    return [(display_name(v, blindness), i) for i, v in enumerate(views) if v["path"]]


def slider_value(views: Sequence[Mapping[str, Any]] | None, left: Any, right: Any) -> tuple[str, str] | None:
    """The two images the A/B slider shows, or None while they are not both there."""
    if not views:
        return None
    picks = [views[i]["path"] if isinstance(i, int) and 0 <= i < len(views) else None for i in (left, right)]
    return (picks[0], picks[1]) if all(picks) else None


def first_picks(views: Sequence[Mapping[str, Any]], choices: list[tuple[str, int]], fresh: set[int]) -> list[Any]:
    """The left, right, slider and hint updates for a frame: the first two results are put on the
    slider the moment they both exist, and the picks are left alone otherwise."""
    before = len([c for c in choices if c[1] not in fresh])
    if before < 2 <= len(choices):
        a, b = choices[0][1], choices[1][1]
        return [gr.update(choices=choices, value=a), gr.update(choices=choices, value=b),
                gr.update(value=slider_value(views, a, b), visible=True), gr.update(visible=False)]
    return [gr.update(choices=choices), gr.update(choices=choices), gr.update(), gr.update()]


def settle_picks(state: Mapping[str, Any] | None, left: Any, right: Any) -> list[Any]:
    """Keep the slider's two picks if both are results, else take the first two results."""
    views = (state or {}).get("views") or []
    ready = [i for i, v in enumerate(views) if v["path"]]
    if left not in ready or right not in ready:
        left, right = (ready[0], ready[1]) if len(ready) >= 2 else (None, None)
    value = slider_value(views, left, right)
    return [gr.update(value=left), gr.update(value=right), gr.update(value=value, visible=value is not None),
            gr.update(visible=value is None)]


# --- the whole comparison ---------------------------------------------------------------------------

def slot_updates(comp: Comparison, views: Sequence[Mapping[str, Any]], blindness: Blindness,
                 final: bool) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """(columns, images, captions, vote buttons): one of each per slot, the unused ones hidden."""
    cols: list[Any] = [gr.update(visible=False) for _ in range(MAX_MODELS)]
    imgs: list[Any] = [gr.update(value=None) for _ in range(MAX_MODELS)]
    caps: list[Any] = [""] * MAX_MODELS
    vote_btns: list[Any] = [gr.update(visible=False) for _ in range(MAX_MODELS)]
    for i, (view, slot) in enumerate(zip(views, comp.slots, strict=True)):
        cols[i] = gr.update(visible=True)
        label = display_name(view, blindness)
        if not slot.finished:
            imgs[i] = gr.update(value=None, label=label)
            caps[i] = f"**{label}**\n\n{slot_status(slot, comp.elapsed)}"
        else:
            imgs[i] = gr.update(value=view["path"], label=label, alt_text=alt_text(view, blindness))
            caps[i] = caption_text(view, blindness)
        can_vote = final and blindness.blind and comp.images >= MIN_MODELS and view["path"] is not None
        vote_btns[i] = gr.update(visible=can_vote)
    return cols, imgs, caps, vote_btns


def frame(comp: Comparison, blind_mode: bool, fresh: set[int], final: bool, seed: Any = None) -> list[Any]:
    """One streamed update for the run outputs (status, seed, stop, state, columns, images, captions,
    votes, left, right, slider, hint), complete in itself.

    Gradio sends each frame as a diff from the last, and the page may apply the next diff to a frame
    it has not shown yet (see compare.run_frames), so every frame carries each finished slot's image
    again: one left out would be deleted from the frame still waiting. Unchanged values travel as
    empty diffs. Only the slider picks are set once, when two images first exist, so a pick made
    meanwhile is not undone (settle_picks puts them right after the run). ``seed`` is the seed box's
    update (none by default). Each call builds new dicts: Gradio pops the values it sends.
    """
    blindness = Blindness.of(blind_mode)
    views = slot_views(comp)
    cols, imgs, caps, vote_btns = slot_updates(comp, views, blindness, final)
    pick = first_picks(views, pick_choices(views, blindness), fresh)
    head = summary(comp, blind_mode) if final else (
        f"⏳ {comp.elapsed:.1f} s · {len(comp.arrivals)} of {len(comp.slots)} done · "
        f"seed {comp.seed} on every model · {comp.shape}")
    state = {"blind": blind_mode, "voted": False, "views": views}
    return [head, gr.update() if seed is None else seed, gr.update(visible=not final), state, *cols, *imgs, *caps,
            *vote_btns, *pick]


def summary(comp: Comparison, blind: bool) -> str:
    """The status line once every model has answered."""
    n = len(comp.slots)
    line = f"Done: {comp.images} of {n} images in {comp.elapsed:.1f} s · seed {comp.seed} on every model · {comp.shape}"
    if comp.images == 0:  # nothing to look at: shown as an error (ALERT_MARK), like a failed run elsewhere
        line = f"{ALERT_MARK} No image came back: every model failed (each slot says why). {line}"
    elif comp.images < n:
        line += " · see the failed slot for why"
    if blind and comp.images >= MIN_MODELS:
        line += "\n\nWhich is best? Pick with the buttons under the images; the names show after your vote."
    return line


def stopped(state: Mapping[str, Any] | None) -> list[Any]:
    """After Stop: status, the hidden Stop button, and "stopped" on each slot still waiting."""
    caps: list[Any] = [gr.update()] * MAX_MODELS
    blindness = Blindness.of(bool(state and state["blind"]))
    for i, view in enumerate((state or {}).get("views") or []):
        if not view["path"] and not view["error"]:
            caps[i] = f"**{display_name(view, blindness)}**\n\n⏹ stopped"
    return [progress.STOPPED, gr.update(visible=False), *caps]


def open_vote(state: Mapping[str, Any] | None, index: int) -> bool:
    """Whether ``index`` can be voted for: a blind comparison, not yet voted on, and that slot an image."""
    views = (state or {}).get("views") or []
    return bool(state and state.get("blind") and not state.get("voted") and index < len(views)
                and views[index]["path"])


def revealed(state: Mapping[str, Any], index: int) -> list[Any]:
    """After a vote for ``index`` (see :func:`open_vote`): status, state, images, captions, votes and picks,
    the names shown and the pick starred."""
    views = list(state["views"])
    images = [gr.update(label=display_name(v, Blindness.REVEALED), alt_text=alt_text(v, Blindness.REVEALED))
              for v in views]
    captions = [caption_text(v, Blindness.REVEALED, index, i) for i, v in enumerate(views)]
    pad = [gr.update()] * (MAX_MODELS - len(views))
    choices = pick_choices(views, Blindness.REVEALED)
    winner = display_name(views[index], Blindness.REVEALED)
    return [f"★ You picked **{winner}**. Counted in the tally below.", {**state, "voted": True},
            *images, *pad, *captions, *pad, *[gr.update(visible=False)] * MAX_MODELS,
            gr.update(choices=choices), gr.update(choices=choices)]


# --- the API's answer and the tally ---------------------------------------------------------------

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
