"""The dashboard's figures aggregated in SQL (issue 20) are exactly the figures of the per-case Python
computation they replaced (``tests/workbench/dashboard_reference.py``), on SQLite and on PostgreSQL.

A few hundred random cases in the shapes the service layer writes, with the awkward ones on purpose:
several decisions of one case (the first counts), decisions before and after the SLA due time, several
scan findings of one case (the earliest counts, one without a block time), a scan finding and an
observation for one case (the finding counts), an observation on the network the deposit landed on
rather than the one claimed, deposits in a block after the case was opened (waited 0), observations
without a block time, equal durations, money with many decimals or none, recovered statuses without a
resolution time, unknown categories, an origin outside the vocabulary, and an empty window.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import insert

from recovery import queues
from recovery.db import Database
from recovery.models import Case, CaseEvent, ChainObservation, ScanFinding
from recovery.vocabulary import CaseStatus, Category, Resolution
from tests.workbench.dashboard_reference import reference_dashboard

NOW = datetime(2026, 11, 20, 15, 30, 12, 345678, tzinfo=UTC)
NETWORKS = ("ethereum", "bsc", "tron")
VALUES = (None, Decimal("0"), Decimal("12.5"), Decimal("0.000000000000000001"), Decimal("250"),
          Decimal("123456789.123456789"), Decimal("1E+3"))


def _table(model: Any) -> Any:
    return cast(Any, model).__table__


def seed(db: Database, count: int, rng: random.Random) -> None:
    """``count`` cases filed over 120 days (ids in filing order), their events (ids in time order),
    scan findings and chain observations."""
    ages = sorted((timedelta(seconds=rng.uniform(0, 120 * 86400)) for _ in range(count)), reverse=True)
    # two cases a second apart and an identical wait: ties in every duration
    ages[-1] = ages[-2] - timedelta(seconds=1)
    cases: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    observations: list[dict[str, Any]] = []
    statuses = [s.value for s in CaseStatus]
    for index, age in enumerate(ages, start=1):
        created = NOW - age
        status = rng.choice(statuses)
        network = rng.choice(NETWORKS)
        landed = rng.choice([None, network, network, rng.choice(NETWORKS)])
        resolved = created + timedelta(hours=rng.choice([1, 5, 30, 30, 200])) if rng.random() < 0.6 else None
        tx_hash = "0x" + rng.randbytes(32).hex()
        case = {
            "id": index, "reference": f"RC-T{index:06d}", "user_id": f"u{rng.randint(1, 50)}",
            "origin": rng.choice(["appeal", "appeal", "intake", "detected", "legacy_import"]),
            "network": network, "deposit_network": landed, "asset": "USDT", "tx_hash": tx_hash,
            "deposit_address": "0x" + "d" * 40, "status": status,
            "category": rng.choice([None, *(c.value for c in Category)]),
            "resolution": rng.choice([None, *(r.value for r in Resolution)]),
            "flags": [], "value_usd": rng.choice(VALUES), "fee_usd": rng.choice(VALUES),
            "created_at": created, "updated_at": created,
            "sla_due_at": rng.choice([None, created + timedelta(hours=48)]),
            "resolved_at": resolved if resolved is None or resolved <= NOW else NOW, "version": 1,
        }
        cases.append(case)
        events.append({"case_id": index, "actor": "user", "actor_role": "user", "action": "submit",
                       "from_status": None, "to_status": "submitted", "created_at": created})
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            action = rng.choice(["approve", "reject", "assign", "comment"])
            when = min(NOW, created + timedelta(hours=rng.choice([2, 24, 47.5, 49, 72]),
                                                seconds=rng.randint(0, 59)))
            events.append({"case_id": index, "actor": "omar", "actor_role": "approver", "action": action,
                           "from_status": None, "to_status": None, "created_at": when})
        deposited = created - timedelta(minutes=rng.choice([0, 5, 90, 600, 3000]), seconds=rng.randint(0, 59))
        if case["origin"] == "intake" or rng.random() < 0.1:
            deposited = created + timedelta(minutes=30)  # appealed before the block: waited 0
        if index == len(ages):
            deposited = cases[-2]["created_at"] - (created - deposited)  # the same wait as the case before
        if rng.random() < 0.2:
            for offset in rng.sample([None, 0, 60, 7200], rng.randint(1, 3)):
                findings.append({
                    "network": network, "tx_hash": tx_hash, "kind": "token", "transfer_index": len(findings),
                    "sender": "0x" + "1" * 40, "recipient": "0x" + "d" * 40, "asset": "USDT",
                    "amount_base_units": Decimal(1), "outcome": "opened", "case_id": index, "detected_at": created,
                    "block_time": None if offset is None else deposited + timedelta(seconds=offset),
                })
        if rng.random() < 0.75:
            observations.append({
                "network": landed or network, "tx_hash": tx_hash, "status": "success", "confirmations": 12,
                "evidence": {}, "observed_at": created,
                "block_time": None if rng.random() < 0.1 else deposited - timedelta(minutes=7),
            })
        if rng.random() < 0.1:  # the same hash seen on another network: not this case's deposit
            other = next(n for n in NETWORKS if n != (landed or network))
            observations.append({"network": other, "tx_hash": tx_hash, "status": "success", "confirmations": 1,
                                 "evidence": {}, "observed_at": created, "block_time": deposited - timedelta(days=9)})
    events.sort(key=lambda e: (e["created_at"], e["case_id"]))
    for number, event in enumerate(events, start=1):
        event.update(id=number, details={}, prev_hash=f"{number - 1:064x}", hash=f"{number:064x}", key_id=None)
    with db.write() as session:
        connection = session.connection()
        connection.execute(insert(_table(Case)), cases)
        connection.execute(insert(_table(CaseEvent)), events)
        connection.execute(insert(_table(ScanFinding)), findings)
        connection.execute(insert(_table(ChainObservation)), observations)


@pytest.mark.parametrize("seed_value", [7, 2026])
def test_the_sql_figures_are_the_per_case_figures(database: Database, seed_value: int) -> None:
    seed(database, 400, random.Random(seed_value))
    for days in (1, 7, 30, 90):
        expected = reference_dashboard(database, NOW, days=days)
        assert queues.dashboard(database, NOW, days=days) == expected
    # the fixture is not trivial: every part of the dashboard has something to show
    data = queues.dashboard(database, NOW, days=90)
    assert data.sla.decided and data.sla.decided_late and data.resolution.count and data.money
    assert {row.origin for row in data.origins} >= {"appeal", "intake", "detected", "legacy_import"}
    assert all(row.deposit_to_case.count and row.unknown_deposit for row in data.origins)
    assert data.origin("intake").deposit_to_case.p90_hours == 0  # the intakes predate their blocks


def test_an_empty_window_and_an_empty_database(database: Database) -> None:
    assert queues.dashboard(database, NOW) == reference_dashboard(database, NOW)
    seed(database, 30, random.Random(1))
    long_after = NOW + timedelta(days=400)
    assert queues.dashboard(database, long_after, days=7) == reference_dashboard(database, long_after, days=7)
