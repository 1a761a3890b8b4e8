"""webhook outbox: the appeal form's status events, queued in the transaction of the change

Adds ``webhook_outbox`` (``recovery/models.py::WebhookOutbox``): one row per user-visible event of a
case and webhook URL, written in the same transaction as the change (``recovery/webhook_outbox.py``)
and sent by ``recovery webhooks deliver`` (``recovery/webhooks.py``).

- ``uq_webhook_outbox_event_url``: an event goes to a URL once (its id is what receivers
  de-duplicate by);
- ``ix_webhook_outbox_pending`` on ``(id)``, partial (``state = 'pending'``): a claim reads the
  pending rows from the oldest and stops at its batch (delivered rows, which only accumulate, are
  not in it);
- ``ix_webhook_outbox_case`` on ``(case_id, url, state, id)``: whether a case has an earlier
  pending event for the URL (events of a case go out in order).

Revision ID: 0011_webhook_outbox
Revises: 0010_dashboard_indexes
Create Date: 2026-12-07 12:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recovery.dbtypes

revision: str = '0011_webhook_outbox'
down_revision: str | None = '0010_dashboard_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the rows a claim reads (recovery.webhooks.Deliverer.claim)
PENDING = "state = 'pending'"


def upgrade() -> None:
    op.create_table(
        'webhook_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('audit_event_id', sa.Integer(), nullable=True),
        sa.Column('event_type', sa.String(length=40), nullable=False),
        sa.Column('reference', sa.String(length=20), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('leased_by', sa.String(length=120), nullable=True),
        sa.Column('leased_until', recovery.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('last_attempt_at', recovery.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('last_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('delivered_at', recovery.dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'url', name='uq_webhook_outbox_event_url'),
    )
    with op.batch_alter_table('webhook_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_outbox_pending', ['id'], unique=False,
                              sqlite_where=sa.text(PENDING), postgresql_where=sa.text(PENDING))
        batch_op.create_index('ix_webhook_outbox_case', ['case_id', 'url', 'state', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('webhook_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_outbox_case')
        batch_op.drop_index('ix_webhook_outbox_pending')
    op.drop_table('webhook_outbox')
