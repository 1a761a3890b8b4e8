"""team read indexes: the operators' events by time, the refunds proven on chain, the credits booked

The team lead's part of the dashboard (``recovery/team_reads.py``) reads the last weeks of the audit
log and of the payouts. Without these indexes each read went through the whole log or every payout
(at 100,000 cases on SQLite: the throughput per operator about 0.35 s, the value recovered by payout
date about 0.9 s on a quiet machine). Each index is partial or small, so that the writes the system
makes in bulk (the re-check's events, the scan's) do not pay for them:

- ``ix_case_events_operator_time`` on ``case_events (created_at, actor_role, actor, action,
  case_id)``, only the operators' events (``actor_role IN ('specialist', 'approver', 'admin')``):
  the throughput per operator and week is a range of times in it. The system's and the users'
  events (the re-check's chain results, filings, replies) are not in it and cost it nothing.
- ``ix_case_events_refund_confirmed`` on ``case_events (created_at, action, case_id)``, only the
  refunds proven on chain: the refunds paid in a window are a range of times in it.
- ``ix_payouts_paid`` on ``payouts (kind, state, executed_at)``: the credits booked in a window.

``actor_role`` and ``action`` are in the partial indexes so that SQLite sees them as covering (its
planner does not infer a column from the index's condition).

Revision ID: 0013_team_read_indexes
Revises: 0012_case_search
Create Date: 2026-12-07 16:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_team_read_indexes'
down_revision: str | None = '0012_case_search'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: as recovery.models.OPERATOR_EVENTS and REFUND_CONFIRMED (a migration keeps its own copy)
OPERATOR_EVENTS = "actor_role IN ('specialist', 'approver', 'admin')"
REFUND_CONFIRMED = "action = 'refund_confirmed'"


def upgrade() -> None:
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.create_index('ix_case_events_operator_time', ['created_at', 'actor_role', 'actor', 'action', 'case_id'],
                              unique=False, sqlite_where=sa.text(OPERATOR_EVENTS),
                              postgresql_where=sa.text(OPERATOR_EVENTS))
        batch_op.create_index('ix_case_events_refund_confirmed', ['created_at', 'action', 'case_id'], unique=False,
                              sqlite_where=sa.text(REFUND_CONFIRMED), postgresql_where=sa.text(REFUND_CONFIRMED))
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index('ix_payouts_paid', ['kind', 'state', 'executed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index('ix_payouts_paid')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.drop_index('ix_case_events_refund_confirmed')
        batch_op.drop_index('ix_case_events_operator_time')
