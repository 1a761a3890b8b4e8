"""The Queue in a real browser (issue 23): ``recovery workbench`` served over the seeded world, on
SQLite and on PostgreSQL, driven by Debian's chromium (headless, through playwright, as
``tests/workbench/test_browser.py`` does; no browser download).

- a credited case found from the Queue by its whole transaction hash, then by the address it was
  sent from: the default status filter hides it, the page says so, one click includes it;
- its link opens the case in the same tab, and the browser's back button returns to the queue with
  its search and filters (the page's address carries them);
- a reload of a filtered queue's address, signed in again, shows the same filters.

Every wait is on a selector or a text (playwright's auto-waiting ``expect``), never a sleep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import select

from app.workbench.context import Workbench
from recovery.models import ObservedTransfer
from tests.workbench.browser_support import TIMEOUT_MS, running_workbench
from tests.workbench.seed import PASSWORD, World


@pytest.fixture
def server(seeded_any: tuple[Workbench, World], tmp_path: Path) -> Iterator[str]:
    """``recovery workbench`` on a free loopback port over the seeded database (both backends)."""
    wb, _world = seeded_any
    with running_workbench(wb.db, tmp_path) as base:
        yield base


def sign_in(page: Page, username: str = "sara") -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()


def search(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Find anything")
    box.fill(text)
    box.press("Enter")


def choose_view(page: Page, name: str) -> None:
    page.get_by_role("combobox", name="View").click()
    page.get_by_role("option", name=name, exact=True).click()


def address(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def expect_address(page: Page, wanted: Callable[[dict[str, list[str]]], bool]) -> None:
    """Wait until the page's address (written by the script run, after the widgets) says so."""
    page.wait_for_url(lambda url: wanted(parse_qs(urlsplit(url).query)))


def test_find_a_credited_case_by_hash_and_sender_and_come_back_to_the_queue(
        server: str, browser: Browser, seeded_any: tuple[Workbench, World]) -> None:
    wb, world = seeded_any
    credited = wb.cases.get(world.credited).case
    with wb.db.read() as session:
        sender = str(session.exec(select(ObservedTransfer.sender)
                                  .where(ObservedTransfer.tx_hash == credited.tx_hash)).first())
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(server)
    sign_in(page)
    expect(page.get_by_text("matching case(s)")).to_be_visible()

    # by its whole hash, typed in upper case: hidden by the default status filter, and announced
    search(page, "0x" + credited.tx_hash[2:].upper())
    expect(page.get_by_text("1 more in finished statuses (1 credited)")).to_be_visible()
    expect(page.get_by_text("0 matching case(s)")).to_be_visible()
    page.get_by_role("button", name="Include them").click()
    link = page.get_by_role("link", name=f"Open {world.credited}")
    expect(link).to_be_visible()
    expect(page.get_by_text("1 matching case(s)")).to_be_visible()
    expect_address(page, lambda a: "credited" in a.get("status", [""])[0].split(","))
    queue_address = page.url

    # the link opens the case in the same tab; back returns to the queue as it was
    link.click()
    expect(page.get_by_role("heading", name=f"Case {world.credited}")).to_be_visible()
    expect_address(page, lambda a: a.get("ref") == [world.credited])
    page.go_back()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    expect(page.get_by_role("link", name=f"Open {world.credited}")).to_be_visible()
    expect(page.get_by_role("textbox", name="Find anything")).to_have_value("0x" + credited.tx_hash[2:].upper())
    expect(page.get_by_text("1 matching case(s)")).to_be_visible()
    assert page.url == queue_address

    # by the address it was sent from, typed in lower case (stored with its checksum)
    choose_view(page, "Open backlog")  # the default filters again
    expect(page.get_by_role("textbox", name="Find anything")).to_have_value("")
    expect_address(page, lambda a: a == {})
    search(page, sender.lower())
    with wb.db.read() as session:
        hashes = set(session.exec(select(ObservedTransfer.tx_hash).where(ObservedTransfer.sender == sender)).all())
    assert credited.tx_hash in hashes
    expect(page.get_by_role("textbox", name="Find anything")).to_have_value(sender.lower())
    expect(page.get_by_text("in finished statuses")).to_be_visible()
    page.get_by_role("button", name="Include them").click()
    expect(page.get_by_text("in finished statuses")).to_have_count(0)
    expect_address(page, lambda a: a.get("q") == [sender.lower()] and "credited" in a["status"][0])
    page.get_by_placeholder("RC-000001").fill(world.credited)
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page.get_by_role("heading", name=f"Case {world.credited}")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    expect(page.get_by_role("textbox", name="Find anything")).to_have_value(sender.lower())
    expect(page.get_by_text("in finished statuses")).to_have_count(0)  # the included statuses are kept


def test_back_and_reload_keep_the_filters(server: str, browser: Browser, seeded_any: tuple[Workbench, World]) -> None:
    _wb, world = seeded_any
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(server)
    sign_in(page)
    # a built-in view sets the filters, and the address follows
    choose_view(page, "Waiting for approval")
    expect(page.get_by_role("link", name=f"Open {world.big}")).to_be_visible()
    expect(page.get_by_text("1 matching case(s)")).to_be_visible()
    expect_address(page, lambda a: a == {"status": ["in_review"], "approval": ["1"]})
    page.get_by_role("link", name=f"Open {world.big}").click()
    expect(page.get_by_role("heading", name=f"Case {world.big}")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("link", name=f"Open {world.big}")).to_be_visible()
    expect_address(page, lambda a: a == {"status": ["in_review"], "approval": ["1"]})

    # a reload (a new session: sign in again) of a filtered address shows the same queue
    page.goto(f"{server}/queue?status=in_review&origin=detected&q=user-")
    sign_in(page)
    expect(page.get_by_text(f"{len(world.detected)} matching case(s)")).to_be_visible()
    expect(page.get_by_role("textbox", name="Find anything")).to_have_value("user-")
    expect_address(page, lambda a: a.get("origin") == ["detected"] and a.get("q") == ["user-"])


def test_a_click_on_a_reference_in_the_table_opens_its_case(
        server: str, browser: Browser, seeded_any: tuple[Workbench, World]) -> None:
    _wb, world = seeded_any
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(f"{server}/queue?assignee=sara")
    sign_in(page)
    expect(page.get_by_text("1 matching case(s)")).to_be_visible()
    table = page.locator("[data-testid='stDataFrame']")
    expect(table.locator("canvas").first).to_be_attached()
    box = table.bounding_box()
    assert box is not None
    # the first row's reference: below the header row (35 px), right of the row-selection column
    page.mouse.click(box["x"] + 85, box["y"] + 35 + 17)
    expect(page.get_by_role("heading", name=f"Case {world.big}")).to_be_visible()
    expect_address(page, lambda a: a.get("ref") == [world.big])
    page.go_back()
    expect(page.get_by_text("1 matching case(s)")).to_be_visible()
    expect_address(page, lambda a: a == {"assignee": ["sara"]})
