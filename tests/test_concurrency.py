"""Concurrency: many users at once with faults at random: nothing unhandled, nothing lost, memory level.

The load and its accounting live in tests/soak.py. CI runs it shortened (10 users for 12 s); the
full form (50 users for 120 s) is ``FLUX_UI_SOAK=full python -m pytest tests/test_concurrency.py -s``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gradio_client import Client

from app_fixtures import running_app
from flux_ui.emulator import EmulatorConfig
from soak import CI_PLAN, FULL_PLAN, RSS_GROWTH_LIMIT_MB, run_soak

PLAN = FULL_PLAN if os.environ.get("FLUX_UI_SOAK") == "full" else CI_PLAN


@pytest.mark.timeout(PLAN.seconds + 180)
def test_many_users_with_faults_at_random(tmp_path: Path) -> None:
    emulator = EmulatorConfig(rng_seed=6, log_limit=1_000_000)  # the whole run's log, for the reconciliation
    with running_app(tmp_path / "outputs", emulator=emulator) as app:
        report = run_soak(app.url, app.emulator, app.runtime.history, PLAN, tmp_path)
        print(report.summary())
        assert report.unhandled == []
        assert report.problems == []  # every request got its image or a clear error
        assert report.lost == []  # every image the service delivered is in History, whole
        assert report.images > 0 and report.errors_shown >= PLAN.users  # each user's first prompt is refused
        assert len(set(report.faults) - {"latency"}) >= 3, report.faults  # the faults did fire
        assert report.rss_end_mb - report.rss_warm_mb < RSS_GROWTH_LIMIT_MB, report.summary()
        path, _, message, _ = Client(app.url, verbose=False).predict(model="FLUX.2-pro", prompt="after the soak",
                                                                     api_name="/generate")
        assert message == "" and Path(path).is_file()  # and it still serves
