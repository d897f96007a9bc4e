"""The "Your requests" panel: the person's own requests waiting for (or sent to) each deployment, with
their place in line and estimated start, and a Cancel for each one not yet sent (nothing is billed).

What it shows comes from the client's board (:class:`flux_ui.fair_queue.Board`), refreshed by a timer
for the person the page belongs to (:func:`flux_ui.ui.common.caller`); nobody sees anyone else's.
A fixed set of rows is shown or hidden, so the page never re-renders; each row's Cancel names the
request it cancels (``ui/icons.labelled``), and the rows remember which request each showed, so a
click cancels what the person saw even if the list moved meanwhile. A cancelled request's wait ends
in its own tab with "not sent, not billed" (``errors.WithdrawnError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from flux_ui.fair_queue import RequestView, display_name
from flux_ui.runtime import Runtime
from flux_ui.ui.common import caller
from flux_ui.ui.icons import labelled
from flux_ui.ui.text import inert

#: Rows shown at once; more requests are counted in the summary ("and 18 more").
ROWS = 6
TICK_S = 1.0
#: Its events are quick and async (on the event loop): no worker limit, so they never wait behind History's.
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden", "concurrency_limit": None}


@dataclass
class _Panel:
    box: gr.Accordion
    summary: gr.Markdown
    rows: list[gr.Row]
    texts: list[gr.Markdown]
    cancels: list[gr.Button]
    cancel_all: gr.Button
    shown: gr.State  # the ticket id each row shows, as the person last saw it

    @property
    def outputs(self) -> list[Any]:
        return [self.box, self.summary, *self.rows, *self.texts, *self.cancels, self.cancel_all, self.shown]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def row_text(view: RequestView) -> str:
    """One request as its row says it (the prompt's start through ``inert``: the person typed it)."""
    name, prompt = display_name(view.deployment), f"“{inert(view.label)}”" if view.label else ""
    if view.state == "waiting":
        place = "next" if view.position == 1 else f"#{view.position} in line"
        start = (f"starts in about {_duration(view.starts_in_s)}" if view.starts_in_s and view.starts_in_s >= 1
                 else "starting now")
        return f"**{name}** · waiting, {place} · {start} · {prompt}"
    if view.state == "sending":
        return f"**{name}** · being sent · {prompt}"
    return f"**{name}** · sent {_duration(view.age_s)} ago, generating (billed, lands in History) · {prompt}"


def summary_text(views: Sequence[RequestView], others: dict[str, int]) -> str:
    """The line above the rows: how many wait and run, how many are not listed, who else waits where."""
    if not views:
        return "Nothing of yours is waiting for a quota or being generated."
    line = label_text(views).removeprefix("Your requests · ")
    if len(views) > ROWS:
        line += f" (the first {ROWS} are listed; {len(views) - ROWS} more)"
    crowd = [f"{n} other {'person' if n == 1 else 'people'} waiting for {display_name(d)}" for d, n in others.items()]
    tail = f". Slots go round-robin: {'; '.join(crowd)}" if crowd else ""
    return f"{line}{tail}. Cancel a waiting request to drop it: it is not sent, so nothing is billed."


def label_text(views: Sequence[RequestView]) -> str:
    """The accordion's label, which shows while it is closed."""
    waiting = sum(v.cancellable for v in views)
    parts = [f"{waiting} waiting" if waiting else "", f"{len(views) - waiting} sent" if len(views) > waiting else ""]
    return " · ".join(["Your requests", *(p for p in parts if p)])


def _others(runtime: Runtime, user: str) -> dict[str, int]:
    """Per deployment where this person waits, how many other people wait there too."""
    counts = {}
    for queue in runtime.client.board.queues:
        users = queue.users()
        if user in users and len(users) > 1:
            counts[queue.deployment] = len(users) - 1
    return counts


def view_updates(runtime: Runtime, user: str) -> list[Any]:
    """Every output of the panel for ``user`` now (the order of :attr:`_Panel.outputs`)."""
    views = runtime.client.board.of(user)
    listed = list(views[:ROWS])
    rows, texts, buttons = [], [], []
    for i in range(ROWS):
        view = listed[i] if i < len(listed) else None
        rows.append(gr.update(visible=view is not None))
        texts.append(row_text(view) if view is not None else "")
        name = display_name(view.deployment) if view is not None else ""
        what = f"Cancel request {view.position} in line for {name}" if view and view.position else "Cancel"
        buttons.append(gr.update(visible=view is not None and view.cancellable, elem_classes=labelled(what)))
    any_waiting = any(v.cancellable for v in views)
    return [gr.update(label=label_text(views)), summary_text(views, _others(runtime, user)), *rows, *texts,
            *buttons, gr.update(visible=any_waiting), [v.id for v in listed]]


def build(runtime: Runtime) -> None:
    """The panel, its timer, and its Cancel buttons; put it where the page shows it (under the quota)."""
    with gr.Accordion("Your requests", open=False, elem_id="queue") as box:
        summary = gr.Markdown(summary_text([], {}), elem_id="queue-summary")
        rows, texts, cancels = [], [], []
        for i in range(ROWS):
            with gr.Row(visible=False, equal_height=True, elem_id=f"queue-row-{i}") as row:
                texts.append(gr.Markdown("", elem_id=f"queue-text-{i}"))
                cancels.append(gr.Button("Cancel", size="sm", variant="secondary", scale=0, min_width=90,
                                         elem_id=f"queue-cancel-{i}", elem_classes=labelled("Cancel")))
            rows.append(row)
        cancel_all = gr.Button("Cancel all my waiting requests", size="sm", variant="secondary", visible=False,
                               elem_id="queue-cancel-all")
    panel = _Panel(box, summary, rows, texts, cancels, cancel_all, gr.State([]))
    _wire(runtime, panel)


def _wire(runtime: Runtime, panel: _Panel) -> None:
    async def refresh(request: gr.Request) -> list[Any]:  # async: on the event loop, where the board changes
        return view_updates(runtime, caller(runtime, request).id)

    gr.Timer(TICK_S).tick(refresh, None, panel.outputs, **PRIVATE)

    def cancel_row(i: int) -> Any:
        async def cancel(shown: list[str], request: gr.Request) -> list[Any]:
            user = caller(runtime, request).id
            ids = shown[i:i + 1] if isinstance(shown, list) else []
            _said(sum(runtime.client.board.cancel(user, ticket) for ticket in ids), len(ids))
            return view_updates(runtime, user)
        return cancel

    for i, button in enumerate(panel.cancels):
        button.click(cancel_row(i), panel.shown, panel.outputs, **PRIVATE)

    async def cancel_all(request: gr.Request) -> list[Any]:
        user = caller(runtime, request).id
        mine = [v.id for v in runtime.client.board.of(user) if v.cancellable]
        _said(sum(runtime.client.board.cancel(user, ticket) for ticket in mine), len(mine))
        return view_updates(runtime, user)

    panel.cancel_all.click(cancel_all, None, panel.outputs, **PRIVATE)


def _said(cancelled: int, asked: int) -> None:
    """A toast saying what the click did: cancelled (nothing billed), or too late (sent: billed)."""
    if cancelled:
        gr.Info(f"Cancelled {cancelled} request{'s' if cancelled != 1 else ''} before sending: nothing is billed. "
                "Its tab says so.")
    if asked > cancelled:
        gr.Warning("That request had already been sent, so it could not be cancelled: it is billed, and its image "
                   "lands in History.")
