"""The Usage tab: today and the last 30 days of spend per user and per model, as tables and charts, and
what is left of each daily cap; an owner sees every user and the audit trail (with its CSV), anyone
else only their own use.

Who is asking is decided on every refresh from the event's request (``common.caller``), never from what
the page shows, and the view is built for that person alone (:func:`view`): nothing of another user's
reaches a page that may not see it, hidden or not.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import gradio as gr
import pandas as pd

from flux_ui.audit import AuditRow, UsageRow, day_of
from flux_ui.identity import User
from flux_ui.registry import MODELS
from flux_ui.runtime import Runtime
from flux_ui.spend import money
from flux_ui.ui.common import TabContext, TabHandle, caller
from flux_ui.ui.downloads import export_folder, offer
from flux_ui.ui.text import inert
from flux_ui.ui.workarounds import plot_redraw, plot_series

DAYS = 30
#: The audit rows the page lists (newest first); the CSV holds them all.
AUDIT_SHOWN = 200
PROMPT_SHOWN = 160
TOTALS = ["User", "Model", "Requests", "Images", "Refused", "Spent (USD)"]
TRAIL = ["Time (UTC)", "User", "Model", "Deployment", "Route", "Outcome", "Estimate $", "Service cost",
         "Counted $", "Prompt", "Detail"]
TRAIL_WIDTHS = ["145px", "90px", "110px", "110px", "60px", "80px", "80px", "80px", "80px", "250px", "260px"]
CHART = ["day", "usd", "model", "user"]
#: What both charts share: days along, dollars up (as "$0.005", not "0.005000"), stacked by series.
PLOT: dict[str, Any] = {"x": "day", "y": "usd", "x_title": "UTC day", "y_title": "US dollars", "y_aggregate": "sum",
                        "x_label_angle": -45, "y_axis_format": "$.3~f", "min_width": 320}


@dataclass(frozen=True)
class UsageView:
    """What the tab shows one person: the summary, the two tables, the chart data, and (owners) the trail."""

    summary: str
    today: pd.DataFrame
    month: pd.DataFrame
    chart: pd.DataFrame  # day, usd, model, user: one row per (day, user, model)
    owner: bool
    trail: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TRAIL))


def _name(model: str) -> str:
    return MODELS[model].display_name if model in MODELS else model


def totals(rows: list[UsageRow]) -> pd.DataFrame:
    """One line per (user, model), summed over ``rows``' days, the biggest spend first."""
    summed: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        line = summed.setdefault((r.user, r.model), [0, 0, 0, 0.0])
        for i, value in enumerate((r.requests, r.images, r.refused, r.usd)):
            line[i] += value
    lines = [[user, _name(model), int(n), int(images), int(refused), round(usd, 4)]
             for (user, model), (n, images, refused, usd) in summed.items()]
    lines.sort(key=lambda line: (-line[5], line[0], line[1]))
    return pd.DataFrame(lines, columns=TOTALS)


def chart(rows: list[UsageRow], today: str) -> pd.DataFrame:
    """The chart's data: dollars per day (each of the last :data:`DAYS`, oldest first) per user and model."""
    first = datetime.strptime(today, "%Y-%m-%d").replace(tzinfo=UTC) - timedelta(days=DAYS - 1)
    days = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(DAYS)]
    lines = [[r.day, round(r.usd, 4), _name(r.model), r.user] for r in rows if r.day >= days[0]]
    seen = {line[0] for line in lines}
    model, user = (lines[0][2], lines[0][3]) if lines else ("no requests", "no requests")
    lines += [[day, 0.0, model, user] for day in days if day not in seen]  # every day on the axis, spend or not
    return pd.DataFrame(sorted(lines), columns=CHART)


def trail(rows: list[AuditRow]) -> pd.DataFrame:
    """The audit rows as the page lists them (plain text cells: Gradio shows "str" cells as typed)."""
    def clip(text: str) -> str:
        return text if len(text) <= PROMPT_SHOWN else text[:PROMPT_SHOWN] + "…"

    return pd.DataFrame([[r.time_utc, r.user, _name(r.model), r.deployment, r.route, r.outcome,
                          None if r.estimate_usd is None else round(r.estimate_usd, 4), r.reported,
                          round(r.charged_usd, 4), clip(r.prompt), clip(r.detail)] for r in rows], columns=TRAIL)


def summary(runtime: Runtime, user: User) -> str:
    """Today's spend and what is left of each cap, for ``user``, in words (Markdown; names made inert)."""
    ledger, caps = runtime.ledger, runtime.settings.spend
    left = ledger.left(user.id)
    now = datetime.fromtimestamp(ledger.clock(), UTC)
    today = f"{now.day} {now:%B %Y}"
    mine = ledger.spent(user.id)
    lines = [f"**Today, {today} (UTC)**: {inert(user.name)} spent {money(mine)}"
             + (f", {money(left.user)} left of the {money(caps.user_daily_usd)} each user may spend a day."
                if left.user is not None and caps.user_daily_usd is not None else " (no daily cap for each user).")]
    if caps.daily_usd is not None and left.instance is not None:
        lines.append(f"Everyone together: {money(ledger.spent())}, {money(left.instance)} left of this flux-ui's "
                     f"{money(caps.daily_usd)} a day.")
    elif user.owner:
        lines.append(f"Everyone together: {money(ledger.spent())} (no daily cap for the whole flux-ui).")
    if caps.capped:
        lines.append(left.resets)
    unit = (f"read as {money(caps.service_cost_usd)} a unit" if caps.service_cost_usd is not None
            else "not used (FLUX_UI_SERVICE_COST_USD=off)")
    lines.append(f"Costs are list-price estimates, replaced by the cost the service reports ({unit}) once an "
                 "image arrives; a request still on its way counts at its estimate.")
    lines.append("You are an owner: you see every user's use and the audit trail." if user.owner else
                 "You see your own use; the owner sees everyone's.")
    return "\n\n".join(lines)


