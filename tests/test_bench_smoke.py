"""The benchmarks in quick mode, so they keep running as the code under them changes.

Benchmarks are not timed tests: these assert that each scenario produces sane numbers
(counts add up, ratios are positive and finite, nothing failed), never that a target is met.
"""

from __future__ import annotations

import math

import pytest

from bench import run as bench_run
from bench.common import Row, table


def _by_measure(rows: list[Row], fragment: str) -> Row:
    [row] = [r for r in rows if fragment in r.measure]
    return row


def _sane_ratio(row: Row) -> None:
    assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0, row


def test_client_overhead_quick() -> None:
    rows = bench_run.SCENARIOS["overhead"](True)
    assert len(rows) == 2
    for row in rows:
        _sane_ratio(row)
        assert row.met is not None


def test_compare_fanout_quick() -> None:
    [row] = bench_run.SCENARIOS["fanout"](True)
    _sane_ratio(row)
    # Four requests at once cannot finish before the slowest would alone, less scheduling noise.
    assert row.value > 0.5 * row.baseline  # type: ignore[operator]


def test_quota_pacing_quick() -> None:
    rows = bench_run.SCENARIOS["pacing"](True)
    _sane_ratio(_by_measure(rows, "total vs floor"))
    assert _by_measure(rows, "failed requests").value == 0
    assert _by_measure(rows, "429 responses").value == 0
    assert _by_measure(rows, "images received").value == 8


def test_references_quick() -> None:
    rows = bench_run.SCENARIOS["references"](True)
    _sane_ratio(_by_measure(rows, "preparation per image"))
    assert _by_measure(rows, "within").met
    share = _by_measure(rows, "request bytes sent").value
    assert 0 < share < 200
    assert 0 <= _by_measure(rows, "stall, preparing").value < 10


def test_table_has_one_line_per_row() -> None:
    rows = [Row("s", "m", 1.0, "s", 2.0, "≤ 1.10×", True), Row("s", "n", 0, "count")]
    lines = table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert "0.500×" in lines[2] and "met" in lines[2]


@pytest.mark.parametrize("argv", [["--only", "nope"]])
def test_cli_refuses_unknown_scenarios(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        bench_run.main(argv)


def test_app_under_load_quick() -> None:
    rows = bench_run.SCENARIOS["load"](True)
    _sane_ratio(rows[0])
    _sane_ratio(_by_measure(rows, "after each user's first request"))
    succeeded = _by_measure(rows, "succeeded")
    assert succeeded.value == 6 and succeeded.met


def test_startup_and_memory_quick() -> None:
    # The slowest smoke test (three app processes, each importing Gradio): start-up cannot be shrunk.
    rows = bench_run.SCENARIOS["startup"](True)
    _sane_ratio(rows[0])
    assert math.isfinite(rows[1].value) and rows[1].value > -200
    assert rows[2].value == 0
