"""Detected against appealed cases on the dashboard, and the time from the deposit to the case.

Real transfers on the anvil chains; each case is opened a known time after the block its deposit
landed in (the block time read from the node here, independently of the code under test):
detected cases through ``recovery scan``'s own code path, appeals and an intake through
``CaseService``, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recovery import queues
from recovery.checking import CaseChecker, ChainGateway
from recovery.db import Database
from recovery.intake import validate_appeal
from recovery.queues import APPEALED, OriginRow, Percentiles, QueueFilter
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import CaseStatus, Origin, Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.workbench.seed import SARA, block_time, head, hold_addresses, scan

SETTLE = 15  # blocks: bsc's confirmations (ethereum needs 12)


class World:
    """A fresh database where every case is opened a chosen time after its deposit's block."""

    def __init__(self, db: Database, testbed: EvmTestbed, tmp_path: Path) -> None:
        self.testbed = testbed
        self.clock = Clock(datetime.now(UTC).replace(microsecond=0))
        self.service = CaseService(db, testbed.config, self.clock)
        self.gateway = ChainGateway(testbed.config, adapters={n: testbed.adapter(n) for n in ("ethereum", "bsc")})
        self.checker = CaseChecker(self.service, self.gateway)
        self.finder = fresh_address()  # nobody appeals what reaches it: the scan finds it
        self.payer = fresh_address()  # its owner appeals
        hold_addresses(self.service, tmp_path / "addresses.csv", {"finder": self.finder, "payer": self.payer})
        self.start = {n: head(testbed, n) + 1 for n in ("ethereum", "bsc")}

    def send(self, network: str, to: str, usdt: int) -> tuple[str, datetime]:
        decimals = 18 if network == "bsc" else 6
        tx = self.testbed.send_token(network, "USDT", to, usdt * 10**decimals)
        self.testbed.mine(network, SETTLE)
        return tx, block_time(self.testbed, network, tx)

    def appeal(self, tx: str, at: datetime, *, intake: bool = False) -> str:
        self.clock.now = at
        draft = validate_appeal(self.service.config, {"network": "ethereum", "asset": "USDT", "tx_hash": tx,
                                                      "deposit_address": self.payer}, "payer")
        if intake:
            case, _ = self.service.submit(draft, SARA, origin=Origin.INTAKE)
        else:
            case, _ = self.service.submit(draft, Actor("payer", Role.USER))
        reference = case.reference or ""
        self.checker.check([reference], actor=SYSTEM)
        return reference

    def detect(self, network: str, at: datetime) -> str:
        self.clock.now = at
        [reference] = scan(self.service, self.gateway, network, self.start[network])
        return reference


@pytest.fixture
def world(database: Database, evm_testbed: EvmTestbed, tmp_path: Path) -> World:
    return World(database, evm_testbed, tmp_path)


def test_detected_vs_appealed_and_the_time_from_deposit_to_case(world: World) -> None:
    hour = timedelta(hours=1)
    # the clock only moves forward: each case is opened its offset after its own block
    # appealed before their blocks (a pending transfer): each counts as 0, not as a negative time
    tx, at = world.send("ethereum", world.payer, 10)
    earliest = world.appeal(tx, at - 2 * hour)
    tx, at = world.send("ethereum", world.payer, 20)
    early = world.appeal(tx, at - hour)
    tx, at = world.send("ethereum", world.payer, 100)
    one_hour = world.appeal(tx, at + hour)
    _tx, at = world.send("bsc", world.finder, 250)  # wrong network
    two_hours = world.detect("bsc", at + 2 * hour)
    tx, at = world.send("ethereum", world.payer, 200)
    three_hours = world.appeal(tx, at + 3 * hour)
    _tx, at = world.send("ethereum", world.finder, 120)  # never credited; this scan also meets the appeals
    four_hours = world.detect("ethereum", at + 4 * hour)
    tx, at = world.send("ethereum", world.payer, 60)  # never scanned: its time comes from the chain check
    five_hours_intake = world.appeal(tx, at + 5 * hour, intake=True)
    _tx, at = world.send("bsc", world.finder, 90)
    thirty_hours = world.detect("bsc", at + 30 * hour)
    unknown = world.appeal("0x" + secrets.token_hex(32), world.clock.now + timedelta(minutes=1))  # not on chain
    service = world.service
    case = service.get(three_hours).case
    service.reject(three_hours, "other", SARA, expected_version=case.version)

    statuses = {r: service.get(r).case.status for r in (two_hours, four_hours, thirty_hours, unknown)}
    assert statuses == {two_hours: CaseStatus.IN_REVIEW, four_hours: CaseStatus.IN_REVIEW,
                        thirty_hours: CaseStatus.IN_REVIEW, unknown: CaseStatus.AWAITING_CHAIN}
    assert {service.get(r).case.origin for r in (two_hours, four_hours, thirty_hours)} == {"detected"}

    data = queues.dashboard(service.db, world.clock.now)
    assert data.origin(Origin.DETECTED.value) == OriginRow(
        "detected", cases=3, open=3, finished=0, share_percent=33.3,
        deposit_to_case=Percentiles(3, 4.0, 30.0), unknown_deposit=0)
    # nearest rank over [0, 0, 1, 3] hours; the case with no known deposit time is counted, not dropped
    assert data.origin(Origin.APPEAL.value) == OriginRow(
        "appeal", cases=5, open=4, finished=1, share_percent=55.6,
        deposit_to_case=Percentiles(4, 0.0, 3.0), unknown_deposit=1)
    assert data.origin(Origin.INTAKE.value) == OriginRow(
        "intake", cases=1, open=1, finished=0, share_percent=11.1,
        deposit_to_case=Percentiles(1, 5.0, 5.0), unknown_deposit=0)
    # the appeals together: [0, 0, 1, 3, 5] hours
    assert data.origin(APPEALED) == OriginRow(
        "appealed", cases=6, open=5, finished=1, share_percent=66.7,
        deposit_to_case=Percentiles(5, 1.0, 5.0), unknown_deposit=1)
    assert [row.origin for row in data.origins] == [o.value for o in Origin]
    assert sum(row.cases for row in data.origins) == sum(data.by_status.values()) == 9

    # the window covers the cases filed in it: a day back, only the last detected case and the unknown appeal
    recent = queues.dashboard(service.db, world.clock.now, days=1)
    assert (recent.origin("detected").cases, recent.origin("appeal").cases) == (1, 1)
    assert recent.origin("detected").deposit_to_case == Percentiles(1, 30.0, 30.0)
    assert recent.origin("appeal").deposit_to_case == Percentiles(0, None, None)
    assert recent.origin("appeal").unknown_deposit == 1

    # the queue filters on the same origins
    now = world.clock.now
    by_origin = {
        origin: {r.reference for r in queues.queue_page(service.db, QueueFilter(origins=(origin,)), now).rows}
        for origin in ("detected", "appeal", "intake")
    }
    assert by_origin == {"detected": {two_hours, four_hours, thirty_hours},
                         "appeal": {earliest, early, one_hour, three_hours, unknown},
                         "intake": {five_hours_intake}}


def test_origin_figures_of_an_empty_window(database: Database) -> None:
    data = queues.dashboard(database, datetime.now(UTC))
    assert [(r.origin, r.cases, r.share_percent, r.deposit_to_case, r.unknown_deposit) for r in data.origins] == [
        (o.value, 0, 0.0, Percentiles(0, None, None), 0) for o in Origin]
    assert data.origin(APPEALED).cases == 0
