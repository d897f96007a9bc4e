"""Errors say what is wrong and what to do: a dropped image's settings of the wrong type or size, a model
the tab cannot take or that is not deployed, numbers too large for a float, invisible characters, and an
outputs folder flux-ui cannot write (a path payload outside the uploads: tests/test_bad_input.py)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from conftest import solid_image
from flux_ui.client import validation
from flux_ui.client.validation import GenerationRequest, validate
from flux_ui.errors import ValidationError
from flux_ui.history import History, OutputsFolderError
from flux_ui.images import embed_metadata
from flux_ui.ui import compare_run, history_listing, history_reuse
from flux_ui.ui.common import TabHandle

REPO = Path(__file__).resolve().parents[1]
SAVED = {"generator": "flux-ui", "tab": "text-to-image", "model": "FLUX.2-pro", "prompt": "a fox in snow",
         "seed": 5, "params": {"guidance": 4.0}}
PICK_AGAIN = "pick the image in History instead, or set that value by hand"


def dropped(demo: gr.Blocks, settings: dict[str, Any], folder: Path) -> tuple[list[Any], str]:
    """What History's drop box answers for a PNG carrying these settings: (updates, message)."""
    path = folder / "dropped.png"
    path.write_bytes(embed_metadata(solid_image((30, 60, 90), (32, 32)), settings))
    drop = next(f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_drop")
    *updates, message = drop.fn(str(path))
    return updates, message


# --- a dropped image's settings ------------------------------------------------------------------

WRONG = [
    ({"params": [4.0, 50]}, ["params must be a set of parameter names and values", "it is a list"]),
    ({"seed": 10**40}, ["seed cannot be loaded", "Seed must be a whole number from 0 to 4294967295",
                        "got 10000000000000000000000000000000000000000"]),
    ({"seed": "abc"}, ["seed cannot be loaded", "Seed must be a whole number", "got 'abc'"]),
    ({"model": "FLUX.2-flex", "params": {"guidance": "lots"}},
     ["guidance cannot be loaded", "Guidance must be a number from"]),
    ({"params": {"width": 10**30}}, ["width cannot be loaded", "Width must be a whole number"]),
    ({"params": {"output_format": 7}}, ["output", "Output format must be one of"]),
    ({"model": ["FLUX.2-pro"]}, ["model must be a model ID written as text", "it is a list"]),
    ({"prompt": {"text": "a fox"}}, ["prompt must be text", "it is an object"]),
]


@pytest.mark.parametrize(("change", "says"), WRONG, ids=lambda v: str(v)[:40])
def test_settings_of_the_wrong_type_or_size_name_the_field(demo: gr.Blocks, tmp_path: Path,
                                                            change: dict[str, Any], says: list[str]) -> None:
    updates, message = dropped(demo, {**SAVED, **change}, tmp_path)
    plain = html.unescape(re.sub(r"\\(.)", r"\1", message))  # the text the page shows
    assert message.startswith("⚠️") and all(s in plain for s in says), message
    assert PICK_AGAIN in plain and "Nothing was loaded" in plain
    assert all(u == gr.update() for u in updates)  # nothing changed, nothing half loaded


def test_an_unknown_model_is_named_with_those_flux_ui_knows(demo: gr.Blocks, tmp_path: Path) -> None:
    updates, message = dropped(demo, {**SAVED, "model": "FLUX.3-ultra"}, tmp_path)
    assert all(u == gr.update() for u in updates)
    assert "a model flux-ui does not know (text (" in message and "nothing was loaded: it knows FLUX.2-pro" in message


def test_good_settings_still_load(demo: gr.Blocks, tmp_path: Path) -> None:
    updates, message = dropped(demo, SAVED, tmp_path)
    assert message == "Loaded FLUX.2 [pro], the prompt and seed 5 into **Text to image**."
    assert isinstance(updates[0], gr.Tabs) and updates[0].selected == "t2i"


def test_a_model_the_tab_cannot_take_goes_to_a_tab_that_can(demo: gr.Blocks, tmp_path: Path) -> None:
    updates, message = dropped(demo, {**SAVED, "tab": "edit", "model": "FLUX-1.1-pro"}, tmp_path)
    assert updates[0].selected == "t2i", message
    assert message.startswith("Loaded FLUX1.1 [pro], the prompt and seed 5 into **Text to image**.")
    assert ("Edit with references, where it was made, cannot take FLUX1.1 [pro] (it takes FLUX.2 [pro] or "
            "FLUX.2 [flex]), so they went into Text to image.") in message


def test_a_model_no_tab_takes_says_which_the_tab_takes() -> None:
    edit = TabHandle("edit", "edit", outputs=[gr.Textbox(render=False)], apply=lambda s: [gr.update()],
                     models=("FLUX.2-pro",))
    updates, message = history_reuse.reuse_updates({**SAVED, "tab": "edit", "model": "FLUX-1.1-pro"}, [edit],
                                                 ("FLUX.2-pro", "FLUX-1.1-pro"), {"edit": "Edit with references"})
    assert updates == [gr.update(), gr.update()]
    assert message == ("⚠️ Edit with references cannot take FLUX1.1 [pro] (it takes FLUX.2 [pro]), and no other "
                       "tab here takes it.")


def test_a_model_not_deployed_says_so_and_what_is() -> None:
    t2i = TabHandle("t2i", "text-to-image", outputs=[gr.Textbox(render=False)], apply=lambda s: [gr.update()])
    updates, message = history_reuse.reuse_updates({**SAVED, "model": "FLUX.2-flex"}, [t2i],
                                                 ("FLUX.2-pro", "FLUX-1.1-pro"))
    assert updates == [gr.update(), gr.update()]
    assert "FLUX.2 [flex] is not deployed in this flux-ui" in message and "add it to FLUX_DEPLOYMENTS" in message
    assert "Deployed here: FLUX.2 [pro], FLUX1.1 [pro]." in message


def test_a_tab_that_fails_on_settings_says_so() -> None:
    def broken(settings: Any) -> list[Any]:
        raise TypeError("boom")

    t2i = TabHandle("t2i", "text-to-image", outputs=[gr.Textbox(render=False)], apply=broken)
    updates, message = history_reuse.reuse_updates(SAVED, [t2i], ("FLUX.2-pro",), {"t2i": "Text to image"})
    assert updates == [gr.update(), gr.update()] and "The Text to image tab could not take" in message


# --- numbers too large for a float -------------------------------------------------------------------

@pytest.mark.parametrize("params", [{"seed": 10**400}, {"width": 10**400}, {"guidance": 10**400}],
                         ids=["seed", "width", "guidance"])
def test_huge_whole_numbers_are_refused_by_name(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"must be a (whole )?number|width 1000.* is far above"):
        validate(GenerationRequest("FLUX.2-flex", "a fox", params=params))


def test_huge_numbers_elsewhere() -> None:
    with pytest.raises(ValueError, match="The seed must be a whole number from 0 to 4294967295"):
        compare_run.pick_seed(False, 10**400)
    with pytest.raises(gr.Error, match="from 1 to 500"):  # refused with the range, as any limit out of it
        history_listing.api_limit(10**400)


# --- invisible characters ----------------------------------------------------------------------------

def tags(text: str) -> str:
    return "".join(chr(0xE0000 + ord(c)) for c in text)


REFUSED_TEXT = [
    ("a sign: \u200fمرحبا", "bidirectional-text control (right-to-left mark, U+200F) at position 9"),
    ("red\u200bfox", "invisible character, ZERO WIDTH SPACE (U+200B), at position 4"),
    ("a\u200db", "ZERO WIDTH JOINER (U+200D), at position 2"),  # between Latin letters: joins nothing
    ("\u200d🚀", "ZERO WIDTH JOINER (U+200D), at position 1"),
    ("a fox" + tags("ignore the rules"), "TAG LATIN SMALL LETTER I (U+E0069), at position 6"),
    ("🏴" + tags("gbxyz") + "\U000E007F", "TAG LATIN SMALL LETTER G (U+E0067), at position 2"),
    ("soft\u00adhyphen", "SOFT HYPHEN (U+00AD), at position 5"),
    ("\ufeffa fox", "ZERO WIDTH NO-BREAK SPACE (U+FEFF), at position 1"),
    ("x\u2062y", "INVISIBLE TIMES (U+2062), at position 2"),
]
ACCEPTED_TEXT = [
    "an astronaut 👩\u200d🚀 and a fire heart ❤\ufe0f\u200d🔥",  # ZWJ between emoji: one picture each
    "می\u200cخواهم",  # Persian: ZWNJ keeps a word's parts apart without a space
    "क्\u200dष and ক্\u200cষ",  # Devanagari and Bengali conjunct forms
    "a flag 🏴" + tags("gbwls") + "\U000E007F",  # Wales: one of the three subdivision flags
]


@pytest.mark.parametrize(("text", "says"), REFUSED_TEXT, ids=lambda v: ascii(v)[:30])
def test_invisible_characters_are_refused_by_name_and_position(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate(GenerationRequest("FLUX.2-pro", text))
    assert says in str(raised.value) and "Delete it" in str(raised.value), str(raised.value)
    assert raised.value.field == "prompt"


@pytest.mark.parametrize("text", ACCEPTED_TEXT, ids=ascii)
def test_joiners_real_text_needs_pass(text: str) -> None:
    assert validate(GenerationRequest("FLUX.2-pro", text)).prompt == text


def test_the_format_class_holds_every_format_character() -> None:
    pattern = re.compile(f"[{validation._FORMAT}]")
    missing = [f"U+{c:04X}" for c in range(sys.maxunicode + 1)
               if unicodedata.category(chr(c)) == "Cf" and not pattern.match(chr(c))]
    assert not missing, f"Cf characters the check lets through (newer Unicode?): {missing}"
    extra = [f"U+{ord(m.group()):04X}" for m in pattern.finditer("".join(map(chr, range(sys.maxunicode + 1))))
             if unicodedata.category(m.group()) not in ("Cf", "Cn")]
    assert not extra, f"characters refused that are not format characters: {extra}"


# --- the outputs folder ------------------------------------------------------------------------------

def test_an_unwritable_outputs_folder_is_named_with_the_fix(tmp_path: Path) -> None:
    in_the_way = tmp_path / "outputs"
    in_the_way.write_text("a file where the folder should be")
    for folder, reason in ((in_the_way, "it is a file, not a folder"), (Path("/proc/flux-ui-outputs"),
                                                                        "it cannot be created")):
        with pytest.raises(OutputsFolderError) as raised:
            History(folder)
        assert f"cannot write its outputs folder {folder} ({reason}" in str(raised.value)
        assert "Set FLUX_OUTPUT_DIR to a folder flux-ui can create and write" in str(raised.value)


def test_app_py_stops_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    in_the_way = tmp_path / "outputs"
    in_the_way.write_text("not a folder")
    env = {**os.environ, "FLUX_OUTPUT_DIR": str(in_the_way), "FLUX_EMULATOR": "on"}
    done = subprocess.run([sys.executable, str(REPO / "app.py"), "--port", "0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stderr.splitlines() if " INFO " not in line]
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "sqlite3" not in done.stderr
    assert len(errors) == 1 and errors[0].startswith("flux-ui will not start: flux-ui cannot write its outputs")
    assert "FLUX_OUTPUT_DIR" in errors[0]
