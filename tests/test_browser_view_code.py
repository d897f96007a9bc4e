"""View code in a real browser: the form's request as curl, Python and openai, with the key's environment
variable and never the key; a bad form shows the client's words and no code; after a generation, the
request that was sent."""

from __future__ import annotations

import httpx
import pytest

from app_fixtures import AppUnderTest
from conftest import SAMPLES

pytestmark = pytest.mark.browser


def open_code(page, prefix: str) -> None:
    page.locator(f"#{prefix}-code").get_by_text("View code", exact=True).click()
    page.wait_for_selector(f"#{prefix}-code-show", state="visible")


def show_code(page, prefix: str) -> str:
    """Press "Show code for this form" and wait for the curl snippet; its text."""
    page.click(f"#{prefix}-code-show")
    page.wait_for_function("(id) => document.querySelector(`#${id} .cm-content`)?.innerText.includes('curl')",
                           arg=f"{prefix}-code-curl")
    return page.inner_text(f"#{prefix}-code-curl .cm-content")


def secrets_of(app: AppUnderTest) -> set[str]:
    keys = {app.emulator.api_key}
    keys |= {d.api_key.reveal() for d in app.runtime.settings.deployments.values() if d.api_key}
    return {k for k in keys if k}


def assert_no_key(app: AppUnderTest, page) -> None:
    """Neither the page as rendered nor its config (what Gradio hands the browser) holds a key."""
    html, config = page.content(), httpx.get(f"{app.url}/config", timeout=10).text
    for key in secrets_of(app):
        assert key not in html and key not in config


def test_the_form_as_curl_with_the_route_and_the_keys_variable(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    assert not page.is_visible("#t2i-code-show")  # the accordion starts closed
    page.fill("#t2i-prompt textarea", "a lighthouse on a cliff, storm light")
    open_code(page, "t2i")
    curl = show_code(page, "t2i")
    assert "/providers/blackforestlabs/v1/flux-2-pro" in curl and "$AZURE_API_KEY" in curl, curl
    assert "a lighthouse on a cliff, storm light" in curl
    python = page.inner_text("#t2i-code-python .cm-content")
    assert 'os.environ["AZURE_API_KEY"]' in python
    assert not page.is_visible("#t2i-code-openai")  # the BFL route: no openai snippet
    assert "Randomize seed is on" in page.inner_text("#t2i-code-note")
    assert_no_key(app, page)
    assert app.emulator.requests() == [] or all(r.get("prompt") != "a lighthouse on a cliff, storm light"
                                                for r in app.emulator.requests())  # nothing sent


def test_a_bad_form_shows_the_clients_words_and_no_code(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.fill("#t2i-prompt textarea", "   ")
    open_code(page, "t2i")
    page.click("#t2i-code-show")
    page.wait_for_function("document.querySelector('#t2i-code-note').innerText.includes('prompt is empty')")
    note = page.inner_text("#t2i-code-note .prose")  # the note, not Gradio's timer beside it
    assert "Traceback" not in note and note.startswith("⚠️")
    assert not page.is_visible("#t2i-code-curl")


def test_after_a_generation_the_request_sent_is_shown(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.uncheck("#t2i-randomize input")
    page.fill("#param-seed input", "321")
    page.fill("#t2i-prompt textarea", "a red bicycle against a blue wall")
    page.click("#t2i-run")
    page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('seed 321')")
    open_code(page, "t2i")
    page.wait_for_function("document.querySelector('#t2i-code-note').innerText.includes('request sent')")
    curl = page.inner_text("#t2i-code-curl .cm-content")
    assert '"seed": 321' in curl and "a red bicycle against a blue wall" in curl
    assert_no_key(app, page)


def test_edit_names_its_references_and_kontext_on_the_image_api_adds_openai(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Edit with references").click()
    with page.expect_file_chooser() as chooser:
        page.click("#edit-add")
    chooser.value.set_files([str(SAMPLES / "chelsea.png"), str(SAMPLES / "coffee.png")])
    page.wait_for_selector("#edit-card-2")
    page.fill("#edit-prompt textarea", "the cat from image 1 beside the cup in image 2")
    open_code(page, "edit")
    curl = show_code(page, "edit")
    assert "image1.png" in curl and "image2.png" in curl and "$AZURE_API_KEY" in curl
    assert "image1.png, image2.png" in page.inner_text("#edit-code-note")

    page.get_by_role("tab", name="Kontext edit").click()
    page.wait_for_selector("#kontext-route", state="visible")
    page.locator("#kontext-route").get_by_text("Image API edits").click()
    page.fill("#kontext-prompt textarea", "make it night")
    open_code(page, "kontext")
    curl = show_code(page, "kontext")
    assert "images/edits" in curl and "image1.png" in curl
    page.wait_for_selector("#kontext-code-openai", state="visible")
    assert "OpenAI" in page.inner_text("#kontext-code-openai .cm-content")
    assert_no_key(app, page)
