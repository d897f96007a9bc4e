"""The Usage tab in a real browser, with two logins: a user sees only their own use, is refused on the Text to
image tab before the request that would pass their daily cap (the emulator sees nothing after it), and never
sees the audit trail; the owner sees every user, the chart by user, the trail and its CSV."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app_fixtures import AppUnderTest, running_app, screenshot
from flux_ui.identity import User
from flux_ui.spend import Ask
from flux_ui.ui.usage_tab import export_csv

pytestmark = pytest.mark.browser
PASSWORDS = {"alice": "alice-long-passphrase-1", "bob": "bob-long-passphrase-22"}
ENV = {"FLUX_UI_USERS": ",".join(f"{u}:{p}" for u, p in PASSWORDS.items()), "FLUX_UI_OWNERS": "alice",
       "FLUX_UI_USER_DAILY_BUDGET_USD": "0.10", "FLUX_UI_DAILY_BUDGET_USD": "5"}

#: How many bars a chart draws with any height (Vega draws each as a path in a g.mark-rect; days without
#: spend are drawn flat).
BARS = ("(sel => [...document.querySelectorAll(`${sel} g.mark-rect path`)]"
        ".filter(bar => bar.getBBox().height > 1).length)")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUnderTest]:
    """The app with alice (the owner) and bob; alice has made two FLUX.2 [pro] images today, bob one
    FLUX1.1 [pro] image ($0.04), recorded as the handlers record them."""
    with running_app(tmp_path_factory.mktemp("outputs"), env=ENV) as app:
        ledger = app.runtime.ledger
        for user, model, prompt, usd in (("alice", "FLUX.2-pro", "alice's secret lighthouse", 0.0315),
                                         ("alice", "FLUX.2-pro", "alice's second lighthouse", 0.0315),
                                         ("bob", "FLUX-1.1-pro", "bob's kite", 0.04)):
            row = ledger.admit(Ask(user, model, model, "bfl", "text-to-image", prompt, usd))
            ledger.settle(row, "image", "", usd, usd * 100)
        yield app


def signed_in(browser: object, app: AppUnderTest, user: str) -> object:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(app.url)
    page.fill("input[type=text]", user)
    page.fill("input[type=password]", PASSWORDS[user])
    page.keyboard.press("Enter")
    page.wait_for_selector("#t2i-prompt textarea")
    return page


def open_usage(page: object, says: str) -> None:
    """Open the tab and wait for its refresh (on opening it) to say ``says``."""
    page.get_by_role("tab", name="Usage", exact=True).click()  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "text => document.querySelector('#usage-summary')?.innerText.includes(text)", arg=says)


def test_a_user_sees_only_their_own_use_and_is_refused_at_their_cap(team: AppUnderTest, browser: object) -> None:
    page = signed_in(browser, team, "bob")
    try:
        page.fill("#t2i-prompt textarea", "bob's paper boat")
        page.click("#t2i-run")
        page.wait_for_selector("#t2i-result img")
        assert [e["prompt"] for e in team.emulator.requests()] == ["bob's paper boat"]
        page.fill("#t2i-prompt textarea", "bob's second paper boat")  # $0.0315 more: past $0.10
        page.click("#t2i-run")
        page.wait_for_function("document.querySelector('#t2i-prompt')?.closest('.column')?.innerText"
                               ".includes('your daily budget of $0.10')")
        assert "has $0.028 left today" in page.inner_text("body")
        assert [e["prompt"] for e in team.emulator.requests()] == ["bob's paper boat"]  # nothing after it
        open_usage(page, "bob spent $0.072, $0.028 left of the $0.10 each user may spend a day")
        summary = page.inner_text("#usage-summary")
        assert "You see your own use" in summary
        today = page.inner_text("#usage-today")
        assert "bob" in today and "FLUX1.1 [pro]" in today and "FLUX.2 [pro]" in today
        assert "alice" not in page.inner_text("body")  # not another user's name, spend or prompt
        assert not page.is_visible("#usage-owner") and not page.is_visible("#usage-by-user")
        # FLUX.2 [pro] is new since the page first drew the chart (FLUX1.1 [pro] only): it is drawn too
        page.wait_for_function(f"{BARS}('#usage-by-model') === 2")
        legend = page.inner_text("#usage-by-model")
        assert "FLUX.2 [pro]" in legend and "FLUX1.1 [pro]" in legend
        shot = screenshot(page, "usage-user")
    finally:
        page.context.close()
    assert shot.stat().st_size > 10_000
    assert export_csv(team.runtime, User("bob", "bob"))["visible"] is False  # asked again, not trusted


def test_the_owner_sees_every_user_and_the_audit_trail(team: AppUnderTest, browser: object, tmp_path: Path) -> None:
    page = signed_in(browser, team, "alice")
    try:
        open_usage(page, "alice spent $0.063")
        summary = page.inner_text("#usage-summary")
        assert "You are an owner" in summary
        assert "Everyone together:" in summary and "left of this flux-ui's $5.00 a day" in summary
        today = page.inner_text("#usage-today")
        assert "alice" in today and "bob" in today
        page.wait_for_function(f"{BARS}('#usage-by-user') === 2")  # alice's and bob's, stacked on today
        assert {"alice", "bob"} <= set(page.inner_text("#usage-by-user").split())
        trail = page.inner_text("#usage-audit")
        assert "alice's secret lighthouse" in trail and "bob's paper boat" in trail and "refused" in trail
        screenshot(page, "usage-owner")
        page.click("#usage-export")
        link = page.wait_for_selector("#usage-csv a[download]")
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "audit.csv"
        download.value.save_as(saved)
    finally:
        page.context.close()
    text = saved.read_text(encoding="utf-8")
    assert text.startswith("id,time_utc,user,model,deployment,route,tab,outcome,")
    assert "bob's second paper boat" in text and "alice's secret lighthouse" in text
