"""The team lead's way through, in Debian's chromium (headless, playwright, no browser download),
on ``recovery workbench`` over the seeded SQLite database (``tests/workbench/test_browser.py``'s
server): a click on a bar of the dashboard's backlog chart, and a chart's link, open the queue
filtered to those cases in the same session (the queue is the workbench's first page: its address
is ``/?category=...``); the Audit page's case filter goes into its address.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from app.workbench.context import Workbench
from recovery import queues
from recovery.audit_reads import AuditFilter, count_events
from tests.workbench.browser_support import TIMEOUT_MS
from tests.workbench.seed import PASSWORD, World
from tests.workbench.test_browser import server  # noqa: F401  (the workbench over the seeded history)


def sign_in(page: Page, base: str, username: str = "alice") -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(base)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()


def open_dashboard(page: Page) -> None:
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)  # the script run is over


def largest_category(wb: Workbench) -> tuple[str, int]:
    backlog = queues.dashboard(wb.db, wb.now(), days=30).backlog_by_category
    return sorted(((c, n) for c, n in backlog.items() if c != "unclassified"), key=lambda x: (-x[1], x[0]))[0]


def test_a_chart_leads_to_the_filtered_queue(server: str, browser: Browser,  # noqa: F811
                                            seeded: tuple[Workbench, World], tmp_path: Path) -> None:
    wb, _world = seeded
    category, count = largest_category(wb)
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    sign_in(page, server)
    open_dashboard(page)

    # the chart's link (under the backlog chart)
    page.get_by_text("Open in the queue").nth(1).click()
    page.get_by_role("link", name=f"{category} ({count:,})").click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"^{re.escape(server)}/(queue)?\?category={category}$"))
    expect(page.get_by_text(f"{count} matching case(s)")).to_be_visible()

    # a click on the largest bar of the backlog chart (the first one; Vega draws the chart in SVG)
    open_dashboard(page)
    chart = page.locator("[data-testid='stVegaLiteChart']").nth(1)
    chart.scroll_into_view_if_needed()
    chart.locator("g.mark-rect path").first.click()
    expect(page.get_by_role("heading", name="Queue")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"^{re.escape(server)}/(queue)?\?category={category}$"))
    expect(page.get_by_text(f"{count} matching case(s)")).to_be_visible()
    page.screenshot(path=str(tmp_path / "queue-from-chart.png"))


def test_the_audit_page_from_an_address(server: str, browser: Browser,  # noqa: F811
                                        seeded: tuple[Workbench, World]) -> None:
    wb, world = seeded
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    sign_in(page, server, "alice")
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit")).to_be_visible()
    page.get_by_label("Case").fill(world.credited)
    page.get_by_label("Case").press("Enter")
    total = count_events(wb.db, AuditFilter(reference=world.credited))
    expect(page.get_by_text(f"{total} matching event(s)")).to_be_visible()
    expect(page).to_have_url(f"{server}/audit?case={world.credited}")
    expect(page.get_by_text("mark_credited").first).to_be_attached()
