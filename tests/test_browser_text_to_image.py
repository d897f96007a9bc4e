"""Text to image in a real browser: every model, errors as alerts next to the run button, Ctrl+Enter, the
shape kept across models, the seed box while randomizing."""

from __future__ import annotations

import pytest

from app_fixtures import AppUnderTest, screenshot
from flux_ui.emulator import Fault
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


# --- the shape, the seed box and errors (issue 14) ------------------------------------------------------

def shape(page) -> tuple[str, str, str]:
    """The size preset as shown, and the width and height boxes."""
    return (page.input_value("#t2i-preset input"), page.input_value("#param-width input"),
            page.input_value("#param-height input"))


def pick_preset(page, label: str) -> None:
    page.click("#t2i-preset input")
    page.get_by_role("option", name=label, exact=True).click()


def test_switching_model_keeps_the_shape(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.wait_for_function("document.querySelector('#t2i-preset input')?.value.includes('1024×1024')")
    assert shape(page) == ("1:1  ·  1024×1024", "1024", "1024")  # the preset names the shape from the start
    pick_preset(page, "16:9  ·  1360×768")
    page.wait_for_function("document.querySelector('#param-width input').value === '1360'")
    choose_model(page, "FLUX-1.1-pro")  # its own 16:9, on its 32-pixel grid
    page.wait_for_function("document.querySelector('#param-width input').value === '1152'")
    assert shape(page) == ("16:9  ·  1152×640", "1152", "640")
    choose_model(page, "FLUX.1-Kontext-pro")  # sized by aspect ratio: the ratio carries
    page.wait_for_selector("#param-aspect_ratio", state="visible")
    assert page.input_value("#param-aspect_ratio input") == "16:9" and not page.is_visible("#t2i-preset")
    choose_model(page, "FLUX.2-pro")
    page.wait_for_function("document.querySelector('#param-width input')?.value === '1360'")
    assert shape(page) == ("16:9  ·  1360×768", "1360", "768")
    page.fill("#param-width input", "1000")  # a size no preset has: "custom"
    page.wait_for_function("document.querySelector('#t2i-preset input').value.startsWith('Custom')")
    choose_model(page, "FLUX-1.1-pro")  # a typed size carries as it is, snapped to the new grid
    page.wait_for_function("document.querySelector('#param-width input').value === '992'")
    assert shape(page) == ("Custom: the width and height below", "992", "768")
    screenshot(page, "t2i-shape-carried")


def test_the_seed_box_is_empty_while_randomizing(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.wait_for_selector("#t2i-seed-random", state="visible")
    assert page.input_value("#t2i-seed-random textarea, #t2i-seed-random input") == ""
    assert page.get_attribute("#t2i-seed-random textarea, #t2i-seed-random input", "placeholder") == "random"
    assert not page.is_visible("#param-seed")  # Gradio would show an empty number as 0
    generate(page, "a heron standing in fog, randomized")
    page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('seed ')")
    used = next(e.seed for e in app.runtime.history.list() if e.prompt == "a heron standing in fog, randomized")
    assert f"seed {used}" in page.inner_text("#t2i-info")  # the seed used is in the caption
    assert page.input_value("#t2i-seed-random textarea, #t2i-seed-random input") == ""  # and the box still empty
    page.click("#t2i-randomize input")  # Randomize seed off: the box holds the seed of the last image
    page.wait_for_selector("#param-seed", state="visible")
    assert page.input_value("#param-seed input") == str(used) and not page.is_visible("#t2i-seed-random")
    page.click("#t2i-randomize input")
    page.wait_for_selector("#t2i-seed-random", state="visible")


def status_text(page, prefix: str) -> str:
    """What the status line says (not Gradio's timer beside it while an event runs)."""
    return page.inner_text(f"#{prefix}-status .prose")


def status_is_alert(page, prefix: str) -> bool:
    return page.evaluate(f"""() => {{ const s = document.querySelector('#{prefix}-status');
        return s.classList.contains('flux-alert') && s.getAttribute('role') === 'alert'; }}""")


def test_a_failed_run_is_an_alert_until_the_next_run(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    prompt = "a kingfisher on a branch, the service down"
    app.emulator.set_faults("FLUX.2-pro", [Fault("status", status=503, count=3)])  # every attempt fails
    try:
        generate(page, prompt)
        seen = page.wait_for_function("""() => {  // the line and its look read at once: the next retry changes both
            const s = document.querySelector('#t2i-status'), text = s.querySelector('.prose')?.innerText || '';
            return text.includes('retrying in') ? {text, alert: s.classList.contains('flux-alert')} : null;
        }""").json_value()
        retrying = seen["text"]
        assert "503 from the service; retrying in" in retrying and retrying.count("retrying") == 1
        assert " of 3" in retrying and not seen["alert"]  # progress is plain text
        page.wait_for_function("document.querySelector('#t2i-status').classList.contains('flux-alert')")
    finally:
        app.emulator.set_faults("FLUX.2-pro", [])
    assert status_is_alert(page, "t2i") and page.is_visible("#t2i-status")
    assert "after 3 attempts" in status_text(page, "t2i")
    assert page.input_value("#t2i-prompt textarea") == prompt  # what was typed is kept
    screenshot(page, "t2i-error-alert")
    page.click("#t2i-run")  # the same prompt again, and the service is back
    page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('Sent:')")
    page.wait_for_function("document.querySelector('#t2i-status .prose').innerText.trim() === ''")  # success: empty
    assert not status_is_alert(page, "t2i") and not page.evaluate(
        "() => document.querySelector('#t2i-status').hasAttribute('role')")
    assert page.input_value("#t2i-prompt textarea") == prompt


def test_another_tab_shows_its_failure_the_same_way(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Edit with references").click()
    page.fill("#edit-prompt textarea", "the cat from image 1 on a sofa")
    page.click("#edit-run")  # no reference image: refused before anything is sent
    page.wait_for_function("document.querySelector('#edit-status').classList.contains('flux-alert')")
    assert status_is_alert(page, "edit") and "reference image" in status_text(page, "edit")
    assert page.input_value("#edit-prompt textarea") == "the cat from image 1 on a sofa"
    screenshot(page, "edit-error-alert")
