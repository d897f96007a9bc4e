"""The Grid tab in a real browser: axes typed and checked, the plan line, the run, the contact sheet and the ZIP."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from app_fixtures import SCREENSHOTS, AppUnderTest, running_app, screenshot
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS

pytestmark = pytest.mark.browser

PRO, FLEX, SCHNELL, PRO_11 = "FLUX.2-pro", "FLUX.2-flex", "FLUX.1-schnell", "FLUX-1.1-pro"
#: Each deployment at its model's default tier, as a fresh Foundry deployment has it (FLUX.2 [flex]: 5 RPM).
TIERS = {m: Quota.from_rpm(s.rpm_tiers[s.default_tier]) for m, s in MODELS.items() if s.default_tier}


@pytest.fixture(scope="module")
def tiers_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    """The app with the quotas of the default tiers, so the plan line and progress read as they would."""
    with running_app(tmp_path_factory.mktemp("outputs"), quotas=TIERS) as running:
        yield running


def open_tab(page, app: AppUnderTest) -> None:
    page.goto(app.url)
    page.get_by_role("tab", name="Grid").click()
    page.wait_for_selector("#grid-prompt textarea", state="visible")


def choose(page, axis: str, label: str) -> None:
    page.click(f"#grid-{axis}-axis input")
    page.get_by_role("option", name=label, exact=True).click()


def type_values(page, axis: str, text: str) -> None:
    page.locator(f"#grid-{axis}-values").locator("input, textarea").first.fill(text)


def wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)", arg=[selector, text])


def test_a_grid_from_its_axes_to_the_contact_sheet(app: AppUnderTest, page) -> None:
    prompt = "a ceramic fox on a windowsill, morning light"
    open_tab(page, app)
    page.fill("#grid-prompt textarea", prompt)
    wait_text(page, "#grid-x-check", "✓ 2 values")  # X is the model axis, two models, as the tab opens
    choose(page, "y", "Seed")
    type_values(page, "y", "1, 2, x")
    wait_text(page, "#grid-y-check", "seed value 'x' is not a number")  # checked as it is typed
    wait_text(page, "#grid-plan", "⚠️")
    type_values(page, "y", "1, 2, 3")
    wait_text(page, "#grid-y-check", "✓ 3 values: 1 · 2 · 3")
    wait_text(page, "#grid-plan", "Before Run: 6 images · ≈ $")
    assert not page.is_visible("#grid-confirm")  # six images need no confirmation
    page.click("#grid-run")
    wait_text(page, "#grid-status", "Done: 6 of 6 images")
    page.wait_for_selector("#grid-sheet img")
    assert page.locator("#grid-gallery img").count() == 6
    gallery = page.inner_text("#grid-gallery")
    assert f"{MODELS[FLEX].display_name} · seed 3" in gallery
    links = page.eval_on_selector_all("#grid-files a", "els => els.map(e => e.href)")
    assert any(link.endswith(".zip") for link in links) and any(link.endswith(".png") for link in links)
    archive = httpx.get(next(link for link in links if link.endswith(".zip")), timeout=30)
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".jpg")]) == 6 and "manifest.json" in zf.namelist()
    sheet = httpx.get(page.get_attribute("#grid-sheet img", "src") or "", timeout=30).content
    with Image.open(io.BytesIO(sheet)) as img:
        assert img.format == "PNG" and img.width > 700
    sent = [r for r in app.emulator.requests() if r["prompt"] == prompt]
    assert sorted((r["model"], r["params"]["seed"]) for r in sent) == sorted(
        (m, s) for m in (PRO, FLEX) for s in (1, 2, 3))


def test_a_large_grid_waits_for_its_confirmation(app: AppUnderTest, page) -> None:
    prompt = "a paper lantern, many seeds"
    open_tab(page, app)
    page.fill("#grid-prompt textarea", prompt)
    choose(page, "y", "Seed")
    type_values(page, "y", "1-16 (+1)")
    wait_text(page, "#grid-plan", "32 images")
    page.wait_for_selector("#grid-confirm", state="visible")
    wait_text(page, "#grid-confirm", "I understand this sends 32 requests")
    page.click("#grid-run")
    wait_text(page, "#grid-status", "Not sent: this grid sends 32 requests")
    assert [r for r in app.emulator.requests() if r["prompt"] == prompt] == []


def test_the_plan_progress_and_results_on_the_default_tiers(tiers_app: AppUnderTest, page) -> None:
    """The README's screenshots: three models by two seeds, FLUX.2 [flex]'s second cell paced 12 s."""
    prompt = "a ceramic fox on a windowsill, morning light"
    open_tab(page, tiers_app)
    page.fill("#grid-prompt textarea", prompt)
    type_values(page, "x", f"{PRO}, {FLEX}, {SCHNELL}")
    choose(page, "y", "Seed")
    type_values(page, "y", "1, 2")
    wait_text(page, "#grid-plan", "≈ 24 s (FLUX.2 [flex] low tier: 5 per minute)")  # one wait of 12 s, then one
    page.click("#grid-run")
    wait_text(page, "#grid-status", "5 of 6 done")  # the flex cell waiting for its quota
    assert "left" in page.inner_text("#grid-status") and page.is_visible("#grid-stop")
    wait_text(page, "#grid-status", "Done: 6 of 6 images")
    page.wait_for_selector("#grid-sheet img")
    page.wait_for_function("document.querySelector('#grid-sheet img')?.complete")
    sheet = httpx.get(page.get_attribute("#grid-sheet img", "src") or "", timeout=30).content
    screenshot(page, "grid")
    if os.environ.get("FLUX_UI_SCREENSHOTS"):  # the README shows the sheet itself beside the tab
        (SCREENSHOTS / "contact-sheet.png").write_bytes(sheet)


def test_stop_sends_nothing_more_and_says_what_was_sent(tiers_app: AppUnderTest, page) -> None:
    prompt = "a grid stopped after its first cell"
    open_tab(page, tiers_app)
    page.fill("#grid-prompt textarea", prompt)
    choose(page, "x", "Seed")
    type_values(page, "x", "1, 2, 3")
    page.click("#grid-model input")
    page.get_by_role("option", name=MODELS[PRO_11].display_name, exact=True).click()  # 1 request per 10 s
    wait_text(page, "#grid-plan", "3 images")
    page.click("#grid-run")
    wait_text(page, "#grid-status", "1 of 3 done")
    page.click("#grid-stop")
    wait_text(page, "#grid-status", "Stopped: 1 of 3 sent; it is saved in History. Nothing more is sent.")
    deadline = time.monotonic() + 5
    while len(tiers_app.runtime.jobs) and time.monotonic() < deadline:  # the paced cells, cancelled unsent
        time.sleep(0.1)
    assert len(tiers_app.runtime.jobs) == 0
    assert len([r for r in tiers_app.emulator.requests() if r["prompt"] == prompt]) == 1
    assert not page.is_visible("#grid-stop")
