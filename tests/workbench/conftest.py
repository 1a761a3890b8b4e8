"""Fixtures for the workbench tests: a seeded database (real chain evidence), the installed
workbench, and AppTest sessions signed in as an operator."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from app.workbench import auth, context
from app.workbench.context import Workbench, WorkbenchSettings
from recovery.checking import ChainGateway
from recovery.db import Database
from recovery.services import CaseService
from tests.conftest import Clock, new_database
from tests.fixtures_anvil import EvmTestbed
from tests.workbench.browser_support import browser  # noqa: F401  (the chromium fixture, for every browser test)
from tests.workbench.seed import OPERATORS, ChainFacts, World, seed, send_chain_facts

MAIN = Path(__file__).resolve().parents[2] / "app" / "workbench" / "main.py"


@pytest.fixture(scope="session")
def chain_facts(evm_testbed: EvmTestbed) -> ChainFacts:
    return send_chain_facts(evm_testbed)


@pytest.fixture
def wb_clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from new_database("sqlite", request, tmp_path)


def _install(db: Database, testbed: EvmTestbed, facts: ChainFacts, clock: Clock, folder: Path) -> Iterator[
        tuple[Workbench, World]]:
    service = CaseService(db, testbed.config, clock)
    gateway = ChainGateway(testbed.config, adapters={n: testbed.adapter(n) for n in ("ethereum", "bsc")})
    world = seed(service, gateway, facts, clock, folder)
    workbench = Workbench(config=testbed.config, db=db, cases=service, settings=WorkbenchSettings(),
                          gateway_override=gateway)
    context.install(workbench)
    try:
        yield workbench, world
    finally:
        context.install(None)


@pytest.fixture
def seeded(sqlite_db: Database, evm_testbed: EvmTestbed, chain_facts: ChainFacts, wb_clock: Clock,
           tmp_path: Path) -> Iterator[tuple[Workbench, World]]:
    """The seeded world on SQLite, installed as the workbench's context."""
    yield from _install(sqlite_db, evm_testbed, chain_facts, wb_clock, tmp_path)


@pytest.fixture
def seeded_any(database: Database, evm_testbed: EvmTestbed, chain_facts: ChainFacts, wb_clock: Clock,
               tmp_path: Path) -> Iterator[tuple[Workbench, World]]:
    """The seeded world on SQLite and on PostgreSQL."""
    yield from _install(database, evm_testbed, chain_facts, wb_clock, tmp_path)


@pytest.fixture
def wb(seeded: tuple[Workbench, World]) -> Workbench:
    return seeded[0]


@pytest.fixture
def world(seeded: tuple[Workbench, World]) -> World:
    return seeded[1]


Session = Callable[..., AppTest]


def signed_in_app(username: str, page: str | None = None, **state: object) -> AppTest:
    """An AppTest of the workbench signed in as ``username`` (the session is set as sign-in sets it)."""
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    now = time.time()
    at.session_state[auth.SESSION_KEY] = auth.SignedIn(username, OPERATORS[username].value, "password", now, now)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


@pytest.fixture
def open_as(seeded: tuple[Workbench, World]) -> Session:
    return signed_in_app


# ------------------------------------------------------------------------------- reading an AppTest
def markdown_texts(at: AppTest) -> list[str]:
    """Everything the page rendered through Markdown (titles, banners, captions, markdown)."""
    found: list[str] = []
    for name in ("markdown", "title", "header", "subheader", "caption", "error", "warning", "info", "success"):
        found += [str(e.value) for e in getattr(at, name)]
    return found


def plain_texts(at: AppTest) -> list[str]:
    return [str(t.value) for t in at.text]


def frame_with(at: AppTest, column: str) -> Any:
    """The first dataframe on the page that has this column."""
    for frame in at.dataframe:
        value = frame.value
        if column in getattr(value, "columns", []):
            return value
    raise AssertionError(f"no table with a {column!r} column; tables: "
                         f"{[list(f.value.columns) for f in at.dataframe]}")


def field_value(at: AppTest, label: str) -> str:
    """A value from one of the page's field/value tables."""
    for frame in at.dataframe:
        value = frame.value
        if list(getattr(value, "columns", [])) == ["field", "value"]:
            hits = value[value["field"] == label]
            if len(hits):
                return str(hits.iloc[0]["value"])
    raise AssertionError(f"no field {label!r}")
