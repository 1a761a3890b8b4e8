"""The ``cases`` and ``case_events`` tables as plain SQLAlchemy Core ``Table`` objects, for reads that
need neither SQLModel, the ORM nor pydantic (issue 20: ``recovery cases list`` and ``cases show``).

The schema is the models' (:mod:`recovery.models`, migrated by Alembic): these declarations carry the
same columns with the same column types (the money and time types of :mod:`recovery.dbtypes`, JSON),
so a row read here holds the very values the ORM would load; they declare no index or constraint and
are never used to create or migrate anything. ``tests/test_case_rows.py`` checks them column by
column against the models.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table

from recovery.dbtypes import ExactDecimal, UTCDateTime

metadata = MetaData()


def _text(name: str, length: int, nullable: bool = True) -> Column[Any]:
    return Column(name, String(length), nullable=nullable)


def _money(name: str) -> Column[Any]:
    return Column(name, ExactDecimal(), nullable=True)


def _when(name: str, nullable: bool = True) -> Column[Any]:
    return Column(name, UTCDateTime(), nullable=nullable)


cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True),
    _text("reference", 20),
    _text("user_id", 128, nullable=False),
    _text("origin", 16, nullable=False),
    _text("network", 40, nullable=False),
    _text("deposit_network", 40),
    _text("asset", 128, nullable=False),
    _text("tx_hash", 128, nullable=False),
    _text("deposit_address", 128, nullable=False),
    _text("memo", 256),
    _money("claimed_amount"),
    _text("status", 20, nullable=False),
    _text("category", 40),
    _text("recoverable", 16),
    _text("resolution", 16),
    Column("flags", JSON, nullable=False),
    Column("decision", JSON, nullable=True),
    _text("category_override", 40),
    _money("amount"),
    _money("value_usd"),
    _money("fee_amount"),
    _text("fee_asset", 128),
    _money("fee_usd"),
    _money("net_amount"),
    _text("credited_user_id", 128),
    _text("refund_network", 40),
    _text("refund_address", 128),
    _text("refund_tx_hash", 128),
    _text("assignee", 64),
    _when("created_at", nullable=False),
    _when("updated_at", nullable=False),
    _when("sla_due_at"),
    _when("first_decided_at"),
    _when("resolved_at"),
    _when("last_checked_at"),
    Column("check_count", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    _when("approval_requested_at"),
    Column("payout_override", JSON, nullable=True),
    _text("lease_owner", 80),
    _when("lease_expires_at"),
)

case_events = Table(
    "case_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, nullable=True),
    _text("actor", 128, nullable=False),
    _text("actor_role", 16, nullable=False),
    _text("action", 40, nullable=False),
    _text("from_status", 20),
    _text("to_status", 20),
    Column("details", JSON, nullable=False),
    _when("created_at", nullable=False),
    _text("prev_hash", 64, nullable=False),
    _text("hash", 64, nullable=False),
    _text("key_id", 32),
)
