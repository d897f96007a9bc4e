"""Saved styles and recent prompts: checked as given, applied per model, kept beside History, moved as JSON
(the library's own tests on SQLite and on PostgreSQL: ``history_db``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from flux_ui.database import Database
from flux_ui.errors import ValidationError
from flux_ui.history import DB_NAME, History
from flux_ui.runtime import Runtime
from flux_ui.styles import EXPORT_KIND, MAX_NAME_CHARS, RECENT_KEPT, Library, Style, check_style

NOIR = Style("Film noir", "{prompt}, film noir, hard shadows", {"guidance": 6.0, "output_format": "png"})


def test_applying_wraps_the_prompt_and_keeps_what_the_model_takes() -> None:
    prompt, params, notes = NOIR.apply("a detective in the rain", "FLUX.2-flex")
    assert prompt == "a detective in the rain, film noir, hard shadows"
    assert params == {"guidance": 6.0, "output_format": "png"} and notes == []
    _, pro_params, pro_notes = NOIR.apply("x", "FLUX.2-pro")
    assert pro_params == {"output_format": "png"}
    assert pro_notes == ["FLUX.2 [pro] takes no guidance; the style's guidance is left out."]
    assert NOIR.apply("x")[1] == dict(NOIR.params)  # no model chosen yet: every parameter


@pytest.mark.parametrize(("name", "template", "params", "said"), [
    ("", "{prompt}", {}, "needs a name"),
    ("x" * (MAX_NAME_CHARS + 1), "{prompt}", {}, f"keep it to {MAX_NAME_CHARS}"),
    ("Noir", "film noir", {}, "must contain {prompt}"),
    ("Noir", "{prompt}", {"cfg": 7}, "'cfg', which no model takes"),
    ("Noir", "{prompt}", {"seed": 7}, "'seed', which no model takes"),
    ("Noir", "{prompt}", {"guidance": [1, 2]}, "not a number, text or true/false"),
    ("Noir", "{prompt}", ["guidance"], "must be an object"),
])
def test_a_bad_style_is_refused_with_its_fix(name: str, template: str, params: object, said: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_style(name, template, params)
    assert said in str(caught.value)


def test_styles_live_in_the_history_database(tmp_path: Path, history_db: Database | None) -> None:
    History(tmp_path, history_db).close()
    library = Library(tmp_path, history_db)
    library.save(check_style("  Film   noir ", NOIR.template, NOIR.params))
    library.save(Style("Bright", "{prompt}, high key", {}))
    assert [s.name for s in library.styles()] == ["Bright", "Film noir"]
    assert library.get("film NOIR") == Style("Film noir", NOIR.template, dict(NOIR.params))  # any case
    library.save(Style("FILM NOIR", "{prompt}, noir", {}))  # the same name replaces
    assert [s.template for s in library.styles()] == ["{prompt}, high key", "{prompt}, noir"]
    if history_db is None:
        tables = sqlite3.connect(tmp_path / DB_NAME).execute("SELECT name FROM sqlite_master WHERE type='table'")
    else:
        with history_db.connect() as db:
            tables = db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                                "current_schema()").fetchall()
    assert {"images", "styles", "recent_prompts"} <= {row[0] for row in tables}
    assert library.delete("bright") and not library.delete("bright")


def test_export_then_import_round_trips_and_a_bad_file_changes_nothing(tmp_path: Path,
                                                                      history_db: Database | None) -> None:
    source = Library(tmp_path / "a")  # SQLite, exported; imported into either
    source.save(NOIR)
    source.save(Style("Watercolour ✿", "soft watercolour of {prompt}", {"steps": 30}))
    exported = source.export_json()
    assert json.loads(exported)["kind"] == EXPORT_KIND
    target = Library(tmp_path / "b", history_db)
    assert sorted(target.import_json(exported)) == ["Film noir", "Watercolour ✿"]
    assert target.styles() == source.styles()
    broken = json.loads(exported)
    broken["styles"].append({"name": "Bad", "template": "no placeholder"})
    with pytest.raises(ValidationError, match=r"Style 3 in the file: .*must contain \{prompt\}"):
        Library(tmp_path / "c").import_json(json.dumps(broken))
    assert Library(tmp_path / "c").styles() == []  # all or nothing
    with pytest.raises(ValidationError, match="not JSON"):
        target.import_json("{nope")
    with pytest.raises(ValidationError, match="not a flux-ui styles export"):
        target.import_json(json.dumps({"styles": []}))


def test_recent_prompts_are_per_tab_newest_first_and_bounded(tmp_path: Path, history_db: Database | None) -> None:
    library = Library(tmp_path, history_db)
    for i in range(RECENT_KEPT + 5):
        library.remember("text-to-image", f"prompt {i}")
    library.remember("edit", "only in edit")
    library.remember("text-to-image", "prompt 3")  # used again: first once more
    library.remember("text-to-image", "   ")  # blank: not remembered
    recent = library.recent("text-to-image")
    assert len(recent) == RECENT_KEPT and recent[0] == "prompt 3" and recent[1] == f"prompt {RECENT_KEPT + 4}"
    assert "prompt 0" not in recent and library.recent("edit") == ["only in edit"]


def test_the_panel_keeps_what_is_typed_and_says_what_is_wrong(tmp_path: Path) -> None:
    from flux_ui.ui import styles_panel
    from flux_ui.ui.edge.files import written_files

    library = Library(tmp_path)
    picker, said = styles_panel.save_style(library, "Noir", "{prompt}, noir", "{guidance: 6}")
    assert "not JSON" in said and library.styles() == []
    picker, said = styles_panel.save_style(library, "Noir", "noir", "{}")
    assert "must contain {prompt}" in said.replace("\\", "") and library.styles() == []
    picker, said = styles_panel.save_style(library, "Noir", "{prompt}, noir", '{"guidance": 6}')
    assert picker["choices"] == [styles_panel.NEW, "Noir"] and picker["value"] == "Noir" and "Saved" in said
    assert styles_panel.show_style(library, "Noir") == ("Noir", "{prompt}, noir", '{"guidance": 6}')
    exported, said = styles_panel.export_styles(library, tmp_path)
    path = Path(exported["value"])
    assert "1 style(s)" in said and written_files(tmp_path).knows(path)  # the page may serve it
    assert styles_panel.delete_style(library, "Noir")[0]["choices"] == [styles_panel.NEW]
    picker, said = styles_panel.import_styles(library, str(path))
    assert "Imported 1 style(s): Noir" in said and [s.name for s in library.styles()] == ["Noir"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "flux-ui styles", "styles": [{"name": "X", "template": "no slot"}]}')
    assert "Nothing was imported" in styles_panel.import_styles(library, str(bad))[1]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_picked_style_wraps_the_prompt_and_sets_the_models_controls(module_runtime: Runtime) -> None:
    from flux_ui.ui import prompt_tools

    module_runtime.styles.save(NOIR)
    controls = {"guidance": object(), "output_format": object(), "seed": object()}
    prompt, said, picker, *updates = prompt_tools.applied(module_runtime, "Film noir", "a cat", "FLUX.2-flex",
                                                          controls)
    assert prompt == "a cat, film noir, hard shadows" and "Applied the style" in said and picker["value"] is None
    assert [u.get("value") for u in updates] == [6.0, "png", None]
    _, said, _, *updates = prompt_tools.applied(module_runtime, "Film noir", "a cat", "FLUX.2-pro", controls)
    assert "takes no guidance" in said and [u.get("value") for u in updates] == [None, "png", None]
    untouched = prompt_tools.applied(module_runtime, "no such style", "a cat", "FLUX.2-pro", controls)
    assert untouched[1] == "" and "value" not in untouched[0]  # the prompt is left as it is


@pytest.mark.asyncio(loop_scope="module")
async def test_a_prompt_that_made_an_image_is_recalled_in_its_tab(module_runtime: Runtime) -> None:
    from flux_ui.ui import handlers, prompt_tools

    await handlers.generate(module_runtime, "FLUX.2-pro", "a lighthouse in a storm", {"seed": 3}, tab="edit")
    choices = prompt_tools.recent_choices(module_runtime, "edit")["choices"]
    assert choices[0] == ("a lighthouse in a storm", "a lighthouse in a storm")
    assert ("a lighthouse in a storm", "a lighthouse in a storm") not in prompt_tools.recent_choices(
        module_runtime, "kontext")["choices"]
