"""What comes back into the Kontext tab: the edit trail after a page reload, and a History entry's settings.

The browser keeps only the id of its latest trail (a gr.BrowserState: that browser's localStorage,
nowhere else), tagged with a hash of the signed-in user. The steps are History's images of that
chain (:data:`~flux_ui.ui.kontext_trail.TRAIL_KIND`), replayed oldest first by
:func:`~flux_ui.ui.kontext_trail.rebuilt`; the original is the first step's stored input image
(``Entry.inputs``). An id History does not know, or one another user stored, restores nothing and
says nothing; a trail whose original is gone says so and changes nothing else.

History's "reuse settings" loads an edit's model, instruction, route and parameters through
:func:`apply_settings`, with its input image when History kept it (``input_files``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from flux_ui.history import Entry, History
from flux_ui.registry import MODELS, Route
from flux_ui.ui.kontext_edit import carried, control_update, edit_routes, route_choices
from flux_ui.ui.kontext_trail import (
    CAPTION_CHARS,
    TRAIL_KIND,
    Step,
    digest_of,
    find_step,
    rebuilt,
    step_label,
    trail_gallery,
    trail_height,
    trail_text,
)
from flux_ui.ui.text import inert

log = logging.getLogger("flux_ui.ui.kontext")

#: The ids :func:`~flux_ui.ui.kontext_trail.new_chain_id` makes; anything else from a browser is ignored.
CHAIN_ID = re.compile(r"[0-9a-f]{32}")
STORAGE_KEY = "flux-ui-kontext-trail"
#: Not a secret: Gradio hands it to the page, which encrypts the stored value with it. Fixed (Gradio's
#: default is new at each start) so that a trail stored before flux-ui restarted still comes back.
STORAGE_CIPHER = "flux-ui-kontext-trail-v1"
CHAIN_LIMIT = 1000  # a trail's results read back from History, newest first
ORIGINAL_GONE = ("Your last edit trail could not be brought back: its original picture is no longer in the "
                 "outputs folder. Its edits are in History (“Show its group” lists them).")


@dataclass(frozen=True)
class Restored:
    """A trail rebuilt from History, as the page showed it right after its last edit."""

    chain: str
    trail: list[Step]
    current: int  # the index of the last edit's source: the input box after that edit
    latest: Entry  # the last edit's result


def user_tag(username: str | None) -> str | None:
    """Who stored a trail id, without writing their user name into the browser."""
    return hashlib.sha256(username.encode()).hexdigest()[:16] if username else None


def remembered(chain: str, username: str | None) -> dict[str, Any]:
    """The browser's record of its latest trail."""
    return {"chain": chain, "user": user_tag(username)}


def chain_of(value: Any, username: str | None) -> str | None:
    """The trail id in the browser's record, if it is one flux-ui made and this user stored."""
    if not isinstance(value, Mapping) or value.get("user") != user_tag(username):
        return None
    chain = value.get("chain")
    return chain if isinstance(chain, str) and CHAIN_ID.fullmatch(chain) else None


def trail_entries(history: History, chain: str) -> list[Entry]:
    """The chain's results in History, oldest first (a group id of another kind lists nothing)."""
    found = [e for e in history.list(group=chain, limit=CHAIN_LIMIT)
             if isinstance(group := e.settings.get("group"), Mapping) and group.get("kind") == TRAIL_KIND]
    return sorted(found, key=lambda e: e.created)


def _step(path: Path, instruction: str | None = None) -> Step | None:
    try:
        return Step(str(path), digest_of(path.read_bytes()), instruction)
    except OSError:
        return None


def _placed(entries: Iterable[Entry]) -> list[tuple[Any, Step]]:
    """Each result whose file is still there, at its step, without its digest yet (only the steps that
    stay in the trail are read)."""
    return [(e.settings["group"].get("step"), Step(str(e.path), "", e.prompt)) for e in entries if e.path.is_file()]


def _read(trail: list[Step]) -> list[Step]:
    """The trail with each step's digest, up to the first file that cannot be read."""
    read = []
    for step in trail:
        whole = step if step.digest else _step(Path(step.path), step.instruction)
        if whole is None:
            break
        read.append(whole)
    return read


def restore(history: History, chain: str) -> Restored | str | None:
    """The trail ``chain`` names, rebuilt; a message when its original is gone; None when History
    holds no edit of it."""
    entries = trail_entries(history, chain)
    first = next((e for e in entries if e.settings["group"].get("step") == 1), None)
    if first is None:
        return None
    original = _step(Path(first.inputs[0])) if first.inputs else None
    if original is None:
        return ORIGINAL_GONE
    placed, current = rebuilt(original, _placed(entries))
    trail = _read(placed)
    if len(trail) < len(placed):  # a file went while it was being read: the trail up to it
        current = len(trail) - 2
    if current is None or current < 0:
        return None
    latest = next(e for e in reversed(entries) if str(e.path) == trail[-1].path)
    return Restored(chain, trail, current, latest)


