"""The tables of ownership evidence (issue 18): challenges, evidence and the documents' bytes.

Kept apart from :mod:`recovery.models` (the case tables); :mod:`recovery.services` imports this
module, so the tables are registered on ``SQLModel.metadata`` wherever the services are. Migration
0008 creates them.

- ``ownership_challenges``: a message the user signs with the key of the sending address. It names
  the exchange, the account to be credited, the case, the network, the transaction, the sender, a
  nonce and an expiry, and is used once (``used_at``).
- ``ownership_evidence``: one proof given for a case: a verified signed message (accepted by the
  system) or a withdrawal record (a document a specialist accepts or rejects with a reason).
  Refused signatures are not stored here: only their attempt, as an audit event.
- ``evidence_documents``: the documents' bytes, by SHA-256, outside the cases table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

from recovery.dbtypes import UTCDateTime, utcnow

__all__ = ["EvidenceDocument", "OwnershipChallenge", "OwnershipEvidence"]


class OwnershipChallenge(SQLModel, table=True):
    """A single-use challenge for a signed message."""

    __tablename__ = "ownership_challenges"
    __table_args__ = (Index("ix_ownership_challenges_case", "case_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    #: 32 hex characters from the system's random source
    nonce: str = Field(max_length=64, unique=True)
    network: str = Field(max_length=40)
    tx_hash: str = Field(max_length=128)
    sender: str = Field(max_length=128)
    #: the exact text to sign (UTF-8)
    message: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    #: set when a signature over it was verified: a challenge proves one thing once
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class OwnershipEvidence(SQLModel, table=True):
    """One proof of ownership given for a case."""

    __tablename__ = "ownership_evidence"
    __table_args__ = (Index("ix_ownership_evidence_case", "case_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id")
    #: ``signed_message`` or ``withdrawal_record``
    kind: str = Field(max_length=24)
    #: ``submitted`` (waiting for a specialist), ``accepted`` or ``rejected``
    status: str = Field(max_length=16)
    submitted_by: str = Field(max_length=128)
    submitted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    challenge_id: int | None = Field(default=None, foreign_key="ownership_challenges.id")
    sender: str | None = Field(default=None, max_length=128)
    signature: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    public_key: str | None = Field(default=None, max_length=1024)
    #: what the verifier said (verified, method, recovered, reason)
    verification: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    document_sha256: str | None = Field(default=None, max_length=64, foreign_key="evidence_documents.sha256")
    media_type: str | None = Field(default=None, max_length=40)
    size: int | None = Field(default=None)
    file_name: str | None = Field(default=None, max_length=200)
    reviewer: str | None = Field(default=None, max_length=128)
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EvidenceDocument(SQLModel, table=True):
    """A document's bytes, once per SHA-256."""

    __tablename__ = "evidence_documents"

    sha256: str = Field(primary_key=True, max_length=64)
    media_type: str = Field(max_length=40)
    size: int
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
