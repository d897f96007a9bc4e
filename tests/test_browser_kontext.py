"""Kontext edits in a real browser: a chain with a step back, the Image API route, a refusal."""

from __future__ import annotations

import pytest
from PIL import Image, ImageStat

from app_fixtures import AppUnderTest, screenshot
from conftest import SAMPLES

pytestmark = pytest.mark.browser


def mean_rgb(path: object) -> list[float]:
    """The mean colour as the emulator's request log measures a reference."""
    img = Image.open(path).convert("RGB")  # type: ignore[arg-type]
    img.thumbnail((768, 768), Image.Resampling.BILINEAR)
    return [round(v, 1) for v in ImageStat.Stat(img).mean]


def open_tab(page, app: AppUnderTest, picture: str = "astronaut.png") -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Kontext edit").click()
    page.set_input_files("#kontext-input input[type=file]", str(SAMPLES / picture))
    page.wait_for_selector("#kontext-input img")


def run_edit(page, instruction: str, expect: str) -> None:
    page.fill("#kontext-prompt textarea", instruction)
    page.click("#kontext-run")
    wait_for_status(page, expect)


def wait_for_status(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#kontext-status').innerText.includes(t)", arg=text)


def logged(app: AppUnderTest, prompt: str) -> dict:
    found = [r for r in app.emulator.requests() if r.get("prompt") == prompt]
    assert len(found) == 1, found
    return found[0]


def test_a_chain_of_two_edits_and_a_step_back(app: AppUnderTest, page) -> None:
    open_tab(page, app)
    run_edit(page, "make it night, keep the astronaut", "Added edit 1")
    page.click("#kontext-use-result")
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('astronaut ◀ input now')")
    run_edit(page, "add falling snow", "Added edit 2")
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('snow')")
    first, second = logged(app, "make it night, keep the astronaut"), logged(app, "add falling snow")
    first_result = next(e for e in app.runtime.history.list() if e.prompt == "make it night, keep the astronaut")
    ref = second["references"][0]
    assert (ref["width"], ref["height"]) == (first["output"]["width"], first["output"]["height"])
    assert ref["mean_rgb"] == pytest.approx(mean_rgb(first_result.path), abs=2.0)
    assert ref["mean_rgb"] != pytest.approx(first["references"][0]["mean_rgb"], abs=2.0)  # not the original
    trail = page.inner_text("#kontext-trail-list")
    assert "original" in trail and "edit 1: make it night" in trail and "edit 2: add falling snow" in trail
    screenshot(page, "kontext")
    page.set_viewport_size({"width": 420, "height": 1000})
    page.wait_for_function("document.querySelector('#kontext-more').getBoundingClientRect().width < 420")
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")  # repainted
    screenshot(page, "kontext-narrow")
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.click("#kontext-trail .thumbnail-item >> nth=0")  # step back to the original
    wait_for_status(page, "Stepped back: original is the input now")
    page.wait_for_function("document.querySelector('#kontext-input img').src.endsWith('astronaut.png')")
    assert "edit 2: add falling snow" in page.inner_text("#kontext-trail-list")  # nothing lost by stepping back
    run_edit(page, "make it a sunny day", "New branch from original")
    branch = logged(app, "make it a sunny day")
    assert branch["references"] == first["references"]  # the original went out again, not an edit
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('sunny day')")
    trail = page.inner_text("#kontext-trail-list")
    assert "edit 1: make it a sunny day" in trail and "add falling snow" not in trail


def test_the_image_api_route_sends_to_images_edits(app: AppUnderTest, page) -> None:
    open_tab(page, app, "chelsea.png")
    page.click("#kontext-more button")  # unfold the parameters
    page.wait_for_selector("#kontext-seed", state="visible")
    page.get_by_label("Image API edits").check()
    page.wait_for_function("document.querySelector('#kontext-route-note').innerText.includes('not sent')")
    page.wait_for_selector("#kontext-seed", state="hidden")
    assert page.is_visible("#kontext-output_format") and not page.is_visible("#kontext-safety_tolerance")
    page.fill("#kontext-prompt textarea", "give the cat a tiny hat")
    page.press("#kontext-prompt textarea", "Control+Enter")
    wait_for_status(page, "Added edit 1")
    request = logged(app, "give the cat a tiny hat")
    assert request["route"] == "images/edits" and "seed" not in request["params"]


def test_a_refusal_keeps_the_instruction_and_the_image(app: AppUnderTest, page) -> None:
    open_tab(page, app, "coffee.png")
    instruction = "write refuse-me on the cup"
    run_edit(page, instruction, "refused")
    assert page.input_value("#kontext-prompt textarea") == instruction
    assert page.get_attribute("#kontext-input img", "src").endswith("coffee.png")
    assert logged(app, instruction)["status"] != 200
    assert "No edits yet" in page.inner_text("#kontext-trail-list")
