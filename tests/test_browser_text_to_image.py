"""Text to image in a real browser: every model, errors next to the prompt, Ctrl+Enter, Stop."""

from __future__ import annotations

import pytest

from app_fixtures import AppUnderTest, screenshot
from flux_ui.registry import MODELS

pytestmark = pytest.mark.browser


def choose_model(page, model_id: str) -> None:
    page.click("#t2i-model input")
    page.get_by_role("option", name=MODELS[model_id].display_name, exact=True).click()


def generate(page, prompt: str) -> None:
    page.fill("#t2i-prompt textarea", prompt)
    page.click("#t2i-run")


@pytest.mark.parametrize("model", list(MODELS))
def test_each_model_generates(app: AppUnderTest, page, model: str) -> None:
    page.goto(app.url)
    choose_model(page, model)
    prompt = f"a lighthouse at dusk drawn by {model}"
    generate(page, prompt)
    page.wait_for_selector("#t2i-image img")
    page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('seed')")
    info = page.inner_text("#t2i-info")
    assert MODELS[model].display_name in info
    logged = [r for r in app.emulator.requests() if r.get("prompt") == prompt]
    assert len(logged) == 1 and logged[0]["model"] == model and logged[0]["status"] == 200
    if model == "FLUX.2-pro":
        screenshot(page, "text-to-image")


def test_controls_follow_the_model(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    choose_model(page, "FLUX.2-flex")
    page.wait_for_selector("#param-guidance", state="visible")
    assert page.is_visible("#param-steps") and not page.is_visible("#param-aspect_ratio")
    choose_model(page, "FLUX.1-Kontext-pro")
    page.wait_for_selector("#param-aspect_ratio", state="visible")
    assert not page.is_visible("#param-guidance") and not page.is_visible("#param-width")


def test_an_error_shows_next_to_the_prompt_which_is_kept(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    before = len(app.emulator.requests())
    generate(page, "a cat who says refuse-me to the camera")
    page.wait_for_function("document.querySelector('#t2i-status').innerText.includes('refused')")
    assert "Rephrase" in page.inner_text("#t2i-status")
    assert page.input_value("#t2i-prompt textarea") == "a cat who says refuse-me to the camera"
    assert len(app.emulator.requests()) == before + 1  # one request, not retried
    screenshot(page, "error-kept-prompt")


def test_ctrl_enter_generates(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.fill("#t2i-prompt textarea", "ctrl enter works")
    page.press("#t2i-prompt textarea", "Control+Enter")
    page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('seed')")
    assert any(r.get("prompt") == "ctrl enter works" for r in app.emulator.requests())


def test_the_snap_is_shown_while_typing_a_size(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.wait_for_selector("#param-width", state="visible")
    page.fill("#param-width input", "1000")
    page.press("#param-width input", "Tab")
    page.wait_for_function("document.querySelector('#t2i-size-note').innerText.includes('992×1024')")
