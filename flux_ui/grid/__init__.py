"""The Grid tab's planning core: A1111-style X/Y/Z plots and variations, as cells the client can send.

Pure arithmetic on the registry and the client's checks: no I/O, no Gradio, no network. Typed axis
values (:mod:`~flux_ui.grid.axes`), planned cells (:mod:`~flux_ui.grid.plan`), and what a plan will
cost and take (:mod:`~flux_ui.grid.estimate`).
"""

from __future__ import annotations

from flux_ui.grid.axes import (
    MAX_VALUES,
    PSEUDO_AXES,
    AxisValue,
    axis_kinds,
    axis_label,
    check_search_replace,
    check_values,
    format_value,
    parse_values,
    split_values,
)
from flux_ui.grid.estimate import DEFAULT_REQUEST_S, DeploymentLoad, Estimate, estimate, format_duration
from flux_ui.grid.plan import (
    MAX_AXES,
    MAX_CELLS,
    MAX_VARIATIONS,
    RANDOM_SEED_MAX,
    Cell,
    GridAxis,
    GridBase,
    GridPlan,
    plan_grid,
    plan_variations,
)

__all__ = [
    "DEFAULT_REQUEST_S",
    "MAX_AXES",
    "MAX_CELLS",
    "MAX_VALUES",
    "MAX_VARIATIONS",
    "PSEUDO_AXES",
    "RANDOM_SEED_MAX",
    "AxisValue",
    "Cell",
    "DeploymentLoad",
    "Estimate",
    "GridAxis",
    "GridBase",
    "GridPlan",
    "axis_kinds",
    "axis_label",
    "check_search_replace",
    "check_values",
    "estimate",
    "format_duration",
    "format_value",
    "parse_values",
    "plan_grid",
    "plan_variations",
    "split_values",
]
