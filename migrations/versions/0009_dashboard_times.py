"""dashboard times: the observation's block time as a column; an index on the case's origin

Adds ``chain_observations.block_time`` (UTC, nullable: a transaction not in a block has none) and
fills it from what is stored, the evidence JSON's ``"timestamp"`` (ISO 8601 text with its UTC
offset, as ``Observation.to_json`` writes it). The dashboard's deposit-to-case times then read a
column, not JSON, per case of the window (``recovery/queues.py::_deposit_epochs``).

Adds ``ix_cases_origin`` on ``cases.origin`` alone, as the issue asks. It serves the queue's
origin filter (``QueueFilter.origins``: ``origin IN (...)``, e.g. the detected cases). A composite
(origin, created_at) would not serve the dashboard better: the dashboard selects its window by
``created_at`` (``ix_cases_created_at``) and only reads ``origin`` from those rows, never filtering
on it, so an index led by origin cannot find the window's rows.

The fill: PostgreSQL in one UPDATE (the text cast to ``timestamptz`` keeps the offset and the
microseconds); SQLite in batches of ids, each ISO text parsed in Python and written through
``UTCDateTime`` so the stored text is exactly what the models write (SQLite's own date functions
keep only milliseconds).

Revision ID: 0009_dashboard_times
Revises: 0008_ownership_evidence
Create Date: 2026-12-07 07:50:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

import recovery.dbtypes

revision: str = '0009_dashboard_times'
down_revision: str | None = '0008_ownership_evidence'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: observations filled per round trip on SQLite
BATCH = 5000


def _fill_block_times(connection: sa.Connection) -> None:
    if connection.dialect.name == 'postgresql':
        connection.execute(sa.text(
            "UPDATE chain_observations SET block_time = CAST(evidence->>'timestamp' AS timestamptz) "
            "WHERE evidence->>'timestamp' IS NOT NULL"
        ))
        return
    observations = sa.table(
        'chain_observations', sa.column('id', sa.Integer()),
        sa.column('block_time', recovery.dbtypes.UTCDateTime()),
    )
    update = (
        sa.update(observations)
        .where(observations.c.id == sa.bindparam('row_id'))
        .values(block_time=sa.bindparam('stamp', type_=recovery.dbtypes.UTCDateTime()))
    )
    last_id = 0
    while True:
        rows = connection.execute(sa.text(
            "SELECT id, json_extract(evidence, '$.timestamp') FROM chain_observations "
            "WHERE id > :last_id AND json_extract(evidence, '$.timestamp') IS NOT NULL ORDER BY id LIMIT :batch"
        ), {'last_id': last_id, 'batch': BATCH}).all()
        if not rows:
            return
        connection.execute(update, [
            {'row_id': row_id, 'stamp': datetime.fromisoformat(str(stamp))} for row_id, stamp in rows
        ])
        last_id = int(rows[-1][0])


def upgrade() -> None:
    with op.batch_alter_table('chain_observations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('block_time', recovery.dbtypes.UTCDateTime(), nullable=True))
    _fill_block_times(op.get_bind())
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_origin', ['origin'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_origin')
    with op.batch_alter_table('chain_observations', schema=None) as batch_op:
        batch_op.drop_column('block_time')
