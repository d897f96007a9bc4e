"""Editing with references in a real browser: ten for flex, eight for pro, order kept, nothing dropped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app_fixtures import AppUnderTest, screenshot
from conftest import SAMPLES, solid_files
from flux_ui.registry import MODELS

pytestmark = pytest.mark.browser

#: Eleven colours far apart, so each reference is recognised by its mean colour in the log.
COLOURS = [(230, 25, 25), (25, 230, 25), (25, 25, 230), (230, 230, 25), (230, 25, 230), (25, 230, 230),
           (120, 25, 25), (25, 120, 25), (25, 25, 120), (120, 120, 25), (120, 25, 120)]


@pytest.fixture(scope="module")
def solid(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return solid_files(tmp_path_factory.mktemp("references"), COLOURS)  # solid-01.png, solid-02.png, ...


def colour_of(mean_rgb: list[float]) -> int:
    """The 1-based number of the solid file a logged reference was."""
    distances = [sum(abs(a - b) for a, b in zip(mean_rgb, c, strict=True)) for c in COLOURS]
    assert min(distances) < 12, mean_rgb
    return distances.index(min(distances)) + 1


def open_tab(page, app: AppUnderTest, model: str) -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Edit with references").click()
    page.wait_for_selector("#edit-refs-summary")
    if model != page.input_value("#edit-model input"):
        page.click("#edit-model input")
        page.get_by_role("option", name=MODELS[model].display_name, exact=True).click()
    page.wait_for_function("(name) => document.querySelector('#edit-model input').value === name",
                           arg=MODELS[model].display_name)


def add(page, files: list[str]) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#edit-add")
    chooser.value.set_files(files)


def add_and_wait(page, files: list[str], count: int) -> None:
    add(page, files)
    page.wait_for_selector(f"#edit-card-{count}")


def card_files(page) -> list[str]:
    """The file name shown in each card, in slot order."""
    return page.eval_on_selector_all(
        "[id^='edit-ref-'] img", "imgs => imgs.map(i => decodeURIComponent(i.src).split('/').pop())")


def generate(page, app: AppUnderTest, prompt: str) -> dict:
    """Press Generate and wait for the new caption; the emulator's record of the request."""
    before = page.inner_text("#edit-info")
    page.fill("#edit-prompt textarea", prompt)
    page.click("#edit-run")
    page.wait_for_function(
        "(old) => { const t = document.querySelector('#edit-info').innerText; return t !== old && t.includes('seed') }",
        arg=before)
    deadline = time.monotonic() + 5  # under load the page can be a step ahead of this test's read
    while not (logged := [r for r in app.emulator.requests() if r.get("prompt") == prompt]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(logged) == 1 and logged[0]["status"] == 200
    return logged[0]


def test_flex_takes_ten_refuses_an_eleventh_and_switching_to_pro_drops_nothing(app: AppUnderTest, page,
                                                                               solid: list[str]) -> None:
    """Also: the eleventh's note goes once the model changes, and "over the limit" means nothing is sent."""
    open_tab(page, app, "FLUX.2-flex")
    add_and_wait(page, solid[:10], 10)
    add(page, solid[10:])
    page.wait_for_function("document.querySelector('#edit-refs-status').innerText.includes('not added')")
    assert "FLUX.2 [flex] takes at most 10 reference images; image 11 was not added" in page.inner_text(
        "#edit-refs-status")
    assert page.locator("[id^='edit-card-']").count() == 10  # nothing lost, nothing extra
    sent = generate(page, app, "ten colours for flex")
    assert sent["model"] == "FLUX.2-flex" and sent["params"]["steps"] == 50
    assert [colour_of(r["mean_rgb"]) for r in sent["references"]] == list(range(1, 11))
    assert page.is_visible("#edit-param-guidance") and page.is_visible("#edit-param-steps")

    # flex → pro with ten: nothing will be sent until two go; the eleventh's note no longer applies.
    page.click("#edit-model input")
    page.get_by_role("option", name="FLUX.2 [pro]", exact=True).click()
    notice = ("FLUX.2 [pro] takes at most 8 reference images and there are 10 (images 9 and 10 are over the limit): "
              "nothing will be sent until you remove two or switch back to FLUX.2 [flex]")
    page.wait_for_function("(t) => document.querySelector('#edit-refs-summary').innerText.includes(t)", arg=notice)
    page.wait_for_function("document.querySelector('#edit-refs-status').innerText.trim() === ''")
    assert page.is_visible("#edit-ref-9-unsent") and page.is_visible("#edit-ref-10-unsent")
    assert page.inner_text("#edit-ref-9-unsent").strip() == "⚠️ over the limit"  # the notice's words
    assert not page.is_visible("#edit-ref-8-unsent")
    page.wait_for_selector("#edit-param-guidance", state="hidden")  # the controls follow the model too
    assert page.locator("[id^='edit-card-']").count() == 10  # the switch dropped nothing
    before = len(app.emulator.requests())
    page.fill("#edit-prompt textarea", "pro with too many")
    page.click("#edit-run")
    page.wait_for_function("(t) => document.querySelector('#edit-status').innerText.includes(t)", arg=notice)
    assert len(app.emulator.requests()) == before  # refused here, never sent as a subset

    # Remove two: FLUX.2 [pro] then takes the eight.
    page.click("#edit-ref-10-remove")
    page.click("#edit-ref-9-remove")
    page.wait_for_selector("#edit-card-9", state="detached")
    assert "will not be sent" not in page.inner_text("#edit-refs")
    sent = generate(page, app, "eight colours for pro")
    assert sent["model"] == "FLUX.2-pro"
    assert [colour_of(r["mean_rgb"]) for r in sent["references"]] == list(range(1, 9))


def test_reordered_replaced_and_pasted_references_are_sent_as_shown(app: AppUnderTest, page,
                                                                   solid: list[str]) -> None:
    open_tab(page, app, "FLUX.2-pro")
    add_and_wait(page, solid[:4], 4)
    page.click("#edit-ref-3-earlier")  # image 3 to the front in two quick clicks: neither may be lost
    page.click("#edit-ref-2-earlier")
    page.wait_for_function("document.querySelector('#edit-ref-1 img')?.src.includes('solid-03')")
    assert card_files(page) == ["solid-03.png", "solid-01.png", "solid-02.png", "solid-04.png"]

    with page.expect_file_chooser() as chooser:  # replace image 4 alone
        page.click("#edit-ref-4-replace")
    chooser.value.set_files(solid[6])
    page.wait_for_function("document.querySelector('#edit-ref-4 img')?.src.includes('solid-07')")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    page.evaluate("""async (rgb) => {
        const canvas = Object.assign(document.createElement('canvas'), {width: 48, height: 48});
        const g = canvas.getContext('2d'); g.fillStyle = `rgb(${rgb})`; g.fillRect(0, 0, 48, 48);
        const blob = await new Promise(done => canvas.toBlob(done, 'image/png'));
        await navigator.clipboard.write([new ClipboardItem({'image/png': blob})]);
    }""", ",".join(map(str, COLOURS[9])))
    page.click("#edit-paste button[aria-label='Paste from clipboard']")  # the box's other source
    page.wait_for_selector("#edit-card-5")
    page.wait_for_selector("#edit-paste img", state="detached")  # the paste field cleared itself
    assert card_files(page)[:4] == ["solid-03.png", "solid-01.png", "solid-02.png", "solid-07.png"]

    sent = generate(page, app, "reordered colours")
    assert [colour_of(r["mean_rgb"]) for r in sent["references"]] == [3, 1, 2, 7, 10]


def test_a_card_dragged_onto_another_takes_its_place_and_is_sent_there(app: AppUnderTest, page,
                                                                      solid: list[str]) -> None:
    open_tab(page, app, "FLUX.2-pro")
    add_and_wait(page, solid[:4], 4)
    page.locator("#edit-card-3").drag_to(page.locator("#edit-card-1"))  # real mouse moves: HTML drag and drop
    page.wait_for_function("document.querySelector('#edit-ref-1 img')?.src.includes('solid-03')")
    assert card_files(page) == ["solid-03.png", "solid-01.png", "solid-02.png", "solid-04.png"]
    page.locator("#edit-card-1").drag_to(page.locator("#edit-card-4"))  # and the other way, to the end
    page.wait_for_function("document.querySelector('#edit-ref-4 img')?.src.includes('solid-03')")
    assert card_files(page) == ["solid-01.png", "solid-02.png", "solid-04.png", "solid-03.png"]
    assert page.locator(".edit-dragging, .edit-drop-target").count() == 0  # no mark left behind
    sent = generate(page, app, "dragged colours")  # the order moved on the server, not only on the page
    assert [colour_of(r["mean_rgb"]) for r in sent["references"]] == [1, 2, 4, 3]


def test_reuse_settings_brings_the_references_back_in_order(app: AppUnderTest, page, solid: list[str]) -> None:
    open_tab(page, app, "FLUX.2-flex")
    order = [6, 4, 9, 1, 10, 2, 8, 3, 7, 5]  # ten references, not in file order
    add_and_wait(page, [solid[n - 1] for n in order], 10)
    prompt = "the colours again, from History"
    generate(page, app, prompt)
    page.reload()  # a fresh page: nothing left in the cards
    page.get_by_role("tab", name="History").click()
    page.locator(f"#history-gallery button.thumbnail-lg:has(img[alt*='{prompt}'])").click()
    page.click("#history-reuse")
    page.wait_for_selector("#edit-card-10")
    page.wait_for_function("document.querySelector('#edit-ref-10 img')?.complete")
    assert page.input_value("#edit-prompt textarea") == prompt
    assert page.locator("[id^='edit-card-']:visible").count() == 10
    assert "reference images in the order they were sent" in page.inner_text("#edit-status")
    screenshot(page, "edit-reused-ten")
    again = generate(page, app, "the same colours, sent again")  # the same files, in the same order
    assert [colour_of(r["mean_rgb"]) for r in again["references"]] == order
    made = [e for e in app.runtime.history.list() if e.prompt in (prompt, "the same colours, sent again")]
    # two images made from the same ten files: each file stored once
    assert len(made) == 2 and made[0].inputs == made[1].inputs and len(set(made[0].inputs)) == 10


CARD_BUTTONS = {"earlier": "Move image {n} earlier", "later": "Move image {n} later", "replace": "Replace image {n}",
                "remove": "Remove image {n}"}


def test_every_icon_button_says_what_it_does_to_which_image(app: AppUnderTest, page, solid: list[str]) -> None:
    open_tab(page, app, "FLUX.2-pro")
    add_and_wait(page, solid[:3], 3)
    page.wait_for_function("document.querySelector('#edit-ref-3-remove').getAttribute('title') === 'Remove image 3'")
    for n in (1, 2, 3):
        for suffix, words in CARD_BUTTONS.items():
            button = page.locator(f"#edit-ref-{n}-{suffix}")
            assert (button.get_attribute("aria-label"), button.get_attribute("title")) == (words.format(n=n),) * 2
        assert page.get_attribute(f"#edit-ref-{n} button:has(img)", "aria-label").startswith(f"image {n}: drag")
        assert page.locator(f"#edit-ref-{n} button[title='Show image {n} full screen']").count() == 1
    nameless = page.evaluate("""() => {
        const tab = document.querySelector('#edit-refs').closest('[role=tabpanel]');
        return [...tab.querySelectorAll('button')]
            .filter(b => b.offsetParent !== null && !/\\p{L}{2}/u.test(b.innerText))  // shown, no words of its own
            .filter(b => !(b.getAttribute('aria-label') && b.getAttribute('title')))
            .map(b => b.outerHTML.slice(0, 160));
    }""")
    assert nameless == []


CONTRAST = """(selector) => {
    const channels = (c) => c.match(/[\\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => [r, g, b].map((v) => v / 255)
        .map((v) => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const text = document.querySelector(selector);
    let back = text;  // the nearest ancestor with a background of its own
    while (back && (channels(getComputedStyle(back).backgroundColor)[3] ?? 1) === 0) back = back.parentElement;
    const [a, b] = [getComputedStyle(text).color, back ? getComputedStyle(back).backgroundColor : 'rgb(255,255,255)']
        .map((c) => luminance(channels(c)));
    return {ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), px: parseFloat(getComputedStyle(text).fontSize)};
}"""


def test_the_paste_box_opens_ready_to_take_a_file(app: AppUnderTest, page, solid: list[str]) -> None:
    open_tab(page, app, "FLUX.2-flex")
    area = "#edit-paste [data-testid='upload-text']"
    assert page.is_visible(area)  # an upload area at once: no source to pick first
    for part in ("#edit-paste [data-testid='block-label']", area):
        seen = page.evaluate(CONTRAST, part)
        assert seen["ratio"] >= 4.5 and seen["px"] >= 14, (part, seen)
    with page.expect_file_chooser() as chooser:  # one click on it browses
        page.click(area)
    chooser.value.set_files(solid[4])
    page.wait_for_selector("#edit-card-1")
    page.wait_for_selector(area)  # cleared, ready for the next
    page.evaluate(DROPPED, "#edit-paste button.upload-container")  # a file dropped on it, as from the desktop
    page.wait_for_selector("#edit-card-2")
    page.focus("#edit-paste button.upload-container")  # and Ctrl+V with a picture on the clipboard
    page.evaluate(PASTED, "#edit-paste button.upload-container")
    page.wait_for_selector("#edit-card-3")
    assert card_files(page)[0] == "solid-05.png" and len(card_files(page)) == 3
    assert page.input_value("#edit-prompt textarea") == ""  # nothing went anywhere else


PICTURE = """const canvas = Object.assign(document.createElement('canvas'), {width: 32, height: 32});
        const g = canvas.getContext('2d'); g.fillStyle = 'rgb(25, 25, 230)'; g.fillRect(0, 0, 32, 32);
        const blob = await new Promise(done => canvas.toBlob(done, 'image/png'));
        const data = new DataTransfer();
        data.items.add(new File([blob], 'picture.png', {type: 'image/png'}));
        const target = document.querySelector(selector);"""
DROPPED = f"""async (selector) => {{ {PICTURE}
        for (const type of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(type, {{dataTransfer: data, bubbles: true, cancelable: true}}));
    }}"""
PASTED = f"""async (selector) => {{ {PICTURE}
        target.dispatchEvent(new ClipboardEvent('paste', {{clipboardData: data, bubbles: true, cancelable: true}}));
    }}"""


def test_a_broken_upload_is_named_and_everything_is_kept(app: AppUnderTest, page, solid: list[str],
                                                         tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(Path(solid[0]).read_bytes()[:60])  # a truncated PNG
    open_tab(page, app, "FLUX.2-flex")
    add_and_wait(page, [solid[0], str(broken), solid[1]], 3)
    before = len(app.emulator.requests())
    page.fill("#edit-prompt textarea", "with a broken one")
    page.press("#edit-prompt textarea", "Control+Enter")  # the shortcut presses Generate
    page.wait_for_function("document.querySelector('#edit-refs-status').innerText.includes('image 2')")
    assert "image 1" not in page.inner_text("#edit-refs-status")
    assert len(app.emulator.requests()) == before
    assert page.locator("[id^='edit-card-']").count() == 3
    assert page.input_value("#edit-prompt textarea") == "with a broken one"


def test_sample_photos_screenshot(app: AppUnderTest, page) -> None:
    photos = [str(SAMPLES / name) for name in
              ("chelsea.png", "coffee.png", "astronaut.png", "horse.png", "rocket.jpg")]
    open_tab(page, app, "FLUX.2-flex")
    add_and_wait(page, photos, 5)
    page.click("#edit-ref-3-earlier")  # the astronaut to image 2
    page.wait_for_function("document.querySelector('#edit-ref-2 img')?.src.includes('astronaut')")
    sent = generate(page, app, "the astronaut from image 2 holding the coffee from image 3, "
                               "with the cat from image 1 on a horse, a rocket behind")
    assert [r["index"] for r in sent["references"]] == [1, 2, 3, 4, 5]
    assert card_files(page) == ["chelsea.png", "astronaut.png", "coffee.png", "horse.png", "rocket.jpg"]
    page.wait_for_selector("#edit-image img")
    screenshot(page, "edit")
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "edit-narrow")
