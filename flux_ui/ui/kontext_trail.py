"""The Kontext edit trail as plain data: its steps, how an edit extends or branches it, stepping back, and its text.

The trail is the input image of the first edit ("original"), then each result with its
instruction. Which step an input image is, is recognised by its bytes (SHA-256), not by how it
reached the box: a result used as the next input, a step picked from the trail and a re-uploaded
original are all recognised, and any other picture starts a new trail. Stepping back drops
nothing. A new edit made from an earlier step starts a branch there: the later steps leave the
trail (History keeps them) and the status line says so. The tab (:mod:`flux_ui.ui.kontext`)
keeps the trail in a gr.State and shows it with these functions.

Each trail is a chain in History: every result is saved in the group ``(TRAIL_KIND, chain id)``
with its place in the trail (``step``), so replaying a chain's steps oldest first
(:func:`rebuilt`) gives back the trail, branches included, after a page reload.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flux_ui.ui.text import inert

CAPTION_CHARS = 40  # instruction length shown under a trail thumbnail
TRAIL_COLUMNS = 5
#: The History group kind of a trail's results (``ui.fanout.in_group``), one group per trail.
TRAIL_KIND = "kontext-trail"
EMPTY_TRAIL = ("No edits yet. The trail keeps the input image and each result with its instruction; "
               "click a step to make it the input again.")


@dataclass(frozen=True)
class Step:
    """One image in the trail: the original (no instruction) or an edit's result."""

    path: str
    digest: str
    instruction: str | None = None


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def step_label(index: int, step: Step, limit: int | None = None, markdown: bool = False) -> str:
    """"edit 2: add snow" (shortened to ``limit``); with ``markdown``, the instruction made inert."""
    if step.instruction is None:
        return "original"
    text = " ".join(step.instruction.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"edit {index}: {inert(text) if markdown else text}"


def find_step(trail: Sequence[Step], digest: str) -> int | None:
    return next((i for i, s in enumerate(trail) if s.digest == digest), None)


def extend_trail(trail: Sequence[Step], source: Step, result: Step) -> tuple[list[Step], int, str]:
    """The trail after an edit of ``source`` gave ``result``: (trail, index of source, note).

    An edit from an earlier step cuts the steps after it (the branch point) before adding
    the result; the note names them so nothing leaves the trail unannounced.
    """
    at = find_step(trail, source.digest)
    if at is None:
        note = ("This input image is not in the trail, so a new trail starts with it (earlier edits are in History)."
                if trail else "")
        return [Step(source.path, source.digest), result], 0, note
    dropped = list(trail[at + 1:])
    note = ""
    if dropped:
        names = ", ".join(step_label(i, s, CAPTION_CHARS) for i, s in enumerate(dropped, start=at + 1))
        note = (f"New branch from {step_label(at, trail[at], CAPTION_CHARS)}: {names} left the trail "
                "(History keeps them).")
    return [*trail[: at + 1], result], at, note


def new_chain_id() -> str:
    """A trail's id in History: random, so no page can guess another trail's."""
    return uuid.uuid4().hex


def chain_place(trail: Sequence[Step], digest: str, chain: str | None) -> tuple[str, int]:
    """Where an edit of the image with ``digest`` goes: (chain id, step), known before it is sent so that
    History saves the result in its place. A picture not in the trail starts a new chain at step 1."""
    at = find_step(trail, digest)
    if at is None or not chain:
        return new_chain_id(), 1 if at is None else at + 1
    return chain, at + 1


def rebuilt(original: Step, placed: Iterable[tuple[int, Step]]) -> tuple[list[Step], int | None]:
    """The trail a chain's results make, replayed oldest first as :func:`extend_trail` made it: each
    ``(step, result)`` cuts what followed its source and joins there. Returns the trail and the index of
    the last result's source (the input box after that edit); a step with no source (a result History
    lost) is left out, and None with no result placed."""
    trail = [original]
    current: int | None = None
    for step, result in placed:
        if type(step) is int and 1 <= step <= len(trail):
            trail = [*trail[:step], result]
            current = step - 1
    return trail, current


def step_index(trail: Sequence[Step], index: object) -> int | None:
    """``index`` when it names a step of the trail (a gallery click's index), else None."""
    return index if isinstance(index, int) and 0 <= index < len(trail) else None


def trail_gallery(trail: Sequence[Step]) -> list[tuple[str, str]]:
    return [(s.path, step_label(i, s, CAPTION_CHARS)) for i, s in enumerate(trail)]


def trail_height(steps: int) -> int:
    """Gallery height in px: one or two rows of thumbnails, then it scrolls (the list shows all)."""
    rows = min(2, max(1, -(-steps // TRAIL_COLUMNS)))
    return 24 + 130 * rows


def trail_text(trail: Sequence[Step], current: int | None) -> str:
    """The trail as a list, the step in the input box marked."""
    if not trail:
        return EMPTY_TRAIL
    lines = []
    for i, s in enumerate(trail):
        mark = " ◀ **input now**" if i == current else ""
        lines.append(f"- {step_label(i, s, markdown=True)}{mark}")
    if current is None:
        lines.append("- *your own picture* ◀ **input now** (its first edit starts a new trail)")
    return "\n".join(lines)


def step_back_text(trail: Sequence[Step], index: int) -> str:
    later = len(trail) - 1 - index
    label = step_label(index, trail[index], CAPTION_CHARS, markdown=True)
    if later <= 0:
        return f"{label} is the input now."
    steps = "step stays" if later == 1 else f"{later} steps stay"
    return (f"Stepped back: {label} is the input now. The later "
            f"{steps} in the trail until you make a new edit from here, which starts a branch.")


def next_input_text(trail: Sequence[Step]) -> str:
    """The status once the latest result is the input again ("Use this result as the next input")."""
    last = len(trail) - 1
    label = step_label(last, trail[last], CAPTION_CHARS, markdown=True)
    return f"{label} is the input now: write the next instruction."
