"""The page on a phone (390×844 in Chromium): every tab in the bar, a compact header, and each run's
result brought into view below its long form."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app_fixtures import AppUnderTest, screenshot
from conftest import SAMPLES
from flux_ui.emulator import Fault
from flux_ui.ui import TABS

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
#: An element each tab shows once it is open.
OPENS = {"t2i": "#t2i-prompt", "edit": "#edit-prompt", "kontext": "#kontext-prompt", "compare": "#compare-prompt",
         "grid": "#grid-prompt", "history": "#history-gallery", "usage": "#usage-summary"}
#: The most the logo, name and purpose line may take on a phone (one line of 28 px), and the banner (two
#: short lines). Before, they took 93 and 181 px, and the tab bar began halfway down the screen.
HEADER_MAX_PX, BANNER_MAX_PX = 40, 64

#: The result's top is on the screen, near its top (or as near as the page's end lets it come).
IN_VIEW = """id => { const r = document.getElementById(id).getBoundingClientRect();
                     const end = scrollY + innerHeight >= document.documentElement.scrollHeight - 2;
                     return r.top >= -2 && (r.top < innerHeight / 3 || end); }"""


@pytest.fixture
def phone(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def test_every_tab_is_in_the_bar_and_opens(app: AppUnderTest, phone) -> None:
    assert set(OPENS) == {spec.id for spec in TABS}  # a new tab gets its line here
    phone.goto(app.url)
    phone.wait_for_selector("#tabs [role=tab]")
    assert phone.locator("#tabs button[aria-label='More tabs']").count() == 0  # Gradio's "…" menu
    for spec in TABS:
        tab = phone.get_by_role("tab", name=spec.label, exact=True)
        box = tab.bounding_box()
        assert tab.is_visible() and box is not None, spec.label
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (spec.label, box)  # no scrolling
        assert box["height"] >= 30, (spec.label, box)  # a target a thumb can hit
        tab.click()
        assert tab.get_attribute("aria-selected") == "true"
        phone.wait_for_selector(OPENS[spec.id], state="visible")
    screenshot(phone, "phone-tabs")


def test_the_header_is_compact_on_a_phone_and_whole_on_a_desktop(app: AppUnderTest, phone) -> None:
    phone.goto(app.url)
    phone.wait_for_selector("#tabs [role=tab]")
    header, banner = phone.locator("#flux-header").bounding_box(), phone.locator("#banner").bounding_box()
    assert header["height"] <= HEADER_MAX_PX and banner["height"] <= BANNER_MAX_PX, (header, banner)
    assert phone.locator("#tabs").bounding_box()["y"] < PHONE["height"] / 4  # the form starts on the first screen
    assert phone.inner_text("#banner").startswith("Local emulator: images are synthetic")
    assert not phone.is_visible("text=To use your Foundry resource")  # how to connect: on a larger screen
    screenshot(phone, "phone-header")
    phone.set_viewport_size({"width": 1400, "height": 1000})
    assert phone.is_visible("text=To use your Foundry resource")
    assert phone.is_visible("text=compare FLUX models side by side")


def with_picture(page, tab: str) -> None:
    """What a tab needs besides a prompt before its run button sends anything."""
    if tab == "kontext":
        page.set_input_files("#kontext-input input[type=file]", str(SAMPLES / "astronaut.png"))
        page.wait_for_selector("#kontext-input img")
    elif tab == "edit":
        with page.expect_file_chooser() as chooser:
            page.click("#edit-add")
        chooser.value.set_files([str(SAMPLES / "chelsea.png")])
        page.wait_for_selector("#edit-card-1 img")


@pytest.mark.parametrize("tab", [spec.id for spec in TABS if spec.id not in ("history", "usage")])  # no run there
def test_a_run_brings_its_result_into_view(app: AppUnderTest, phone, tab: str) -> None:
    label = next(spec.label for spec in TABS if spec.id == tab)
    app.emulator.set_faults("*", [Fault("latency", seconds=0.5)])  # the result arrives after the click
    try:
        phone.goto(app.url)
        phone.get_by_role("tab", name=label, exact=True).click()
        with_picture(phone, tab)
        phone.fill(f"#{tab}-prompt textarea", f"a paper boat on a puddle, seen on a phone ({tab})")
        phone.click(f"#{tab}-run")
        below = phone.evaluate(f"document.getElementById('{tab}-result').getBoundingClientRect().top")
        assert below > PHONE["height"], "the result must start below the screen for this to show anything"
        phone.wait_for_selector(f"#{tab}-result img")
        phone.wait_for_function(IN_VIEW, arg=f"{tab}-result")
    finally:
        app.emulator.set_faults("*", [])
    screenshot(phone, f"phone-{tab}-result")


def test_a_desktop_run_leaves_the_page_where_it_is(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.fill("#t2i-prompt textarea", "a paper boat on a puddle, on a desktop")
    page.click("#t2i-run")
    page.wait_for_selector("#t2i-image img")
    page.wait_for_timeout(500)  # as long as a smooth scroll would take
    assert page.evaluate("scrollY") == 0
