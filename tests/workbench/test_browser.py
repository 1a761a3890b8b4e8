"""The real thing: ``recovery workbench`` served on a free loopback port over a seeded SQLite
database, driven by Debian's chromium (headless, through playwright; no browser download).

Signs in as an approver, opens a case worth more than the four-eyes threshold that a specialist
prepared and sent for approval, approves it (the approved payout appears, and the approver may not
record it as paid), and saves screenshots of the queue, the case and the dashboard in the
test's output folder and in docs/screenshots/ (for the README).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, Request, expect

from app.workbench.context import Workbench
from recovery.settings import REPO_ROOT
from recovery.vocabulary import CaseStatus
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed
from tests.workbench.browser_support import TIMEOUT_MS, running_workbench
from tests.workbench.seed import HOSTILE, PASSWORD, World, seed_history

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"



@pytest.fixture
def server(seeded: tuple[Workbench, World], evm_testbed: EvmTestbed, wb_clock: Clock,
           tmp_path: Path) -> Iterator[str]:
    wb, _world = seeded
    assert wb.cases.clock is wb_clock
    seed_history(wb.cases, wb.gateway, evm_testbed, wb_clock, tmp_path)
    with running_workbench(wb.db, tmp_path) as base:
        yield base


def shoot(page: Page, folder: Path, name: str, height: int) -> None:
    page.set_viewport_size({"width": 1500, "height": height})
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)  # the script run is over
    for table in page.locator("[data-testid='stDataFrame']").all():
        if table.is_visible():  # a table in a closed expander draws nothing until it is opened
            expect(table.locator("canvas").first).to_be_attached()
    page.wait_for_timeout(1500)  # let the last charts and tables finish painting before the picture
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SCREENSHOTS / name)


def go_to_case(page: Page, reference: str) -> None:
    """From the queue: type the reference into "Go to reference"."""
    page.get_by_role("link", name="Queue").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_placeholder("RC-000001").fill(reference)
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page.get_by_role("heading", name=f"Case {reference}")).to_be_visible(timeout=TIMEOUT_MS)


def test_sign_in_open_a_case_approve_it_and_take_screenshots(
        server: str, browser: Browser, seeded: tuple[Workbench, World], tmp_path: Path) -> None:
    wb, world = seeded
    dialogs: list[str] = []
    page = browser.new_page(viewport={"width": 1500, "height": 2300})
    outside: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_request(request: Request) -> None:
        if not request.url.startswith((server, "data:", "blob:")):
            outside.append(request.url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)

    # a wrong password is refused
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Wrong username or password")).to_be_visible()

    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    expect(page.get_by_text("bob (approver)")).to_be_visible()
    expect(page.get_by_text("matching case(s)")).to_be_visible()
    shoot(page, tmp_path, "queue.png", 1250)

    # the case with the hostile note: the text is data, never markup, and nothing runs
    go_to_case(page, world.small)
    assert page.locator("img[src='x']").count() == 0
    assert "pwned" not in "".join(page.locator("script").all_inner_texts())

    # the case worth 5000 USD that sara prepared: bob may approve it
    go_to_case(page, world.big)
    expect(page.get_by_role("heading", name="Next: Approve")).to_be_visible()
    expect(page.get_by_text("an approver who did not prepare this case must approve it")).to_be_visible()
    shoot(page, tmp_path, "case.png", 2300)
    page.get_by_role("button", name="Approve…", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Confirm: Approve").click()
    expect(page.get_by_text("Approve: done. The case is now approved")).to_be_visible()
    case = wb.cases.get(world.big).case
    assert case.status == CaseStatus.APPROVED
    assert wb.cases.get(world.big).events[-1].actor == "bob"
    # the approved payout is shown, and bob, who approved it, cannot also record the credit
    expect(page.get_by_text("Approved, waiting to be paid.")).to_be_visible()
    expect(page.get_by_role("heading", name="Next: Mark credited")).to_be_visible()
    expect(page.get_by_text("You approved this payout")).to_be_visible()
    expect(page.get_by_role("button", name="Mark credited…", exact=True)).to_be_disabled()

    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # seven charts: the throughput per operator is always drawn (migration 0013 indexes it)
    expect(page.locator("[data-testid='stVegaLiteChart']")).to_have_count(7, timeout=TIMEOUT_MS)
    shoot(page, tmp_path, "dashboard.png", 1400)

    assert dialogs == [], f"a script ran in the page: {dialogs}"
    assert outside == [], f"the page reached outside the machine: {outside}"
    assert HOSTILE  # the seeded note
    for name in ("queue.png", "case.png", "dashboard.png"):
        assert (tmp_path / name).stat().st_size > 20_000
