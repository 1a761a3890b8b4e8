"""payouts: the approved payout of a case, paid transfers (one payout per transfer), approval requests

Adds ``payouts`` (the exact payout an approval fixed, and what became of it), ``paid_transfers``
(unique per network, transaction and transfer index: a transfer is paid at most once, whatever
the case), ``cases.approval_requested_at`` and ``cases.payout_override``; audit events may be
about no case (``case_events.case_id`` nullable: operator changes).

Revision ID: 0004_payouts
Revises: 0003_lighter_case_writes
Create Date: 2026-12-07 05:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recovery.dbtypes

revision: str = '0004_payouts'
down_revision: str | None = '0003_lighter_case_writes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'payouts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('network', sa.String(length=40), nullable=False),
        sa.Column('asset', sa.String(length=160), nullable=False),
        sa.Column('contract', sa.String(length=160), nullable=True),
        sa.Column('decimals', sa.Integer(), nullable=False),
        sa.Column('from_address', sa.String(length=128), nullable=True),
        sa.Column('to_address', sa.String(length=128), nullable=True),
        sa.Column('to_user_id', sa.String(length=128), nullable=True),
        sa.Column('amount', recovery.dbtypes.ExactDecimal(), nullable=False),
        sa.Column('amount_units', recovery.dbtypes.ExactDecimal(), nullable=False),
        sa.Column('memo', sa.String(length=256), nullable=True),
        sa.Column('approved_by', sa.String(length=64), nullable=False),
        sa.Column('approved_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('executed_by', sa.String(length=64), nullable=True),
        sa.Column('executed_at', recovery.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('ledger_reference', sa.String(length=128), nullable=True),
        sa.Column('refund_tx_hash', sa.String(length=128), nullable=True),
        sa.Column('proof', sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('refund_tx_hash'),
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index('ix_payouts_case_id', ['case_id'], unique=False)
        batch_op.create_index('ix_payouts_state', ['state', 'network'], unique=False)
    op.create_table(
        'paid_transfers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('network', sa.String(length=40), nullable=False),
        sa.Column('tx_hash', sa.String(length=128), nullable=False),
        sa.Column('transfer_index', sa.BigInteger(), nullable=False),
        sa.Column('payout_id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('paid_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id']),
        sa.ForeignKeyConstraint(['payout_id'], ['payouts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('network', 'tx_hash', 'transfer_index', name='uq_paid_transfer'),
    )
    with op.batch_alter_table('paid_transfers', schema=None) as batch_op:
        batch_op.create_index('ix_paid_transfers_case_id', ['case_id'], unique=False)
        batch_op.create_index('ix_paid_transfers_payout_id', ['payout_id'], unique=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approval_requested_at', recovery.dbtypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('payout_override', sa.JSON(), nullable=True))
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.alter_column('case_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute('DELETE FROM case_events WHERE case_id IS NULL')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.alter_column('case_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('payout_override')
        batch_op.drop_column('approval_requested_at')
    with op.batch_alter_table('paid_transfers', schema=None) as batch_op:
        batch_op.drop_index('ix_paid_transfers_payout_id')
        batch_op.drop_index('ix_paid_transfers_case_id')
    op.drop_table('paid_transfers')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index('ix_payouts_state')
        batch_op.drop_index('ix_payouts_case_id')
    op.drop_table('payouts')
