"""Compare in a real browser: three models at once, the A/B slider, blind votes and the tally."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import PurePosixPath
from urllib.parse import unquote

import pytest

from app_fixtures import AppUnderTest, screenshot
from flux_ui.emulator.config import Fault
from flux_ui.exports import names_a_model
from flux_ui.registry import MODELS, Mode
from flux_ui.ui.compare_run import DEFAULT_PICKS

pytestmark = pytest.mark.browser

#: The models the tab ticks at first: the first few of those that make an image from a prompt.
DEFAULTS = [m for m in MODELS if MODELS[m].does(Mode.GENERATE)][:DEFAULT_PICKS]


def open_tab(page, app: AppUnderTest) -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#compare-prompt textarea", state="visible")


def toggle(page, model_id: str) -> None:
    page.locator("#compare-models label", has_text=MODELS[model_id].display_name).click()


def wait_done(page) -> None:
    page.wait_for_function("document.querySelector('#compare-status')?.innerText.includes('Done:')")


def file_name(src: str | None) -> str:
    return PurePosixPath(unquote(src or "")).name


def test_three_models_side_by_side_sent_together(app: AppUnderTest, page) -> None:
    models = ["FLUX.2-pro", "FLUX.1-Kontext-pro", "FLUX-1.1-pro"]
    for m in models:
        app.emulator.set_faults(m, [Fault("latency", seconds=1.0)])
    try:
        open_tab(page, app)
        toggle(page, "FLUX.2-flex")  # off
        toggle(page, "FLUX-1.1-pro")  # on
        page.fill("#compare-prompt textarea", "a lantern festival over a river")
        page.click("#compare-run")
        page.wait_for_function("document.querySelector('#compare-caption-0')?.innerText.includes('⏳')")
        wait_done(page)
    finally:
        for m in models:
            app.emulator.set_faults(m, [])
    for i, m in enumerate(models):  # slots follow the registry order of the ticked models
        page.wait_for_selector(f"#compare-image-{i} img")
        caption = page.inner_text(f"#compare-caption-{i}")
        assert MODELS[m].display_name in caption and "seed" in caption
    assert not page.is_visible("#compare-slot-3")
    logged = [r for r in app.emulator.requests() if r["prompt"] == "a lantern festival over a river"]
    assert sorted(r["model"] for r in logged) == sorted(models)
    assert len({r["params"]["seed"] for r in logged}) == 1
    assert str(logged[0]["params"]["seed"]) in page.inner_text("#compare-status")
    # Each answer took 1 s: one after another they would end 1 s apart; together, within a moment.
    times = [r["time"] for r in logged]
    assert max(times) - min(times) < 0.8

    # The A/B slider shows the first two results; picking another changes its right side.
    page.wait_for_selector("#compare-slider img")
    slider = page.locator("#compare-slider img")
    assert slider.count() == 2
    assert file_name(slider.nth(0).get_attribute("src")) == file_name(
        page.get_attribute("#compare-image-0 img", "src"))
    page.click("#compare-right input")
    page.get_by_role("option", name=MODELS["FLUX-1.1-pro"].display_name, exact=True).click()
    third = file_name(page.get_attribute("#compare-image-2 img", "src"))
    page.wait_for_function(
        "name => [...document.querySelectorAll('#compare-slider img')].some(i => decodeURIComponent(i.src)"
        ".endsWith(name))", arg=third)
    screenshot(page, "compare")
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "compare-narrow")


def test_blind_mode_hides_names_until_a_vote(app: AppUnderTest, page) -> None:
    open_tab(page, app)
    page.fill("#compare-prompt textarea", "a tin robot watering plants")
    page.click("#compare-blind input")
    page.click("#compare-run")
    wait_done(page)
    page.wait_for_selector("#compare-vote-0", state="visible")
    slots = [page.inner_text(f"#compare-slot-{i}") for i in range(3)]
    for i, text in enumerate(slots):
        assert f"Image {'ABC'[i]}" in text
        assert not any(MODELS[m].display_name in text for m in MODELS), text
    # Nothing on the results, and no file the page links to, names a model before the vote.
    results = "".join(page.inner_html(sel) for sel in (*(f"#compare-slot-{i}" for i in range(3)), "#compare-status",
                                                       "#compare-left", "#compare-right", "#compare-slider"))
    urls = page.eval_on_selector_all("[src], [href]",
                                     "els => els.map(e => e.getAttribute('src') || e.getAttribute('href'))")
    assert any("/file=" in u or "/gradio_api/file" in u for u in urls)  # the images are among them
    for text in (results, *urls):
        assert names_a_model(text) is None, text[:300]
    # The comparison's sheet and ZIP are blind too: letters for names, and nothing inside names a model.
    page.wait_for_selector("#compare-exports a", state="attached", timeout=20_000)
    links = page.eval_on_selector_all("#compare-exports a", "els => els.map(e => e.getAttribute('href'))")
    assert len(links) == 2 and all(names_a_model(unquote(link)) is None for link in links)
    archive = max((app.outputs / "exports").rglob("compare-*.zip"), key=lambda p: p.stat().st_mtime)
    with zipfile.ZipFile(archive) as zf:
        assert sum(n.endswith((".png", ".jpg")) for n in zf.namelist()) >= 3
        for name in zf.namelist():
            assert names_a_model(name) is None and names_a_model(zf.read(name)) is None, name
    asked = [r for r in app.emulator.requests() if r["prompt"] == "a tin robot watering plants"]
    assert len(asked) == 3 and {r["output"]["format"] for r in asked} == {"png"}  # no file type gives one away
    page.click("#compare-vote-0")
    page.wait_for_function("document.querySelector('#compare-status')?.innerText.includes('You picked')")
    revealed = [page.inner_text(f"#compare-caption-{i}") for i in range(3)]
    names = [next(m for m in DEFAULTS if MODELS[m].display_name in text) for text in revealed]
    assert sorted(names) == sorted(DEFAULTS) and "your pick" in revealed[0]
    assert not page.is_visible("#compare-vote-0")
    assert all(page.locator(f"#compare-image-{i} img").count() == 1 for i in range(3))  # revealing keeps them
    page.wait_for_function("document.querySelector('#compare-tally')?.innerText.includes('Win rate')")
    assert "100%" in page.inner_text("#compare-tally")
    rows = sqlite3.connect(app.outputs / "tally.sqlite3").execute("SELECT model, wins, shown FROM tally").fetchall()
    assert sorted(rows) == sorted((m, int(m == names[0]), 1) for m in DEFAULTS)
    screenshot(page, "compare-blind")


def test_one_model_is_not_a_comparison(app: AppUnderTest, page) -> None:
    open_tab(page, app)
    before = len(app.emulator.requests())
    toggle(page, "FLUX.2-flex")
    toggle(page, "FLUX.1-Kontext-pro")  # only FLUX.2 [pro] is left
    page.fill("#compare-prompt textarea", "a single model")
    page.press("#compare-prompt textarea", "Control+Enter")
    page.wait_for_function("document.querySelector('#compare-status')?.innerText.includes('Pick 2 to 5')")
    assert page.input_value("#compare-prompt textarea") == "a single model"
    assert len(app.emulator.requests()) == before


def test_stop_abandons_every_waiting_model(app: AppUnderTest, page) -> None:
    for m in DEFAULTS:
        app.emulator.set_faults(m, [Fault("latency", seconds=4.0)])
    try:
        open_tab(page, app)
        page.fill("#compare-prompt textarea", "a slow sunrise")
        page.click("#compare-run")
        page.wait_for_selector("#compare-stop", state="visible")
        page.wait_for_function("document.querySelector('#compare-caption-2')?.innerText.includes('generating')")
        page.click("#compare-stop")
        page.wait_for_function("document.querySelector('#compare-status')?.innerText.includes('Stopped')")
        for i in range(3):
            assert "stopped" in page.inner_text(f"#compare-caption-{i}")
            assert page.locator(f"#compare-image-{i} img").count() == 0
        assert "may still finish it" in page.inner_text("#compare-status")  # said honestly
    finally:
        for m in DEFAULTS:
            app.emulator.set_faults(m, [])