def view(runtime: Runtime, user: User) -> UsageView:
    """Everything the tab shows ``user``: every user's use for an owner, only their own for anyone else."""
    now = runtime.ledger.clock()
    today = day_of(now)
    first = day_of(now - (DAYS - 1) * 86400)
    whose = None if user.owner else user.id
    rows = runtime.audit.usage(first, whose)
    shown = UsageView(summary(runtime, user), totals([r for r in rows if r.day == today]), totals(rows),
                      chart(rows, today), user.owner)
    if user.owner:
        return replace(shown, trail=trail(runtime.audit.rows(limit=AUDIT_SHOWN)))
    return shown


# --- the tab --------------------------------------------------------------------------------------------------

def _outputs(shown: UsageView) -> list[Any]:
    series = {"model": plot_series(shown.chart, "model"), "user": plot_series(shown.chart, "user")}
    return [shown.summary, shown.today, shown.month, shown.chart,
            gr.update(value=shown.chart if shown.owner else None, visible=shown.owner),
            gr.update(visible=shown.owner), shown.trail, gr.update(value=None, visible=False), series]


def _redrawn(series: dict[str, list[str]] | None) -> list[Any]:
    """The charts redrawn for series new since they were drawn (``workarounds.plot_redraw``)."""
    series = series or {}
    return [plot_redraw(series.get("model", [])), plot_redraw(series.get("user", []))]


def build(ctx: TabContext) -> TabHandle:
    runtime = ctx.runtime
    with gr.Column(elem_id="usage"):
        with gr.Row():
            gr.Markdown("### Spend against the daily budgets")
            refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="usage-refresh")
        summary_md = gr.Markdown(elem_id="usage-summary")
        gr.Markdown("### Today (UTC)")
        today = gr.Dataframe(headers=TOTALS, interactive=False, elem_id="usage-today", max_height=320)
        gr.Markdown(f"### The last {DAYS} days")
        month = gr.Dataframe(headers=TOTALS, interactive=False, elem_id="usage-month", max_height=320)
        with gr.Row():  # side by side on a desktop, one above the other on a phone (min_width)
            by_model = gr.BarPlot(color="model", title="Spent per day, by model", elem_id="usage-by-model", **PLOT)
            by_user = gr.BarPlot(color="user", title="Spent per day, by user", visible=False, elem_id="usage-by-user",
                                 **PLOT)
        with gr.Column(visible=False, elem_id="usage-owner") as owner_box:
            gr.Markdown(f"### Audit trail\n\nEvery request, newest first (the last {AUDIT_SHOWN} here; the CSV "
                        "holds them all, with the tab each came from). *Service cost* is the figure the service "
                        "reported, in its own unit, which is not documented; *Counted* is what the budgets count. "
                        "Keys never reach the trail.")
            trail_df = gr.Dataframe(headers=TRAIL, interactive=False, wrap=True, elem_id="usage-audit",
                                    max_height=480, column_widths=TRAIL_WIDTHS)
            export = gr.Button("Download the audit trail (CSV)", size="sm", elem_id="usage-export")
        exported = gr.File(label="Audit trail", visible=False, interactive=False, elem_id="usage-csv")

    series = gr.State()
    outputs = [summary_md, today, month, by_model, by_user, owner_box, trail_df, exported, series]

    def show(request: gr.Request) -> list[Any]:
        return _outputs(view(runtime, caller(runtime, request)))

    async def download(request: gr.Request) -> Any:
        return await asyncio.to_thread(export_csv, runtime, caller(runtime, request))

    private: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
    listeners = [refresh.click, ctx.demo.load, *([ctx.tabs.select] if ctx.tabs is not None else [])]
    for listener in listeners:
        listener(show, None, outputs, **private).then(_redrawn, series, [by_model, by_user], **private)
    export.click(download, None, exported, **private)
    return TabHandle(tab_id="usage", name="usage", models=())


def export_csv(runtime: Runtime, user: User) -> Any:
    """The audit trail as a CSV file the page may serve, for an owner only (asked again here, not trusted
    from the page); blocking."""
    if not user.owner:
        return gr.update(value=None, visible=False)
    folder = export_folder(runtime.history.folder, uuid.uuid4().hex)
    path = runtime.audit.export_csv(folder)
    offer(runtime.history.folder, path)
    return gr.update(value=str(path), visible=True)
