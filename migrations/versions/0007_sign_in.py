"""sign-in: failed attempts (backoff and lock), TOTP second factor, single sign-on identities

Adds ``sign_in_failures`` (one row per failed sign-in, by attempted account name and client
address: the backoff and the 15-minute lock are counted from it) and, on ``operators``, the TOTP
secret with the time step of the last code accepted (a code is accepted once), and the identity a
single sign-on provider gives (issuer and subject, unique together) and a recorded e-mail address
(unique), both set by an admin.

Revision ID: 0007_sign_in
Revises: 0006_append_only_events
Create Date: 2026-12-07 06:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recovery.dbtypes

revision: str = '0007_sign_in'
down_revision: str | None = '0006_append_only_events'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sign_in_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('client', sa.String(length=128), nullable=False),
        sa.Column('at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_failures_username', ['username', 'at'], unique=False)
        batch_op.create_index('ix_sign_in_failures_client', ['client', 'at'], unique=False)
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('oidc_issuer', sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column('oidc_subject', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_enrolled_at', recovery.dbtypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_operators_oidc', ['oidc_issuer', 'oidc_subject'])
        batch_op.create_unique_constraint('uq_operators_email', ['email'])


def downgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_constraint('uq_operators_email', type_='unique')
        batch_op.drop_constraint('uq_operators_oidc', type_='unique')
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enrolled_at')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('oidc_subject')
        batch_op.drop_column('oidc_issuer')
        batch_op.drop_column('email')
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_sign_in_failures_client')
        batch_op.drop_index('ix_sign_in_failures_username')
    op.drop_table('sign_in_failures')
