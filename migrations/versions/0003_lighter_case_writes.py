"""lighter case writes: drop two indexes the composite ones cover and the lease-expiry index

Every index on ``cases`` is written again whenever a case row moves (a new status is a new row
version in PostgreSQL). ``ix_cases_status`` and ``ix_cases_user_id`` duplicate the leading column
of ``ix_cases_status_created`` and ``uq_cases_user_network_tx``. Without an index on the lease
columns, PostgreSQL writes the batch re-check's lease stamps as heap-only updates, which the
table's fill factor of 85 leaves room for on each page.

Revision ID: 0003_lighter_case_writes
Revises: 0002_scan
Create Date: 2026-11-23 16:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0003_lighter_case_writes'
down_revision: str | None = '0002_scan'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_status')
        batch_op.drop_index('ix_cases_user_id')
        batch_op.drop_index('ix_cases_lease_expires_at')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE cases SET (fillfactor = 85)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE cases RESET (fillfactor)')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_lease_expires_at', ['lease_expires_at'], unique=False)
        batch_op.create_index('ix_cases_user_id', ['user_id'], unique=False)
        batch_op.create_index('ix_cases_status', ['status'], unique=False)
