"""The README tells the truth: its generated tables match the code, its quick start is
the test command CI runs, and every configuration variable is documented."""

from __future__ import annotations

import re
from pathlib import Path

from flux_ui.docs import refresh
from flux_ui.settings import VARIABLES

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_generated_tables_are_current() -> None:
    assert refresh(README) == README, "run `python -m flux_ui.docs --write` and commit README.md"


def test_every_model_and_variable_is_in_the_readme() -> None:
    from flux_ui.registry import MODELS

    for model_id in MODELS:
        assert f"`{model_id}`" in README
    for name, *_ in VARIABLES:
        assert f"`{name}`" in README


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)
    assert len(blocks) == 2, blocks
    run, test = blocks
    assert run.startswith("pip install -r requirements.txt") and "python app.py" in run
    assert "pytest" in test
    assert test in (REPO / ".ci" / "run").read_text()


def test_env_example_names_only_real_variables() -> None:
    example = (REPO / ".env.example").read_text()
    names = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.MULTILINE))
    assert names and names <= {v[0] for v in VARIABLES}
    assert {"AZURE_ENDPOINT", "AZURE_API_KEY"} <= names
