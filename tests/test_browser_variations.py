"""Variations in a real browser: four images from one click fill the gallery, the contact sheet and the ZIP
are offered and download through the app, and Stop says how many were sent."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from app_fixtures import AppUnderTest, running_app, screenshot
from flux_ui.emulator import Fault
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS
from flux_ui.ui import variations

pytestmark = pytest.mark.browser


def set_count(page, prefix: str, count: int) -> None:
    box = page.locator(f"#{prefix}-count input[type=number]")
    box.fill(str(count))
    box.press("Enter")
    page.wait_for_function("([id, n]) => document.querySelector(`#${id} input[type=range]`).value === String(n)",
                           arg=[f"{prefix}-count", count])


def choose_seed(page, seed: int) -> None:
    page.uncheck("#t2i-randomize input")
    page.fill("#param-seed input", str(seed))
    page.check("#t2i-consecutive input")


def test_four_images_fill_the_gallery_and_the_sheet_and_zip_download(app: AppUnderTest, page) -> None:
    page.goto(app.url)
    page.wait_for_selector("#t2i-count")
    assert not page.is_visible("#t2i-gallery") and page.is_visible("#t2i-image")
    set_count(page, "t2i", 4)
    choose_seed(page, 4100)
    prompt = "a paper lantern festival over a river at night, four ways"
    page.fill("#t2i-prompt textarea", prompt)
    page.click("#t2i-run")
    page.wait_for_selector("#t2i-gallery", state="visible")
    page.wait_for_function("document.querySelectorAll('#t2i-gallery img').length === 4")
    page.wait_for_selector("#t2i-sheet", state="visible")
    page.wait_for_selector("#t2i-zip", state="visible")
    assert not page.is_visible("#t2i-image")
    captions = page.inner_text("#t2i-gallery")
    assert all(f"seed {s}" in captions for s in range(4100, 4104)), captions
    assert "4 of 4 images" in page.inner_text("#t2i-info") and "seeds 4100–4103" in page.inner_text("#t2i-info")
    sent = [r for r in app.emulator.requests() if r.get("prompt") == prompt]
    assert sorted(r["params"]["seed"] for r in sent) == [4100, 4101, 4102, 4103]
    saved = [e for e in app.runtime.history.list(text=prompt)]
    assert len(saved) == 4 and len({e.settings["group"]["id"] for e in saved}) == 1

    with page.expect_download() as sheet:
        page.click("#t2i-sheet")
    with Image.open(sheet.value.path()) as drawn:
        assert drawn.format == "PNG" and drawn.width > drawn.height  # one row of four
    with page.expect_download() as archive:
        page.click("#t2i-zip")
    with zipfile.ZipFile(archive.value.path()) as zf:
        images = [n for n in zf.namelist() if n.endswith(".jpg")]
        assert len(images) == 4 and "manifest.json" in zf.namelist()
        originals = {e.path.read_bytes() for e in saved}
        assert {zf.read(n) for n in images} == originals  # byte for byte
    page.set_viewport_size({"width": 1400, "height": 1200})
    screenshot(page, "variations")


def test_the_exports_are_served_from_the_outputs_folder_through_the_file_gate(app: AppUnderTest, page) -> None:
    """What the run wrote under the outputs folder is served there, as the images are; nothing else is."""
    exports = sorted((app.outputs / variations.EXPORTS).rglob("variations-*"))
    if not exports:
        pytest.skip("no run of variations in this module yet")
    page.goto(app.url)
    for path in exports:
        answer = page.request.get(f"{app.url}/gradio_api/file={path}")
        assert answer.status == 200 and answer.body() == Path(path).read_bytes(), path
    stray = exports[0].with_name("planted.zip")
    stray.write_bytes(b"PK planted")
    assert page.request.get(f"{app.url}/gradio_api/file={stray}").status == 404


def test_stop_says_how_many_were_sent(tmp_path: Path, page) -> None:
    """Two of three fit FLUX.2 [flex]'s quota at once and are slow to answer; Stop leaves the third unsent."""
    model = "FLUX.2-flex"
    with running_app(tmp_path / "outputs", quotas={model: Quota(2, 30.0)}) as app:
        app.emulator.set_faults(model, [Fault("latency", seconds=2.0)])
        page.goto(app.url)
        page.click("#t2i-model input")
        page.get_by_role("option", name=MODELS[model].display_name, exact=True).click()
        set_count(page, "t2i", 3)
        page.fill("#t2i-prompt textarea", "a slow kite over the dunes")
        page.click("#t2i-run")
        page.wait_for_function("document.querySelector('#t2i-status').innerText.includes('2 sent')")
        page.click("#t2i-stop")
        page.wait_for_function("document.querySelector('#t2i-status').innerText.includes('Stopped: 2 of 3 sent')")
        status = page.inner_text("#t2i-status")
        assert "those 2 are saved in History" in status and "The other one was not sent" in status, status
        deadline = time.monotonic() + 10
        while len(app.runtime.history.list(text="slow kite")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(app.runtime.history.list(text="slow kite")) == 2  # the two sent arrived after Stop, and are kept
        assert len([r for r in app.emulator.requests() if r.get("prompt") == "a slow kite over the dunes"]) == 2
