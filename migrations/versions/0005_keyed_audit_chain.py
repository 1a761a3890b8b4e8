"""keyed audit chain: events carry the id of the key that signed them (HMAC); a signed cut-over point

Events already in the log keep their plain SHA-256 hashes; every event after the cut-over point
(the newest event at upgrade time) is an HMAC with the audit key, which lives outside the database
(``RECOVERY_AUDIT_KEY``, else a key file in the var folder, created on first use). The cut-over is
signed with that key so that nobody without it can move it.

Revision ID: 0005_keyed_audit_chain
Revises: 0004_payouts
Create Date: 2026-12-07 05:45:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_keyed_audit_chain'
down_revision: str | None = '0004_payouts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from recovery.audit import current_keyring, cutover_mac

    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keyed_from_id', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('keyed_from_key', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('keyed_from_mac', sa.String(length=64), nullable=True))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.alter_column('keyed_from_id', server_default=None)
    bind = op.get_bind()
    last = bind.execute(sa.text('SELECT last_event_id FROM audit_head WHERE id = 1')).scalar()
    key = current_keyring().current
    keyed_from = int(last or 0)
    bind.execute(
        sa.text('UPDATE audit_head SET keyed_from_id = :id, keyed_from_key = :key, keyed_from_mac = :mac WHERE id = 1'),
        {"id": keyed_from, "key": key.id, "mac": cutover_mac(key, keyed_from)},
    )


def downgrade() -> None:
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('keyed_from_mac')
        batch_op.drop_column('keyed_from_key')
        batch_op.drop_column('keyed_from_id')
    with op.batch_alter_table('case_events', schema=None) as batch_op:
        batch_op.drop_column('key_id')
