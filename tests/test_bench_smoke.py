"""The benchmarks in quick mode, so they keep running as the code under them changes.

Benchmarks are not timed tests: these assert that each scenario produces sane numbers
(counts add up, ratios are positive and finite, nothing failed), never that a size-dependent
target is met; in quick mode those rows carry no verdict, while correctness checks still do.
"""

from __future__ import annotations

import math

import pytest

from bench import run as bench_run
from bench.common import Row, ratio_row, table


def _by_measure(rows: list[Row], fragment: str) -> Row:
    [row] = [r for r in rows if fragment in r.measure]
    return row


def _sane_ratio(row: Row) -> None:
    assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0, row


def test_client_overhead_quick() -> None:
    rows = bench_run.run(["overhead"], quick=True)
    assert len(rows) == 2
    for row in rows:
        _sane_ratio(row)
        # A ratio target only means something at full size: quick mode reports it unjudged.
        assert row.target and row.size_dependent and row.quick
        assert row.met is None and row.verdict == "not judged (quick)"


def test_compare_fanout_quick() -> None:
    [row] = bench_run.SCENARIOS["fanout"](True)
    _sane_ratio(row)
    # Four requests at once cannot finish before the slowest would alone, less scheduling noise.
    assert row.value > 0.5 * row.baseline  # type: ignore[operator]


def test_quota_pacing_quick() -> None:
    rows = bench_run.run(["pacing"], quick=True)
    _sane_ratio(_by_measure(rows, "total vs floor"))
    assert _by_measure(rows, "total vs floor").met is None
    for fragment, expected in (("failed requests", 0), ("429 responses", 0), ("images received", 8)):
        row = _by_measure(rows, fragment)
        assert row.value == expected
        assert not row.size_dependent and row.met is True  # correctness checks are judged in quick mode


def test_references_quick() -> None:
    rows = bench_run.run(["references"], quick=True)
    _sane_ratio(_by_measure(rows, "preparation per image"))
    assert _by_measure(rows, "within").met is True
    share = _by_measure(rows, "request bytes sent").value
    assert 0 < share < 200
    assert 0 <= _by_measure(rows, "stall, preparing").value < 10


def test_table_has_one_line_per_row() -> None:
    quick = ratio_row("s", "q", 1.0, 2.0, 0.1).in_quick_mode()
    rows = [Row("s", "m", 1.0, "s", 2.0, "≤ 1.10×", True), Row("s", "n", 0, "count"), quick]
    lines = table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert "0.500×" in lines[2] and "met" in lines[2]
    assert lines[3].endswith("| – |")
    assert "not judged (quick)" in lines[4] and "missed" not in lines[4]


def test_quick_main_exits_0_when_the_code_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_run.main(["--quick", "--only", "fanout"]) == 0
    assert "not judged (quick)" in capsys.readouterr().out


SIZE_MISS = ratio_row("fake", "ratio", 2.0, 1.0, 1.10)  # a size-dependent target, missed
CHECK_MET = Row("fake", "failed requests", 0, "count", None, "0", True)
CHECK_MISSED = Row("fake", "failed requests", 1, "count", None, "0", False)


@pytest.mark.parametrize(("argv", "rows", "status"), [
    (["--quick"], [SIZE_MISS, CHECK_MET], 0),  # quick: only the correctness check is judged
    (["--quick"], [SIZE_MISS, CHECK_MISSED], 1),  # a failed correctness check fails a quick run too
    ([], [SIZE_MISS, CHECK_MET], 1),  # a full run judges every target
    ([], [CHECK_MISSED], 1),
    ([], [ratio_row("fake", "ratio", 1.0, 1.0, 1.10), CHECK_MET], 0),
])
def test_exit_status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
                     rows: list[Row], status: int) -> None:
    monkeypatch.setitem(bench_run.SCENARIOS, "fake", lambda quick: list(rows))
    assert bench_run.main([*argv, "--only", "fake"]) == status
    out = capsys.readouterr().out
    assert ("not judged (quick)" in out) == (SIZE_MISS in rows and bool(argv))
    assert ("**missed**" in out) == (status == 1)


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


def test_big_references_quick() -> None:
    rows = bench_run.run(["big_references"], quick=True)
    assert _by_measure(rows, "downscaled to the 4 MP input").met is True
    assert _by_measure(rows, "memory above idle after").met is True
    assert _by_measure(rows, "metadata bomb").met is True
    assert 0 < _by_measure(rows, "one edit: peak memory above idle").value < 2000


def test_burst_under_load_quick() -> None:
    rows = bench_run.run(["burst_load"], quick=True)
    assert _by_measure(rows, "429 responses").met is True and _by_measure(rows, "429 responses").value == 0
    assert _by_measure(rows, "failed requests").value == 0
    _sane_ratio(_by_measure(rows, "total vs quota floor"))


def test_the_emulator_process_takes_a_key_that_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # token_urlsafe draws "-" first one time in 64: argparse must not read the key as an option.
    from bench import common

    monkeypatch.setattr(common.secrets, "token_urlsafe", lambda n: "-dash-first-key-0123456789")
    with common.emulator_process() as service:
        assert service.api_key == "-dash-first-key-0123456789"
        assert service.base_url.startswith("http://127.0.0.1:")


def test_shared_backends_quick() -> None:
    # Real redis-server, PostgreSQL and Azurite (tests/servers.py), started and stopped by the scenario.
    rows = bench_run.run(["shared_backends"], quick=True)
    added = _by_measure(rows, "Redis pacing: added per slot")
    assert added.unit == "ms" and math.isfinite(added.value) and added.met is None  # size-dependent: unjudged
    save = _by_measure(rows, "History save")
    _sane_ratio(save)
    assert save.ratio is not None and save.ratio > 1  # uploading and a network round trip cost something