def restored_info(entry: Entry) -> str:
    """The line under a restored result (History has its details, not its timings or cost)."""
    spec = MODELS.get(entry.model)
    name = spec.display_name if spec else inert(entry.model)  # an index adopted from a file's own words
    seed = f"seed {entry.seed}" if entry.seed is not None else "seed not reported"
    return f"**{name}** · {entry.width}×{entry.height} {inert(entry.format.upper())} · {seed} · back from History"


def restored_text(restored: Restored) -> str:
    """The status once a trail is back, its last edit's source in the input box again."""
    edits = len(restored.trail) - 1
    label = step_label(restored.current, restored.trail[restored.current], CAPTION_CHARS, markdown=True)
    return (f"Your edit trail is back from History ({edits} edit{'s' if edits != 1 else ''}); {label} is the "
            "input now. Upload another picture to start a new trail.")


# --- History's "reuse settings" ------------------------------------------------------------

LOADED = ("Settings loaded. History keeps results, not the pictures they were made from: drop the input "
          "image in again, then press Generate.")
LOADED_WITH_INPUT = "Settings and the input image they edited loaded: press Generate to edit it again."


def saved_input(settings: Mapping[str, Any]) -> str | None:
    """The stored input image History hands over with the settings (the first of ``input_files``), if any."""
    files = settings.get("input_files")
    first = files[0] if isinstance(files, list | tuple) and files else None
    return first if isinstance(first, str) and Path(first).is_file() else None


def apply_settings(models: Sequence[str], names: Sequence[str], settings: Mapping[str, Any]) -> list[Any]:
    """Load a saved edit's model, instruction, route, seed and parameters, and its input image when History
    kept it: updates for the model, prompt, route, randomize, each control in ``names``, the input image
    and the status."""
    model_id = settings.get("model")
    if model_id not in models:
        return [gr.update()] * (6 + len(names))
    spec = MODELS[model_id]
    offered = [r.value for r in edit_routes(spec)]
    route_value = settings.get("route") if settings.get("route") in offered else offered[0]
    chosen = Route(route_value)
    params = dict(settings.get("params") or {})
    if isinstance(settings.get("seed"), int):
        params["seed"] = settings["seed"]
    params.setdefault("aspect_ratio", "")  # not recorded: the input image's shape was matched
    updates = []
    for name in names:
        update = control_update(spec, name, chosen)
        if name in params and spec.param(name) is not None:
            update["value"] = params[name]
        updates.append(update)
    seed = spec.param("seed")
    image = saved_input(settings)
    return [gr.update(value=model_id), gr.update(value=settings.get("prompt", "")),
            gr.update(choices=route_choices(spec), value=route_value, visible=len(offered) > 1),
            gr.update(value="seed" not in params, visible=seed is not None and carried(seed, chosen)),
            *updates, gr.update() if image is None else image, LOADED if image is None else LOADED_WITH_INPUT]


# --- the page --------------------------------------------------------------------------------

def browser_state() -> gr.BrowserState:
    """Where this browser keeps its latest trail's id (its localStorage only)."""
    return gr.BrowserState(None, storage_key=STORAGE_KEY, secret=STORAGE_CIPHER)


def show_trail(trail: list[Step], current: int | None) -> tuple[Any, str]:
    """The trail's gallery and list, the step in the input box selected."""
    return (gr.update(value=trail_gallery(trail), visible=bool(trail), selected_index=current,
                      height=trail_height(len(trail))),
            trail_text(trail, current))


#: How many components :func:`restore_updates` updates: trail, current, chain, gallery, list, input image,
#: result, its caption, "Use this result", instruction, status.
RESTORE_OUTPUTS = 11


def restore_updates(history: History, value: Any, username: str | None, image: str | None = None,
                    prompt: Any = None) -> list[Any]:
    """The page's updates when the tab first shows, in :data:`RESTORE_OUTPUTS`' order: the trail as it was
    after its last edit, or (an unknown id, another user's, nothing stored, any failure) nothing changed.

    A picture (``image``: its checked path, or "" when it cannot be read) or an instruction already in the
    form stays, with its status (History's "reuse settings" may have put them there): the trail comes back
    around them, the picture marked as the step it is, if it is one.
    """
    keep = [gr.update()] * RESTORE_OUTPUTS
    chain = chain_of(value, username)
    if chain is None:
        return keep
    try:
        restored = restore(history, chain)
    except Exception:  # a locked database or a damaged record: the page works as if nothing was stored
        log.exception("could not bring back a Kontext edit trail")
        return keep
    if restored is None:
        return keep
    if isinstance(restored, str):
        return [*keep[:-1], restored]
    trail, latest = restored.trail, restored.latest
    if image is not None or (isinstance(prompt, str) and prompt.strip()):
        held = _step(Path(image)) if image else None
        current = find_step(trail, held.digest) if held else None
        return [trail, current, restored.chain, *show_trail(trail, current), *keep[5:]]
    current = restored.current
    return [trail, current, restored.chain, *show_trail(trail, current), trail[current].path, str(latest.path),
            restored_info(latest), gr.update(visible=True), latest.prompt, restored_text(restored)]
