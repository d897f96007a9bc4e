"""History in a real browser: it survives a restart, reuse loads an entry into its tab, and a dropped
flux-ui image restores its settings while a plain photo is named as such."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client

from app_fixtures import AppUnderTest, running_app, screenshot
from conftest import SAMPLES
from flux_ui.history import Entry

pytestmark = pytest.mark.browser
GRID = "#history-gallery .thumbnail-lg img"  # the grid's thumbnails (the preview adds a strip of its own)

MADE = [("FLUX.2-pro", "a red fox in the snow", 11, {}),
        ("FLUX.2-flex", "a blue heron standing in morning fog", 22, {"guidance": 3.0, "steps": 30}),
        ("FLUX-1.1-pro", "a red kite over green hills", 33, {"output_format": "png"}),
        ("FLUX.1-schnell", "a lighthouse at dusk", 44, {})]


@pytest.fixture(scope="module")
def made(app: AppUnderTest) -> dict[str, Entry]:
    """Four saved images from four models, made through /generate; by prompt."""
    client = Client(app.url, verbose=False)
    for model, prompt, seed, params in MADE:
        client.predict(model=model, prompt=prompt, randomize_seed=False, seed=seed, api_name="/generate", **params)
    return {e.prompt: e for e in app.runtime.history.list()}


def open_history(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="History").click()
    page.wait_for_selector("#history-gallery img")


def thumbnail(page, prompt_start: str):
    return page.locator(f"#history-gallery button.thumbnail-lg:has(img[alt*='{prompt_start}'])")


def wait_for_prompt(page, prompt: str) -> None:
    page.wait_for_function("([sel, text]) => document.querySelector(sel)?.value === text",
                           arg=["#t2i-prompt textarea", prompt])


def test_history_survives_a_restart(page, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    prompt = "a paper boat on a rainy street"
    with running_app(outputs) as first:
        page.goto(first.url)
        page.fill("#t2i-prompt textarea", prompt)
        page.click("#t2i-run")
        page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('seed')")
        seed = first.emulator.requests()[-1]["output"]["seed"]
    with running_app(outputs) as second:
        open_history(page, second.url)
        assert thumbnail(page, prompt).count() == 1
        assert "1 image, newest first" in page.inner_text("#history-status")
        thumbnail(page, prompt).click()
        page.wait_for_function("document.querySelector('#history-details').innerText.includes('seed')")
        details = page.inner_text("#history-details")
        assert f"seed {seed}" in details and "Text to image" in details and str(outputs) in details
        assert page.input_value("#history-prompt textarea") == prompt
        assert page.is_enabled("#history-reuse")
        with page.expect_download() as download:
            page.click("#history-download")
        saved = second.runtime.history.list()[0].path
        assert Path(download.value.path()).read_bytes() == saved.read_bytes()  # the original file, as saved
        assert second.emulator.requests() == []  # listed from disk, nothing made again


def test_reuse_settings_loads_the_entry_into_its_tab(app: AppUnderTest, page, made: dict[str, Entry]) -> None:
    heron = made["a blue heron standing in morning fog"]
    open_history(page, app.url)
    assert page.locator(GRID).count() == len(MADE)
    first_caption = page.locator(GRID).first.get_attribute("alt")
    assert first_caption == "FLUX.1 [schnell] · a lighthouse at dusk · seed 44"  # newest first
    thumbnail(page, "heron").click()
    page.wait_for_function("document.querySelector('#history-details').innerText.includes('seed 22')")
    caption = page.get_attribute("#history-gallery .media-button img", "alt")
    assert caption is not None and "heron" in caption
    details = page.inner_text("#history-details")
    assert "FLUX.2 [flex]" in details and "Guidance 3" in details and "Steps 30" in details
    assert str(heron.path) in details
    screenshot(page, "history")
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "history-narrow")
    page.set_viewport_size({"width": 1400, "height": 1000})

    before = len(app.emulator.requests())
    page.click("#history-reuse")
    wait_for_prompt(page, heron.prompt)
    assert page.is_visible("#t2i-run") and not page.is_visible("#history-reuse")
    assert page.input_value("#t2i-model input") == "FLUX.2 [flex]"
    assert page.input_value("#param-seed input") == "22"
    assert not page.is_checked("#t2i-randomize input")
    page.click("#t2i-run")
    page.wait_for_function("document.querySelector('#t2i-info').innerText.includes('seed 22')")
    sent = app.emulator.requests()[before:]
    assert len(sent) == 1 and sent[0]["model"] == "FLUX.2-flex" and sent[0]["prompt"] == heron.prompt
    assert sent[0]["params"]["seed"] == 22 and sent[0]["params"]["guidance"] == 3.0
    assert sent[0]["params"]["steps"] == 30

    # back on History, the new image is listed without pressing Refresh; the filters narrow the list
    page.get_by_role("tab", name="History").click()
    page.wait_for_function(f"document.querySelectorAll('{GRID}').length === {len(MADE) + 1}")
    assert page.get_attribute("#history-gallery .media-button img", "alt") == caption  # the preview kept its image
    page.fill("#history-text textarea", "red")
    page.press("#history-text textarea", "Enter")
    page.wait_for_function(f"document.querySelectorAll('{GRID}').length === 2")
    assert page.locator("#history-gallery .media-button").count() == 0  # its image is filtered out: closed
    page.fill("#history-text textarea", "")
    page.click("#history-model input")
    page.get_by_role("option", name="FLUX.2 [flex]", exact=True).click()
    page.wait_for_function("document.querySelector('#history-status').innerText.includes('2 images matching')")
    # the status line can land a frame before the gallery re-renders: wait for the thumbnails themselves
    page.wait_for_function(f"[...document.querySelectorAll('{GRID}')].length === 2 && "
                           f"[...document.querySelectorAll('{GRID}')].every(e => e.alt.includes('heron'))")


def test_dropping_a_saved_image_restores_its_settings(app: AppUnderTest, page, made: dict[str, Entry]) -> None:
    kite = made["a red kite over green hills"]
    assert kite.path.parent.parent == app.outputs  # the file as it lies in the outputs folder
    open_history(page, app.url)
    page.set_input_files("#history-drop input[type=file]", str(kite.path))
    wait_for_prompt(page, kite.prompt)
    assert page.input_value("#t2i-model input") == "FLUX1.1 [pro]"
    assert page.input_value("#param-seed input") == "33"
    assert page.is_checked("#param-output_format input[value='png']")


def test_dropping_a_plain_photo_says_what_is_missing(app: AppUnderTest, page) -> None:
    photo = SAMPLES / "astronaut.png"
    page.goto(app.url)
    page.get_by_role("tab", name="History").click()
    page.set_input_files("#history-drop input[type=file]", str(photo))
    page.wait_for_function("document.querySelector('#history-drop-status').innerText.includes('no flux-ui settings')")
    message = page.inner_text("#history-drop-status")
    assert "PNG text chunks" in message and "Pick one from History instead" in message
    assert page.is_visible("#history-drop")  # still on History: nothing was loaded anywhere
