"""dashboard indexes: the window's cases, the audit log's deciding events, the observations' block times

The dashboard (``recovery/queues.py::dashboard``) aggregates the cases of its window (the last 7,
30 or 90 days) in SQL. Three of its reads went to the rows of wide tables for a few small columns;
each is now answered from an index alone:

- ``ix_cases_dashboard_window`` on ``cases (created_at, status, origin, resolution, category,
  network, deposit_network, tx_hash, sla_due_at, resolved_at, value_usd, fee_usd, id)``: every
  column the dashboard reads from a case of the window, led by the one that selects the window.
  Reading the rows instead meant reading each case's decision JSON along (about a page per case
  on SQLite). The columns change with a decision, a status or a resolution (which rewrite
  ``ix_cases_status_created``'s entry already); lease stamps, ``updated_at`` and the check
  counters are not in it, so those updates stay heap-only on PostgreSQL (see 0003).
- ``ix_case_events_decisions`` on ``case_events (case_id, created_at, action)``, partial: only the
  deciding events (``action IN ('approve', 'reject')``, a few percent of the log). The first
  decision of each case of the window is a range of case ids in it, instead of a read of the log's
  tail (every event of those cases, with its details JSON and hashes). ``action`` is in the index
  so that SQLite sees the index as covering (its planner does not infer the column from the index's
  condition). The log is append-only: the index only grows, by one entry per approval or rejection.
- ``ix_chain_observations_block_time`` on ``chain_observations (tx_hash, network, block_time)``:
  the block time of a case's transaction without reading the observation's row (its evidence JSON
  among it). Led by the hash so that SQLite's planner can be kept on it rather than on the unique
  (network, tx_hash) index (which then needs the row); an observation's update rewrites its entry
  only when its block time changes (a transaction mined, or a reorg).

Revision ID: 0010_dashboard_indexes
Revises: 0009_dashboard_times
Create Date: 2026-12-07 10:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_dashboard_indexes'
down_revision: str | None = '0009_dashboard_times'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the deciding events (recovery.queues.DECIDING_ACTIONS), as the dashboard's query writes them
DECIDING = "action IN ('approve', 'reject')"


#: the columns of ix_cases_dashboard_window, in order
WINDOW_COLUMNS = ['created_at', 'status', 'origin', 'resolution', 'category', 'network', 'deposit_network', 'tx_hash',
                  'sla_due_at', 'resolved_at', 'value_usd', 'fee_usd', 'id']


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_dashboard_window', WINDOW_COLUMNS, unique=False)
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.create_index('ix_case_events_decisions', ['case_id', 'created_at', 'action'], unique=False,
                              sqlite_where=sa.text(DECIDING), postgresql_where=sa.text(DECIDING))
    with op.batch_alter_table('chain_observations', schema=None) as batch_op:
        batch_op.create_index('ix_chain_observations_block_time', ['tx_hash', 'network', 'block_time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('chain_observations', schema=None) as batch_op:
        batch_op.drop_index('ix_chain_observations_block_time')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.drop_index('ix_case_events_decisions')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_dashboard_window')
