"""case search: find any case by its deposit address or a sender; the operators' saved queue views

The queue's search (``recovery/case_search.py``) looks through every status by whole identifiers,
each through an index, before it falls back to a substring scan:

- ``ix_cases_search`` on ``cases (deposit_address, tx_hash, refund_tx_hash, reference, user_id,
  id)``: a whole deposit address (before, only the reference, the user id and the transaction hash
  were indexed, and an address was found by scanning the table), and the search for part of an
  identifier read from this index alone instead of the rows, which carry their decision JSON
  (at 100,000 cases on SQLite a cold scan of the table took seconds). Its columns change only when
  a refund is recorded;
- ``ix_observed_transfers_sender`` on ``observed_transfers (sender)``: the cases whose transaction
  (or refund) moved funds from an address, the address users quote. Recipients are found through
  the existing ``ix_observed_recipient (network, recipient)``. The transfers are the ones the chain
  check stores with every observation, so nothing needs filling: the index covers every transfer
  stored so far.

``saved_views``: an operator's own named queue filters (the queue's URL query string), unique per
operator and name (``recovery/saved_views.py``).

Revision ID: 0012_case_search
Revises: 0011_webhook_outbox
Create Date: 2026-12-07 12:45:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recovery.dbtypes

revision: str = '0012_case_search'
down_revision: str | None = '0011_webhook_outbox'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_search', ['deposit_address', 'tx_hash', 'refund_tx_hash', 'reference',
                                                  'user_id', 'id'], unique=False)
    with op.batch_alter_table('observed_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_observed_transfers_sender', ['sender'], unique=False)
    op.create_table(
        'saved_views',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('operator', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('query', sa.Text(), nullable=False),
        sa.Column('created_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('updated_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('operator', 'name', name='uq_saved_views_operator_name'),
    )


def downgrade() -> None:
    op.drop_table('saved_views')
    with op.batch_alter_table('observed_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_observed_transfers_sender')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_search')
