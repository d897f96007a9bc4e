"""History in a real browser: it survives a restart, reuse loads an entry into its tab, a dropped
flux-ui image restores its settings while a plain photo is named as such; the gallery comes page by
page with dates, favourites are starred and filtered, a delete asks first and stays deleted across a
restart, and a link to one entry (``?entry=ID``) opens it, behind the login when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client

from app_fixtures import AppUnderTest, running_app, screenshot
from conftest import SAMPLES, solid_image
from flux_ui.history import Entry
from flux_ui.ui.history_listing import short_date

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
        # Leave the page before its app stops: Gradio's page would otherwise notice the lost connection and
        # reload itself when the second app answers on the same port, aborting the navigation below.
        page.goto("about:blank")
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
        # downloaded under the saved file's own name, which says what it is: date, model, prompt, seed
        assert download.value.suggested_filename == saved.name
        assert saved.name.endswith(f"-flux2-pro-paper-boat-on-rainy-street-s{seed}-{saved.stem[-8:]}.jpg")
        assert second.emulator.requests() == []  # listed from disk, nothing made again


def test_reuse_settings_loads_the_entry_into_its_tab(app: AppUnderTest, page, made: dict[str, Entry]) -> None:
    heron = made["a blue heron standing in morning fog"]
    open_history(page, app.url)
    assert page.locator(GRID).count() == len(MADE)
    first_caption = page.locator(GRID).first.get_attribute("alt")
    lighthouse = made["a lighthouse at dusk"]
    assert first_caption == f"FLUX.1 [schnell] · {short_date(lighthouse.created)} · a lighthouse at dusk · seed 44"
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


# --- pages, dates, favourites, delete, links ---------------------------------------------------------

PAGED = 30  # more than one page of the gallery (24)


def fill(history, count: int = PAGED) -> list[Entry]:
    """``count`` saved images, oldest first, as the tabs save them (small ones: the page is what is tested)."""
    from flux_ui.client.core import GenerationResult, Timings
    from flux_ui.images import inspect_image
    from flux_ui.registry import Route

    saved = []
    for i in range(count):
        image = solid_image((i * 8 % 256, 90, 200 - i * 5 % 200), size=(64, 64))
        model = ("FLUX.2-pro", "FLUX.1-schnell")[i % 2]
        result = GenerationResult(
            image=image, info=inspect_image(image), model=model, deployment=model, route=Route.BFL,
            prompt=f"picture number {i}", seed=1000 + i, params={"seed": 1000 + i}, params_sent={}, references=(),
            adjustments=(), warnings=(), service_cost=None, cost_estimate_usd=None, input_mp=None, output_mp=None,
            revised_prompt=None, attempts=1, timings=Timings())
        saved.append(history.save(result, "text-to-image"))
    return saved


def grid_count(page) -> int:
    return page.locator(GRID).count()


def gallery_is_not_a_scroll_box(page) -> bool:
    return page.evaluate("""() => { const g = document.querySelector('#history-gallery .grid-wrap');
        const s = getComputedStyle(g);
        return s.overflowY !== 'scroll' && s.overflowY !== 'auto' && g.scrollHeight <= g.clientHeight + 1; }""")


def test_pages_dates_favourites_and_a_delete_that_asks_and_stays(page, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    with running_app(outputs) as first:
        saved = fill(first.runtime.history)
        open_history(page, first.url)
        page.wait_for_function(f"document.querySelectorAll('{GRID}').length === 24")
        assert "30 images, newest first" in page.inner_text("#history-status")
        page.wait_for_function("document.querySelector('#history-page').innerText === 'Page 1 of 2'")
        assert gallery_is_not_a_scroll_box(page)  # the page scrolls, not a box inside it
        newest = saved[-1]
        assert page.locator(GRID).first.get_attribute("alt") == (
            f"FLUX.1 [schnell] · {short_date(newest.created)} · picture number 29 · seed 1029")  # the date shown
        assert not page.is_enabled("#history-newer") and page.is_enabled("#history-older")
        screenshot(page, "history-pages")

        page.click("#history-older")
        page.wait_for_function("document.querySelector('#history-page').innerText === 'Page 2 of 2'")
        page.wait_for_function(f"document.querySelectorAll('{GRID}').length === 6")
        assert page.is_enabled("#history-newer") and not page.is_enabled("#history-older")
        assert page.locator(GRID).last.get_attribute("alt").endswith("picture number 0 · seed 1000")

        # star one, see it marked, and filter to the favourites
        thumbnail(page, "picture number 3 ").click()
        page.wait_for_function("document.querySelector('#history-details').innerText.includes('seed 1003')")
        page.click("#history-favourite")
        page.wait_for_function("document.querySelector('#history-favourite').innerText.includes('Remove from')")
        assert first.runtime.history.get(saved[3].id).favourite
        page.wait_for_function(f"[...document.querySelectorAll('{GRID}')].some(e => e.alt.startsWith('★ ') && "
                               "e.alt.includes('picture number 3 '))")
        page.check("#history-favourites input")
        page.wait_for_function(f"document.querySelectorAll('{GRID}').length === 1")
        assert "1 favourite image" in page.inner_text("#history-status")
        page.uncheck("#history-favourites input")
        page.wait_for_function(f"document.querySelectorAll('{GRID}').length === 24")

        # delete asks first; "Keep it" keeps it
        doomed = saved[28]
        thumbnail(page, "picture number 28 ").click()
        page.wait_for_function("document.querySelector('#history-details').innerText.includes('seed 1028')")
        page.click("#history-delete")
        page.wait_for_selector("#history-confirm", state="visible")
        question = page.inner_text("#history-confirm-text")
        assert "Delete this image for good?" in question and doomed.path.name in question
        screenshot(page, "history-delete-confirm")
        page.click("#history-keep")
        page.wait_for_selector("#history-confirm", state="hidden")
        assert "nothing was deleted" in page.inner_text("#history-said")
        assert doomed.path.is_file() and first.runtime.history.get(doomed.id) is not None

        page.click("#history-delete")
        page.click("#history-confirm-delete")
        page.wait_for_function("document.querySelector('#history-said').innerText.startsWith('Deleted ')")
        assert doomed.path.name in page.inner_text("#history-said")
        page.wait_for_function("document.querySelector('#history-status').innerText.includes('29 images')")
        assert thumbnail(page, "picture number 28 ").count() == 0
        assert page.inner_text("#history-details").startswith("Select an image")
        assert not doomed.path.exists() and first.runtime.history.get(doomed.id) is None

    with running_app(outputs) as second:  # a restart does not bring it back, nor list a missing file
        open_history(page, second.url)
        page.wait_for_function("document.querySelector('#history-status').innerText.includes('29 images')")
        assert not doomed.path.exists() and second.runtime.history.get(doomed.id) is None
        assert thumbnail(page, "picture number 28 ").count() == 0
        assert second.runtime.history.get(saved[3].id).favourite  # the star survived too


def test_a_link_opens_that_entry_on_its_page(browser, tmp_path: Path) -> None:
    with running_app(tmp_path / "outputs") as app:
        saved = fill(app.runtime.history)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            old = saved[2]  # on the second page
            page.goto(f"{app.url}/?entry={old.id}")
            page.wait_for_function("document.querySelector('#history-details')?.innerText.includes('seed 1002')")
            assert page.get_by_role("tab", name="History").get_attribute("aria-selected") == "true"
            page.wait_for_function("document.querySelector('#history-page')?.innerText === 'Page 2 of 2'")
            assert "picture number 2 " in page.get_attribute("#history-gallery .media-button img", "alt")
            assert page.input_value("#history-prompt textarea") == old.prompt
            link = f"{app.url}/?entry={old.id}"
            page.wait_for_function("([sel, v]) => document.querySelector(sel).value === v",
                                   arg=["#history-link textarea, #history-link input", link])
            screenshot(page, "history-entry-link")

            # another entry, picked in the preview's strip: its own link, copied
            page.locator("#history-gallery button.thumbnail-small:has(img[src*='-picture-number-5-'])").click()
            page.wait_for_function("document.querySelector('#history-details')?.innerText.includes('seed 1005')")
            page.click("#history-copy-link")
            page.wait_for_function("document.querySelector('#history-said')?.innerText.includes('Link copied')")
            assert page.evaluate("navigator.clipboard.readText()") == f"{app.url}/?entry={saved[5].id}"

            page.goto(f"{app.url}/?entry=20200101-000000-deadbeef")
            page.wait_for_function("document.querySelector('#history-status')?.innerText.includes('not in History')")
            assert page.inner_text("#history-details").startswith("Select an image")
            page.goto(app.url)  # no link: the page opens on its first tab, as ever
            page.wait_for_selector("#t2i-prompt")
            assert page.get_by_role("tab", name="Text to image").get_attribute("aria-selected") == "true"
        finally:
            context.close()


def test_a_link_is_behind_the_login(page, tmp_path: Path) -> None:
    password = "a-long-passphrase-for-this-test-9"
    with running_app(tmp_path / "outputs", env={"FLUX_UI_USERS": f"alice:{password}"}) as app:
        saved = fill(app.runtime.history, 3)
        page.goto(f"{app.url}/?entry={saved[0].id}")
        page.wait_for_selector("input[type=password]")
        assert page.locator("#history-details").count() == 0  # the login page, nothing of History
        page.fill("input[type=text]", "alice")
        page.fill("input[type=password]", password)
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#history-details')?.innerText.includes('seed 1000')")
        assert "?entry=" in page.url and page.input_value("#history-prompt textarea") == saved[0].prompt
