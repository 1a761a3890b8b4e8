"""ownership evidence: single-use challenges, evidence given for a case, the documents' bytes

Adds ``ownership_challenges`` (a message to sign naming the case, the transaction, the sender, a
nonce and an expiry; used once), ``ownership_evidence`` (a verified signed message or a withdrawal
record with its review) and ``evidence_documents`` (a document's bytes by SHA-256, outside the
cases table). See ``recovery/evidence.py``.

Revision ID: 0008_ownership_evidence
Revises: 0007_sign_in
Create Date: 2026-12-07 06:45:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import recovery.dbtypes

revision: str = '0008_ownership_evidence'
down_revision: str | None = '0007_sign_in'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'evidence_documents',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('media_type', sa.String(length=40), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('sha256'),
    )
    op.create_table(
        'ownership_challenges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('network', sa.String(length=40), nullable=False),
        sa.Column('tx_hash', sa.String(length=128), nullable=False),
        sa.Column('sender', sa.String(length=128), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('created_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('expires_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('used_at', recovery.dbtypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('nonce'),
    )
    with op.batch_alter_table('ownership_challenges', schema=None) as batch_op:
        batch_op.create_index('ix_ownership_challenges_case', ['case_id', 'created_at'], unique=False)
    op.create_table(
        'ownership_evidence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('submitted_by', sa.String(length=128), nullable=False),
        sa.Column('submitted_at', recovery.dbtypes.UTCDateTime(), nullable=False),
        sa.Column('challenge_id', sa.Integer(), nullable=True),
        sa.Column('sender', sa.String(length=128), nullable=True),
        sa.Column('signature', sa.Text(), nullable=True),
        sa.Column('public_key', sa.String(length=1024), nullable=True),
        sa.Column('verification', sa.JSON(), nullable=True),
        sa.Column('document_sha256', sa.String(length=64), nullable=True),
        sa.Column('media_type', sa.String(length=40), nullable=True),
        sa.Column('size', sa.Integer(), nullable=True),
        sa.Column('file_name', sa.String(length=200), nullable=True),
        sa.Column('reviewer', sa.String(length=128), nullable=True),
        sa.Column('reviewed_at', recovery.dbtypes.UTCDateTime(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id']),
        sa.ForeignKeyConstraint(['challenge_id'], ['ownership_challenges.id']),
        sa.ForeignKeyConstraint(['document_sha256'], ['evidence_documents.sha256']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('ownership_evidence', schema=None) as batch_op:
        batch_op.create_index('ix_ownership_evidence_case', ['case_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ownership_evidence', schema=None) as batch_op:
        batch_op.drop_index('ix_ownership_evidence_case')
    op.drop_table('ownership_evidence')
    with op.batch_alter_table('ownership_challenges', schema=None) as batch_op:
        batch_op.drop_index('ix_ownership_challenges_case')
    op.drop_table('ownership_challenges')
    op.drop_table('evidence_documents')
