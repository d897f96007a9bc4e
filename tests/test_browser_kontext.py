"""Kontext edits in a real browser: a chain with a step back, the Image API route, a refusal."""

from __future__ import annotations

import pytest
from PIL import Image, ImageStat

from app_fixtures import PAINTED, AppUnderTest, overlaps, screenshot
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
    page.wait_for_function("t => document.querySelector('#kontext-status')?.innerText.includes(t)", arg=text)


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
    page.wait_for_selector("#kontext-seed-group", state="visible")
    page.get_by_label("Image API edits").check()
    page.wait_for_function("document.querySelector('#kontext-route-note').innerText.includes('not sent')")
    page.wait_for_selector("#kontext-seed-group", state="hidden")
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


def group_of(app: AppUnderTest, prompt: str) -> dict:
    entry = next(e for e in app.runtime.history.list() if e.prompt == prompt)
    return entry.settings["group"]


def test_the_trail_comes_back_after_a_reload_in_this_browser_only(app: AppUnderTest, page, browser) -> None:
    open_tab(page, app)
    run_edit(page, "make it dusk, keep the astronaut", "Added edit 1")
    page.click("#kontext-use-result")
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('astronaut ◀ input now')")
    run_edit(page, "add a full moon", "Added edit 2")
    page.reload()
    page.get_by_role("tab", name="Kontext edit").click()
    wait_for_status(page, "back from History (2 edits)")
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('full moon')")
    trail = page.inner_text("#kontext-trail-list [data-testid=markdown]").splitlines()
    assert trail == ["original", "edit 1: make it dusk, keep the astronaut ◀ input now", "edit 2: add a full moon"]
    assert page.locator("#kontext-trail .thumbnail-item").count() == 3
    assert page.input_value("#kontext-prompt textarea") == "add a full moon"
    page.wait_for_selector("#kontext-input img")
    page.wait_for_selector("#kontext-result img")
    screenshot(page, "kontext-restored")

    page.click("#kontext-use-result")  # the chain goes on from the restored trail
    page.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('moon ◀ input now')")
    run_edit(page, "add a comet", "Added edit 3")
    second = next(e for e in app.runtime.history.list() if e.prompt == "add a full moon")
    ref = logged(app, "add a comet")["references"][0]
    assert ref["mean_rgb"] == pytest.approx(mean_rgb(second.path), abs=2.0)  # edit 2's picture went out
    chain = group_of(app, "make it dusk, keep the astronaut")
    assert chain["kind"] == "kontext-trail" and chain["step"] == 1
    assert group_of(app, "add a full moon") == {**chain, "step": 2}
    assert group_of(app, "add a comet") == {**chain, "step": 3}
    page.click("#kontext-trail .thumbnail-item >> nth=0")  # the original came back too
    wait_for_status(page, "Stepped back: original is the input now")

    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # another browser: nothing of it
    try:
        other = context.new_page()
        other.set_default_timeout(20_000)
        open_tab(other, app, "horse.png")
        run_edit(other, "paint the horse gold", "Added edit 1")
        other.wait_for_function("document.querySelector('#kontext-trail-list').innerText.includes('horse gold')")
        lines = other.inner_text("#kontext-trail-list [data-testid=markdown]").splitlines()
        assert lines == ["original ◀ input now", "edit 1: paint the horse gold"]
        assert group_of(app, "paint the horse gold")["id"] != chain["id"]
    finally:
        context.close()


def test_the_labels_do_not_cover_the_pictures(app: AppUnderTest, page) -> None:
    open_tab(page, app, "rocket.jpg")  # a wide picture, and so a wide result
    run_edit(page, "make it dawn", "Added edit 1")
    page.wait_for_function("document.querySelector('#kontext-result img')?.complete")
    for width in (1400, 420):
        page.set_viewport_size({"width": width, "height": 1000})
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        for box in ("#kontext-input", "#kontext-result"):
            label = page.locator(f"{box} > label[data-testid=block-label]")
            box_of = label.bounding_box()
            assert box_of is not None and box_of["width"] > 0
            painted = page.locator(f"{box} img").evaluate(PAINTED)
            assert painted[2] > 100 and painted[3] > 50, (box, painted)
            edge = [box_of["x"], box_of["y"], box_of["width"], box_of["height"]]
            assert not overlaps(edge, painted), (box, width, edge, painted)
    page.set_viewport_size({"width": 1400, "height": 1000})
    screenshot(page, "kontext-wide")


def test_icon_only_buttons_on_the_tab_have_names(app: AppUnderTest, page) -> None:
    open_tab(page, app, "coffee.png")
    run_edit(page, "turn it into tea", "Added edit 1")
    buttons = page.evaluate("""() => [...document.querySelector('#kontext-input').closest('[role=tabpanel]')
        .querySelectorAll('button')].filter(b => b.offsetParent && !/\\p{L}/u.test(b.innerText))
        .map(b => ({label: b.getAttribute('aria-label') || b.querySelector('img')?.alt, title: b.title,
                    ours: !!b.closest('.flux-icon')}))""")
    assert len(buttons) >= 5  # remove, fullscreen, download, upload, paste, the result (named by its alt text)
    assert all(b["label"] for b in buttons), buttons
    assert all(b["title"] == b["label"] for b in buttons if b["ours"]), buttons


def test_reuse_from_history_brings_back_the_input_image_and_keeps_it(app: AppUnderTest, page) -> None:
    open_tab(page, app, "chelsea.png")
    run_edit(page, "give the cat a crown", "Added edit 1")
    page.click("#kontext-use-result")
    run_edit(page, "make the crown gold", "Added edit 2")
    page.reload()  # History first: the tab (and its trail) are not shown yet
    page.get_by_role("tab", name="History").click()
    page.locator("#history-gallery button.thumbnail-lg:has(img[alt*='give the cat a crown'])").first.click()
    page.wait_for_selector("#history-reuse:not([disabled])")
    page.click("#history-reuse")
    wait_for_status(page, "input image they edited loaded")
    page.wait_for_function("document.querySelector('#kontext-trail-list')?.innerText.includes('crown gold')")
    assert page.input_value("#kontext-prompt textarea") == "give the cat a crown"  # the reused one, not the trail's
    lines = page.inner_text("#kontext-trail-list [data-testid=markdown]").splitlines()
    assert lines[0] == "original ◀ input now"  # the reused input is the trail's original, and it stayed
    before = len(app.emulator.requests())
    page.click("#kontext-run")
    wait_for_status(page, "New branch from original")
    sent = app.emulator.requests()[before:]
    first = next(r for r in app.emulator.requests() if r.get("prompt") == "give the cat a crown")
    assert len(sent) == 1 and sent[0]["references"] == first["references"]  # the original picture went out again


def test_the_seed_box_says_random_while_randomize_is_on(app: AppUnderTest, page) -> None:
    open_tab(page, app)
    page.click("#kontext-more button:has-text('More parameters')")
    assert page.input_value("#kontext-seed-random textarea, #kontext-seed-random input") == ""
    assert page.is_visible("#kontext-seed-random") and not page.is_visible("#kontext-seed input")
    page.click("#kontext-randomize input")
    page.wait_for_selector("#kontext-seed input", state="visible")
    assert not page.is_visible("#kontext-seed-random")
    page.fill("#kontext-seed input", "4242")
    run_edit(page, "seeded edit", "Added edit 1")
    assert logged(app, "seeded edit")["params"]["seed"] == 4242
    screenshot(page, "kontext-seed-typed")
