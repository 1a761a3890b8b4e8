"""The case page in a real browser (issue 23): ``recovery workbench`` on a seeded SQLite database,
driven by Debian's chromium (headless, playwright; no browser download) at 1400x900.

- An approver opens a case a specialist prepared and sent: the next action (Approve) is the page's
  first action and its button is inside the viewport without scrolling; approving asks for a
  confirmation in a dialog that restates the payout, and the case is approved.
- An unlisted token without a price: a specialist sets its valuation from the case page (the next
  action), sends it for approval; an approver (someone else) sees the valuation, who set it and why,
  and approves it. The approval event records the valuation and its author.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.workbench.context import Workbench
from recovery.vocabulary import CaseStatus
from tests.workbench.browser_support import TIMEOUT_MS, running_workbench
from tests.workbench.seed import PASSWORD, World

VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture
def server(seeded: tuple[Workbench, World], tmp_path: Path) -> Iterator[str]:
    """The workbench on the seeded world (no history: only the case page is driven here)."""
    wb, _world = seeded
    with running_workbench(wb.db, tmp_path) as base:
        yield base


def sign_in(browser: Browser, server: str, username: str) -> Page:
    page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)  # a loaded machine: wait on selectors up to a minute, never sleep
    page.goto(server)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"{username} (", exact=False).first).to_be_visible()  # the sidebar's "signed in as"
    return page


def open_case(page: Page, reference: str) -> None:
    """Type the reference on the case page (the sidebar's Case link), as an operator does."""
    page.get_by_role("link", name="Case", exact=True).click()
    box = page.get_by_label("Case reference")
    box.fill(reference)
    box.press("Enter")
    expect(page.get_by_role("heading", name=f"Case {reference}")).to_be_visible()
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)  # the script run is over


def in_view_unscrolled(page: Page, name: str) -> None:
    """The button is inside the 1400x900 viewport while the page is scrolled to its top."""
    button = page.get_by_role("button", name=name, exact=True)
    expect(button).to_be_visible()
    expect(button).to_be_enabled()
    scrolled = page.evaluate("() => Math.max(window.scrollY, ...Array.from(document.querySelectorAll("
                             "'[data-testid=stMain], [data-testid=stAppViewContainer], section.main'), "
                             "e => e.scrollTop))")
    assert scrolled == 0, f"the page was scrolled by {scrolled}px"
    box = button.bounding_box()
    assert box is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (
        f"the {name!r} button is at y={box['y']:.0f}..{box['y'] + box['height']:.0f}, outside the "
        f"{VIEWPORT['height']}px viewport")
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]


def confirm(page: Page, action: str, restated: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text(restated)).to_be_visible()
    dialog.get_by_role("button", name=f"Confirm: {action}").click()
    expect(page.get_by_text(f"{action}: done.")).to_be_visible()


def test_approve_from_the_case_page_without_scrolling(
        server: str, browser: Browser, seeded: tuple[Workbench, World]) -> None:
    wb, world = seeded
    page = sign_in(browser, server, "bob")
    open_case(page, world.big)
    expect(page.get_by_role("heading", name="Next: Approve")).to_be_visible()
    expect(page.get_by_text("5,000 USDT sent on Ethereum; recoverable; no fee; credit 5,000 to user-2 after "
                            "approval")).to_be_visible()
    in_view_unscrolled(page, "Approve…")
    page.get_by_role("button", name="Approve…", exact=True).click()
    confirm(page, "Approve", "Approving fixes exactly this payout")
    case = wb.cases.get(world.big)
    assert case.case.status == CaseStatus.APPROVED
    assert (case.events[-1].action, case.events[-1].actor) == ("approve", "bob")
    # the next action is now recording the credit, which bob (the approver) may not do
    expect(page.get_by_role("heading", name="Next: Mark credited")).to_be_visible()
    expect(page.get_by_text("You approved this payout")).to_be_visible()
    expect(page.get_by_role("button", name="Mark credited…", exact=True)).to_be_disabled()


def test_a_valuation_then_an_approval_by_someone_else(
        server: str, browser: Browser, seeded: tuple[Workbench, World]) -> None:
    wb, world = seeded
    sara = sign_in(browser, server, "sara")
    open_case(sara, world.unlisted)
    expect(sara.get_by_role("heading", name="Next: Set valuation")).to_be_visible()
    expect(sara.get_by_text("Fee not set", exact=True)).to_be_visible()
    in_view_unscrolled(sara, "Set valuation")
    sara.get_by_role("textbox", name="Price of one unit (USD)").fill("10")
    sara.get_by_role("textbox", name="Source of the price").fill("DEX mid price, three venues")
    sara.get_by_role("textbox", name="Reason").fill("The token has no listed price.")
    sara.get_by_role("button", name="Set valuation", exact=True).click()
    expect(sara.get_by_text("Set valuation: done.")).to_be_visible()
    # 25 SHINY at 10 USD: 250 USD, the 80 USD flat fee is 8 SHINY; a manual value needs an approver
    expect(sara.get_by_role("heading", name="Next: Send for approval")).to_be_visible()
    sara.get_by_role("button", name="Send for approval", exact=True).click()
    expect(sara.get_by_text("Send for approval: done.")).to_be_visible()
    sara.close()

    bob = sign_in(browser, server, "bob")
    open_case(bob, world.unlisted)
    expect(bob.get_by_role("heading", name="Next: Approve")).to_be_visible()
    expect(bob.get_by_text("Fee from a manual valuation")).to_be_visible()
    expect(bob.get_by_text("Set by sara", exact=False).first).to_be_visible()
    in_view_unscrolled(bob, "Approve…")
    bob.get_by_role("button", name="Approve…", exact=True).click()
    confirm(bob, "Approve", "from the valuation of 10 USD per unit by sara")
    view = wb.cases.get(world.unlisted)
    assert view.case.status == CaseStatus.APPROVED
    approval = view.events[-1]
    assert (approval.action, approval.actor) == ("approve", "bob")
    assert approval.details["valuation"]["set_by"] == ["sara"] and approval.details["valuation"]["price_usd"] == "10"
    payout = wb.cases.payout(world.unlisted)
    assert payout is not None and payout.amount_units == 17 * 10**18
