"""Content safety on the page (``FLUX_UI_SAFETY=emulator``): a refused prompt is the run's alert with the prompt
kept and nothing sent; a blocked result is never shown, listed or served; an outage fails closed with a
message; Edit and Kontext say the same; variations, Compare and Grid say per slot which image was blocked
and show the rest; the banner says content safety is on, and the owner's quota panel counts the quarantine."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app_fixtures import AppUnderTest, running_app, screenshot
from conftest import SAMPLES
from flux_ui.emulator.content_safety import safety_fault
from flux_ui.registry import MODELS
from flux_ui.ui.common import ALERT_MARK

pytestmark = pytest.mark.browser

PRO, FLEX, KONTEXT, SCHNELL = "FLUX.2-pro", "FLUX.2-flex", "FLUX.1-Kontext-pro", "FLUX.1-schnell"
#: Past FLUX.1 [schnell]'s 256 prompt tokens, so only the models that read it all draw the marker the emulator
#: blocks: a comparison in which one slot is blocked for its category and the other shown.
LONG = "a quiet lake at dawn with mist over the water, " * 30 + "safety-marker"


@pytest.fixture(scope="module")
def safe_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    with running_app(tmp_path_factory.mktemp("outputs"), env={"FLUX_UI_SAFETY": "emulator"}) as running:
        yield running


def wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)", arg=[selector, text])


def wait_alert(page, prefix: str) -> str:
    page.wait_for_function(f"document.querySelector('#{prefix}-status').classList.contains('flux-alert')")
    return page.inner_text(f"#{prefix}-status .prose").strip()


def sent(app: AppUnderTest, prompt: str) -> list[str]:
    return [e["route"] for e in app.emulator.requests() if e["prompt"] == prompt]


def test_a_refused_prompt_is_the_alert_and_stays_in_the_box(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    wait_text(page, "#banner", "Content safety on")
    prompt = "a knight at dawn, safety-violence"
    page.fill("#t2i-prompt textarea", prompt)
    page.click("#t2i-run")
    said = wait_alert(page, "t2i")
    assert said.startswith(ALERT_MARK) and "flagged this prompt for Violence" in said
    assert "Nothing was sent, so nothing is billed." in said
    assert page.input_value("#t2i-prompt textarea") == prompt
    assert sent(safe_app, prompt) == ["text:analyze"]  # checked, never sent to FLUX
    screenshot(page, "safety-prompt-refused")


def test_a_blocked_result_is_never_shown_listed_or_served(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    clean = "a red kite over the hills"
    page.fill("#t2i-prompt textarea", clean)
    page.click("#t2i-run")
    page.wait_for_selector("#t2i-image img")
    prompt = f"{clean}, safety-marker"
    page.fill("#t2i-prompt textarea", prompt)
    page.click("#t2i-run")
    said = wait_alert(page, "t2i")
    assert "flagged the result for Sexual" in said and "billed" in said and "not in History" in said
    assert page.input_value("#t2i-prompt textarea") == prompt
    shown = page.get_attribute("#t2i-image img", "src") or ""
    assert "safety-marker" not in shown and "quarantine" not in shown  # the clean image from before stays
    assert sent(safe_app, prompt) == ["text:analyze", "bfl"]  # made (and billed), then checked
    screenshot(page, "safety-result-blocked")
    assert safe_app.runtime.safety is not None
    [kept] = [k for k in safe_app.runtime.safety.quarantine.kept()
              if json.loads(k.record.read_text())["about"]["prompt"] == prompt]
    answer = page.request.get(f"{safe_app.url}/gradio_api/file={kept.image}")
    assert answer.status == 404 and answer.body() != kept.image.read_bytes()
    page.get_by_role("tab", name="History").click()
    kites = page.locator(f"#history-gallery button.thumbnail-lg:has(img[alt*='{clean}'])")
    kites.first.wait_for()
    assert kites.count() == 1  # the clean one only
    assert page.locator("#history-gallery img[alt*='safety-marker']").count() == 0
    assert all(e.prompt != prompt for e in safe_app.runtime.history.list())
    page.click("#quota")  # this machine's own browser, without logins: the owner, who sees the quarantine
    wait_text(page, "#quota-panel", "Quarantine")
    assert "1 result blocked by Content Safety, kept with its verdict in" in page.inner_text("#quota-panel")
    screenshot(page, "safety-owner-quarantine")


def test_each_variation_is_checked_and_its_failure_said(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    box = page.locator("#t2i-count input[type=number]")
    box.fill("3")
    box.press("Enter")
    prompt = "three paper boats, safety-marker"
    page.fill("#t2i-prompt textarea", prompt)
    page.click("#t2i-run")
    said = wait_alert(page, "t2i")
    assert said.count("flagged the result for Sexual") == 3 and "billed" in said
    assert sent(safe_app, prompt) == ["text:analyze", "bfl", "bfl", "bfl"]  # one prompt check for the three
    screenshot(page, "safety-variations-blocked")


def test_compare_shows_the_blocked_slot_and_the_clean_one(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-prompt textarea", state="visible")
    for model in (FLEX, KONTEXT, SCHNELL):  # two models: FLUX.2 [pro] and FLUX.1 [schnell]
        page.locator("#compare-models label", has_text=MODELS[model].display_name).click()
    page.fill("#compare-prompt textarea", LONG)
    page.click("#compare-run")
    wait_text(page, "#compare-status", "1 of 2 images")
    blocked, shown = page.inner_text("#compare-caption-0"), page.inner_text("#compare-caption-1")
    assert MODELS[PRO].display_name in blocked and "flagged the result for Sexual" in blocked
    assert ALERT_MARK in blocked and "billed" in blocked
    assert MODELS[SCHNELL].display_name in shown and "seed" in shown
    assert page.locator("#compare-image-0 img").count() == 0
    page.wait_for_selector("#compare-image-1 img")
    assert page.input_value("#compare-prompt textarea") == LONG
    screenshot(page, "safety-compare-one-blocked")


def test_a_grid_says_which_cells_were_blocked(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    page.get_by_role("tab", name="Grid").click()
    page.wait_for_selector("#grid-prompt textarea", state="visible")
    page.fill("#grid-prompt textarea", "a fox in snow")
    page.click("#grid-y-axis input")
    page.get_by_role("option", name="Prompt S/R", exact=True).click()
    page.locator("#grid-y-values").locator("input, textarea").first.fill("snow, snow safety-marker")
    wait_text(page, "#grid-plan", "4 images")
    page.click("#grid-run")
    wait_text(page, "#grid-status", "2 of 4 images")
    status = page.inner_text("#grid-status")
    assert "2 failed" in status and "flagged the result for Sexual" in status
    assert page.locator("#grid-gallery img").count() == 2
    screenshot(page, "safety-grid-blocked-cells")


def test_an_outage_fails_closed_with_a_message(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    prompt = "a lighthouse in fog, during an outage"
    safe_app.emulator.set_faults("content-safety", [safety_fault("status", status=500)])
    try:
        page.fill("#t2i-prompt textarea", prompt)
        page.click("#t2i-run")
        said = wait_alert(page, "t2i")
    finally:
        safe_app.emulator.set_faults("content-safety", [])
    assert "Content Safety answered text:analyze with 500" in said and "did not send" in said
    assert "FLUX_UI_SAFETY_FAIL_OPEN" in said and "Nothing was sent, so nothing is billed." in said
    assert page.input_value("#t2i-prompt textarea") == prompt and "bfl" not in sent(safe_app, prompt)
    screenshot(page, "safety-outage")


def test_edit_and_kontext_say_it_the_same_way(safe_app: AppUnderTest, page) -> None:
    page.goto(safe_app.url)
    page.get_by_role("tab", name="Edit with references").click()
    page.wait_for_selector("#edit-refs-summary")
    with page.expect_file_chooser() as chooser:
        page.click("#edit-add")
    chooser.value.set_files([str(SAMPLES / "astronaut.png")])
    page.wait_for_selector("#edit-card-1")
    page.fill("#edit-prompt textarea", "the astronaut from image 1 on the moon, safety-marker")
    page.click("#edit-run")
    assert "flagged the result for Sexual" in wait_alert(page, "edit")
    assert page.locator("#edit-card-1").count() == 1  # the reference is kept
    page.get_by_role("tab", name="Kontext edit").click()
    page.set_input_files("#kontext-input input[type=file]", str(SAMPLES / "astronaut.png"))
    page.wait_for_selector("#kontext-input img")
    page.fill("#kontext-prompt textarea", "make it night, safety-hate")
    page.click("#kontext-run")
    said = wait_alert(page, "kontext")
    assert "flagged this prompt for Hate" in said and page.is_visible("#kontext-input img")
    page.fill("#kontext-prompt textarea", "make it night, safety-marker")
    page.click("#kontext-run")
    page.wait_for_function("document.querySelector('#kontext-status').innerText.includes('flagged the result')")
    assert "safety-marker" not in page.inner_text("#kontext-trail-list")  # no step for a blocked result
    screenshot(page, "safety-kontext-blocked")
