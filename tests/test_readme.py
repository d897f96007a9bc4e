"""The README tells the truth: its generated tables match the code, its quick start is
the test command CI runs, and every configuration variable is documented."""

from __future__ import annotations

import re
from pathlib import Path

from flux_ui.docs import refresh
from flux_ui.settings import variables

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_generated_tables_are_current() -> None:
    assert refresh(README) == README, "run `python -m flux_ui.docs --write` and commit README.md"


def test_every_model_and_variable_is_in_the_readme() -> None:
    from flux_ui.registry import MODELS

    for model_id in MODELS:
        assert f"`{model_id}`" in README
    for name, *_ in variables():
        assert f"`{name}`" in README


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)\n```", section, re.DOTALL)
    assert len(blocks) == 2, blocks
    run, test = blocks
    assert run.startswith("pip install -r requirements.txt") and "python app.py" in run
    assert "pytest" in test
    ci = (REPO / ".ci" / "run").read_text()
    assert test in ci and run in ci, "CI runs both quick-start commands exactly as the README writes them"
    assert "git clone" in ci and "venv" in ci


def test_env_example_names_only_real_variables() -> None:
    example = (REPO / ".env.example").read_text()
    names = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.MULTILINE))
    assert names and names <= {v[0] for v in variables()}
    assert {"AZURE_ENDPOINT", "AZURE_API_KEY"} <= names


# --- Hugging Face Spaces ---------------------------------------------------------------------

SPACE_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}


def _front_matter() -> dict[str, object]:
    import yaml

    assert README.startswith("---\n"), "the README must open with the Space's YAML front matter"
    block = README.split("---\n", 2)[1]
    data = yaml.safe_load(block)
    assert isinstance(data, dict)
    return data


def test_front_matter_is_a_valid_gradio_space_config() -> None:
    data = _front_matter()
    assert {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "app_file", "license",
            "short_description"} <= set(data)
    assert data["sdk"] == "gradio"
    assert data["colorFrom"] in SPACE_COLOURS and data["colorTo"] in SPACE_COLOURS
    assert (REPO / str(data["app_file"])).is_file()
    assert 0 < len(str(data["short_description"])) <= 60  # the Hub's limit for the card
    assert data["license"] == "mit" and "MIT" in README.rsplit("## Licence", 1)[1]
    assert len(str(data["emoji"])) <= 2 and not str(data["emoji"]).isascii()


def test_sdk_version_is_the_pinned_gradio() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", (REPO / "requirements.txt").read_text(),
                           re.MULTILINE))
    assert str(_front_matter()["sdk_version"]) == pins["gradio"]
    import gradio

    assert gradio.__version__ == pins["gradio"], "the installed Gradio is not the pinned one"


def test_space_section_names_the_secrets_and_persistent_storage() -> None:
    section = README.split("## Share it as a Space", 1)[1].split("\n## ", 1)[0]
    for name in ("AZURE_ENDPOINT", "AZURE_API_KEY", "FLUX_UI_USERS", "FLUX_OUTPUT_DIR", "SPACE_ID",
                 "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT"):
        assert f"`{name}" in section, name
    assert "persistent storage" in section and "restart" in section


# --- the repository stands alone -------------------------------------------------------------

def _tracked_files() -> list[Path]:
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name]


def test_no_tracked_file_refers_to_a_folder_beside_the_checkout() -> None:
    needle = ".." + "/shared"  # spelt in two parts so this file does not match itself
    offenders = []
    for path in _tracked_files():
        if path.is_file() and path.suffix not in {".png", ".jpg", ".jpeg", ".webp"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{path.relative_to(REPO)}:{n}" for n, line in enumerate(text.splitlines(), 1)
                          if needle in line]
    assert not offenders, f"these read outside the repository: {offenders}"


def test_layout_block_names_only_what_exists() -> None:
    block = README.split("Layout:\n\n```\n", 1)[1].split("```", 1)[0]
    names = [line.split()[0] for line in block.splitlines() if line and not line.startswith(" ")]
    assert names and all((REPO / name.rstrip("/")).exists() for name in names), names
    documented = set(re.findall(r"^\| `(flux_ui/[^`]+\.py)` \|", README, re.MULTILINE))
    assert documented == {p.relative_to(REPO).as_posix() for p in (REPO / "flux_ui").rglob("*.py")}


def test_assets_are_the_ones_the_readme_lists() -> None:
    from flux_ui.assets import EXAMPLES, LOGO, SCRIPTS, SHORTCUTS, STYLE, STYLESHEETS

    assets_readme = (REPO / "assets" / "README.md").read_text()
    assert SHORTCUTS in SCRIPTS and STYLE in STYLESHEETS
    for path in (LOGO, *SCRIPTS, *STYLESHEETS, *sorted(EXAMPLES.iterdir())):
        assert path.is_file() and f"`{path.relative_to(REPO / 'assets').as_posix()}`" in assets_readme, path
    photos = [p for p in EXAMPLES.iterdir() if p.suffix in {".png", ".jpg"}]
    assert len(photos) >= 3
    for photo in photos:  # every photo has a licence on its line
        line = next(ln for ln in assets_readme.splitlines() if f"`examples/{photo.name}`" in ln)
        assert re.search(r"public domain|CC0|CC BY", line), line


def test_architecture_page_names_only_modules_that_exist() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    paths = set(re.findall(r"`(flux_ui/[\w/]+(?:\.py)?/?)", page))
    assert len(paths) > 15, paths
    missing = sorted(p for p in paths if not (REPO / p.rstrip("/")).exists())
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"
    # Short names in the page ("`client/retry.py`", "`ui/text.py`") resolve under flux_ui/ too.
    short = set(re.findall(r"`((?:client|ui|images|emulator)/[\w/]+\.py)`", page))
    assert not sorted(s for s in short if not (REPO / "flux_ui" / s).exists())


def test_the_deployment_guide_names_files_and_variables_that_exist() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text()
    paths = set(re.findall(r"`((?:deploy|tests|flux_ui|docs|bench)/[\w./-]+)`", guide))
    assert "deploy/nginx.conf" in paths and "tests/test_replica_drill.py" in paths
    assert [p for p in paths if not (REPO / p).exists()] == []
    known = {row[0] for row in variables()}
    named = set(re.findall(r"\b((?:FLUX_UI|FLUX|AZURE)_[A-Z_]+)\b", guide))
    assert named and named <= known, named - known
    assert "docs/deploy.md" in README
