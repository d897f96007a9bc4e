"""Examples in a real browser: a click fills each tab's form and sends nothing; Generate then sends it."""

from __future__ import annotations

import time
from pathlib import PurePosixPath
from urllib.parse import unquote

import pytest
from PIL import Image

from app_fixtures import AppUnderTest, screenshot
from flux_ui.assets import EXAMPLES
from flux_ui.registry import MODELS
from flux_ui.ui import examples

pytestmark = pytest.mark.browser


def click_example(page, table: str, index: int) -> None:
    """Click one example's row, as a person would."""
    page.locator(f"#{table} tbody tr").nth(index).locator("td").first.click()


def wait_value(page, selector: str, expected: str) -> None:
    page.wait_for_function("([s, v]) => document.querySelector(s)?.value === v", arg=[selector, expected])


def shown_files(page, selector: str) -> list[str]:
    """The file names of the pictures under ``selector``, in page order."""
    sources = page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.src)")
    return [PurePosixPath(unquote(s)).name for s in sources]


def checked_models(page) -> list[str]:
    return page.eval_on_selector_all("#compare-models label", "ls => ls.filter(l => l.querySelector('input').checked)"
                                     ".map(l => l.innerText.trim())")


def photo_of(reference: dict) -> str:
    """Which example photo a logged reference was: the nearest in size (the client snaps sides to its grid)."""
    sizes = {path.name: Image.open(path).size for path in sorted(EXAMPLES.iterdir())}
    return min(sizes, key=lambda n: abs(sizes[n][0] - reference["width"]) + abs(sizes[n][1] - reference["height"]))


def check_text_to_image(page, app: AppUnderTest) -> None:
    offered = examples.prompt_examples(app.runtime.models)
    sign = next(e for e in offered if e.model == "FLUX.2-flex")
    click_example(page, "t2i-examples", offered.index(sign))
    wait_value(page, "#t2i-prompt textarea", sign.prompt)
    wait_value(page, "#t2i-model input", "FLUX.2 [flex]")
    page.wait_for_selector("#param-guidance", state="visible")  # the model's controls followed it
    _, width, height = examples.shape_size(sign.model, sign.shape)  # type: ignore[misc]
    wait_value(page, "#param-width input", str(width))
    assert page.input_value("#param-height input") == str(height)
    assert page.input_value("#param-guidance input[type=number]") == "5"
    screenshot(page, "examples-text-to-image")

    draft = next(e for e in offered if e.model == "FLUX.1-schnell")
    click_example(page, "t2i-examples", offered.index(draft))
    wait_value(page, "#t2i-model input", "FLUX.1 [schnell]")
    page.wait_for_selector("#param-guidance", state="hidden")
    page.wait_for_selector("#param-num_inference_steps", state="visible")
    wait_value(page, "#param-num_inference_steps input[type=number]", "2")
    assert page.input_value("#t2i-prompt textarea") == draft.prompt


def check_edit(page, app: AppUnderTest) -> examples.EditExample:
    page.get_by_role("tab", name="Edit with references").click()
    offered = examples.edit_examples(app.runtime.models)
    three = next(e for e in offered if len(e.photos) == 3)
    two = next(e for e in offered if len(e.photos) == 2)
    click_example(page, "edit-examples", offered.index(two))
    page.wait_for_selector("#edit-card-2")
    click_example(page, "edit-examples", offered.index(three))  # replaces the two, never adds to them
    page.wait_for_selector("#edit-card-3")
    wait_value(page, "#edit-prompt textarea", three.prompt)
    wait_value(page, "#edit-model input", MODELS[three.model].display_name)
    page.wait_for_function("document.querySelector('#edit-refs-summary').innerText.includes('3 reference images')")
    assert shown_files(page, "[id^='edit-ref-'] img") == list(three.photos)
    assert page.locator("[id^='edit-card-']:visible").count() == 3
    page.wait_for_selector("#edit-param-guidance", state="visible")  # FLUX.2 [flex]'s controls
    screenshot(page, "examples-edit")
    return three


def check_kontext(page, app: AppUnderTest) -> None:
    page.get_by_role("tab", name="Kontext edit").click()
    offered = examples.kontext_examples(app.runtime.models)
    hat = next(e for e in offered if e.photo == "chelsea.png")
    click_example(page, "kontext-examples", offered.index(hat))
    wait_value(page, "#kontext-prompt textarea", hat.prompt)
    page.wait_for_selector("#kontext-input img")
    assert shown_files(page, "#kontext-input img") == ["chelsea.png"]
    assert page.input_value("#kontext-model input") == MODELS[hat.model].display_name
    screenshot(page, "examples-kontext")


def check_compare(page, app: AppUnderTest) -> None:
    page.get_by_role("tab", name="Compare").click()
    offered = examples.compare_examples(app.runtime.models, 2)
    pair = next(e for e in offered if len(e.models) == 2)
    click_example(page, "compare-examples", offered.index(pair))
    wait_value(page, "#compare-prompt textarea", pair.prompt)
    page.wait_for_function("(n) => document.querySelectorAll('#compare-models input:checked').length === n",
                           arg=len(pair.models))
    assert checked_models(page) == [MODELS[m].display_name for m in pair.models]
    assert page.input_value("#compare-shape input") == pair.shape
    screenshot(page, "examples-compare")


def generate_edit(page, app: AppUnderTest) -> dict:
    page.get_by_role("tab", name="Edit with references").click()
    page.click("#edit-run")
    page.wait_for_function("document.querySelector('#edit-info').innerText.includes('seed')")
    deadline = time.monotonic() + 5  # under load the page can be a step ahead of this test's read
    while not app.emulator.requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = app.emulator.requests()
    assert len(logged) == 1, logged
    return logged[0]


def test_a_click_fills_each_form_and_sends_nothing_until_generate(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.wait_for_selector("#t2i-examples tbody tr")
    check_text_to_image(page, app)
    edit_example = check_edit(page, app)
    check_kontext(page, app)
    check_compare(page, app)
    time.sleep(0.5)  # anything a click had set off would have reached the emulator by now
    assert app.emulator.requests() == []

    sent = generate_edit(page, app)
    assert sent["status"] == 200 and sent["model"] == edit_example.model and sent["prompt"] == edit_example.prompt
    assert [photo_of(r) for r in sent["references"]] == list(edit_example.photos)  # each photo, in order
