"""The observation's block time as a column (migration 0009): filled from the stored evidence,
written with every new observation, and read by the dashboard's deposit-to-case times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from chains.base import Observation, TxStatus
from recovery import migrate, queues
from recovery.db import Database
from recovery.dbtypes import UTCDateTime
from recovery.models import Case, ChainObservation
from recovery.queues import Percentiles
from recovery.services import record_observations_many

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
#: a plain table of the observations as revision 0008 has them (no block_time)
OBSERVATIONS_0008 = sa.table(
    "chain_observations", sa.column("network", sa.String()), sa.column("tx_hash", sa.String()),
    sa.column("status", sa.String()), sa.column("block_number", sa.Integer()), sa.column("block_hash", sa.String()),
    sa.column("confirmations", sa.Integer()), sa.column("evidence", sa.JSON()), sa.column("observed_at", UTCDateTime()),
)


def _case(tx_hash: str, created: datetime) -> Case:
    return Case(user_id="u1", network="ethereum", deposit_network="ethereum", asset="USDT", tx_hash=tx_hash,
                deposit_address="0x" + "d" * 40, status="in_review", origin="appeal", flags=[], created_at=created,
                updated_at=created, reference=f"RC-{tx_hash[-6:]}")


def _observation_row(tx_hash: str, evidence: dict[str, Any]) -> dict[str, Any]:
    return {"network": "ethereum", "tx_hash": tx_hash, "status": "success", "block_number": 7,
            "block_hash": "0x" + "b" * 64, "confirmations": 12, "evidence": evidence,
            "observed_at": NOW}


def _columns(db: Database, table: str) -> set[str]:
    return {str(c["name"]) for c in sa.inspect(db.engine).get_columns(table)}


def _indexes(db: Database, table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(db.engine).get_indexes(table)}


def test_the_migration_fills_block_times_from_the_stored_evidence(database: Database) -> None:
    created = NOW - timedelta(hours=1)
    plus_two = timezone(timedelta(hours=2))
    # four transactions, their cases opened an hour ago; the evidence as 0008 stored it
    stamps: dict[str, str | None] = {
        "0x" + "1" * 64: (created - timedelta(hours=4)).astimezone(plus_two).isoformat(),  # another offset
        "0x" + "2" * 64: (created - timedelta(hours=2, minutes=30, microseconds=-250_000)).isoformat(),
        "0x" + "3" * 64: None,  # a transaction not in a block: no time
    }
    no_key = "0x" + "4" * 64  # evidence without a "timestamp" at all
    with database.write() as session:
        for tx_hash in [*stamps, no_key]:
            session.add(_case(tx_hash, created))

    migrate.downgrade(database, "0008_ownership_evidence")
    assert "block_time" not in _columns(database, "chain_observations")
    assert "ix_cases_origin" not in _indexes(database, "cases")
    with database.engine.begin() as connection:
        connection.execute(sa.insert(OBSERVATIONS_0008), [
            *(_observation_row(tx_hash, {"tx_hash": tx_hash, "timestamp": stamp}) for tx_hash, stamp in stamps.items()),
            _observation_row(no_key, {"tx_hash": no_key}),
        ])

    migrate.upgrade(database)
    assert "ix_cases_origin" in _indexes(database, "cases")
    with database.read() as session:
        filled = {o.tx_hash: o.block_time for o in session.exec(select(ChainObservation)).all()}
    assert filled == {
        "0x" + "1" * 64: created - timedelta(hours=4),
        "0x" + "2" * 64: created - timedelta(hours=2, minutes=30, microseconds=-250_000),
        "0x" + "3" * 64: None,
        no_key: None,
    }
    for when in filled.values():
        assert when is None or when.tzinfo == UTC

    # the dashboard reads the filled column: waits of 4 h and (almost) 2.5 h, two unknown
    appeal = queues.dashboard(database, NOW).origin("appeal")
    assert (appeal.cases, appeal.deposit_to_case, appeal.unknown_deposit) == (4, Percentiles(2, 2.5, 4.0), 2)


def test_a_new_observation_stores_its_block_time(database: Database) -> None:
    mined = datetime(2026, 10, 31, 9, 15, 42, 123456, tzinfo=UTC)
    pending = Observation("ethereum", "0x" + "a" * 64, TxStatus.PENDING)
    with database.write() as session:
        record_observations_many(session, [pending], NOW)
        # a transaction never seen in a block is stored once it is: with its block's time
        record_observations_many(session, [Observation("ethereum", "0x" + "b" * 64, TxStatus.SUCCESS,
                                                       block_number=9, block_hash="0x" + "c" * 64,
                                                       confirmations=12, timestamp=mined)], NOW)
    with database.read() as session:
        stored = {o.tx_hash: (o.block_time, o.evidence.get("timestamp"))
                  for o in session.exec(select(ChainObservation)).all()}
    assert stored["0x" + "b" * 64] == (mined, mined.isoformat())
    assert stored["0x" + "a" * 64] == (None, None)  # pending: in no block yet


def test_a_stored_observation_gets_the_block_time_of_its_new_block(database: Database) -> None:
    tx_hash = "0x" + "e" * 64
    first, second = datetime(2026, 10, 31, 9, 0, tzinfo=UTC), datetime(2026, 10, 31, 9, 0, 12, tzinfo=UTC)
    with database.write() as session:
        record_observations_many(session, [Observation("ethereum", tx_hash, TxStatus.SUCCESS, block_number=9,
                                                       block_hash="0x" + "1" * 64, confirmations=1,
                                                       timestamp=first)], NOW)
    with database.write() as session:  # a reorg: the transaction is now in another block
        record_observations_many(session, [Observation("ethereum", tx_hash, TxStatus.SUCCESS, block_number=10,
                                                       block_hash="0x" + "2" * 64, confirmations=1,
                                                       timestamp=second)], NOW)
    with database.read() as session:
        [stored] = session.exec(select(ChainObservation)).all()
    assert (stored.block_number, stored.block_time) == (10, second)


def test_the_dashboard_indexes_go_down_and_up_again_and_change_no_figure(database: Database) -> None:
    """Migration 0010's indexes only make the dashboard's reads cheaper: its figures are the same without them."""
    created = NOW - timedelta(hours=3)
    with database.write() as session:
        for n in range(3):
            session.add(_case("0x" + str(n) * 64, created + timedelta(minutes=n)))
    with database.engine.begin() as connection:
        connection.execute(sa.insert(OBSERVATIONS_0008), [
            _observation_row("0x" + str(n) * 64, {}) for n in range(2)])
        connection.execute(sa.update(ChainObservation).values(block_time=created - timedelta(hours=1)))
    figures = queues.dashboard(database, NOW)
    assert figures.origin("appeal").deposit_to_case == Percentiles(2, 1.0, 1.02)
    added = {"cases": "ix_cases_dashboard_window", "case_events": "ix_case_events_decisions",
             "chain_observations": "ix_chain_observations_block_time"}
    assert all(index in _indexes(database, table) for table, index in added.items())

    migrate.downgrade(database, "0009_dashboard_times")
    assert not any(index in _indexes(database, table) for table, index in added.items())
    assert queues.dashboard(database, NOW) == figures

    migrate.upgrade(database)
    assert all(index in _indexes(database, table) for table, index in added.items())
    assert queues.dashboard(database, NOW) == figures
