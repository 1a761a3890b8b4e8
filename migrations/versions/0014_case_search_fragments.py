"""case search fragments: part of a hash, address, reference or user id through a trigram index (PostgreSQL)

The queue's search for part of an identifier (``recovery/case_search.py::fragment_condition``)
scanned ``ix_cases_search``: every case, 5 ILIKEs each (about 200 ms at 100,000 cases on
PostgreSQL, over the 200 ms goal under load). ``ix_cases_fragments`` is a GIN index of the trigrams
(``pg_trgm``'s ``gin_trgm_ops``) of ``cases (reference, user_id, tx_hash, deposit_address,
refund_tx_hash)``: a fragment's trigrams give the few cases that can hold it, and PostgreSQL checks
each with the search's own condition (``ILIKE`` for hex digits, references and user ids; a
case-sensitive ``LIKE`` otherwise), so the matches are exactly those of the scan. The trigrams
ignore case, so one index serves both. A fragment with no letters or digits (``---``) has no
trigram, and one that most cases hold (``RC-``) is cheaper to scan: the planner scans for those.

``pg_trgm`` ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13: the
database's owner can create it. The downgrade drops the index and leaves the extension (other
objects may use it).

Cost (measured at 100,000 cases, 2 cores under load): 68 MB (``ix_cases_search`` is 22 MB, the
table 195 MB); built in 20 s, writes to ``cases`` blocked meanwhile. A case filed alone takes
1.65 ms instead of 1.25 ms (its trigrams go to the index's pending list, GIN ``fastupdate``);
a bulk insert 0.7 ms a case instead of 0.5 ms; a status change (a new row version, every index
written) 0.96 ms instead of 0.80 ms. The lease stamps of the re-check stay heap-only updates (see
0003): the index's columns are set when a case is filed and change only when a refund is recorded.

SQLite has no trigram index: nothing to do there (its scan of ``ix_cases_search`` stays).

Revision ID: 0014_case_search_fragments
Revises: 0013_team_read_indexes
Create Date: 2026-12-07 16:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0014_case_search_fragments'
down_revision: str | None = '0013_team_read_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the columns a fragment is looked for in (recovery/case_search.py::fragment_condition)
COLUMNS = ['reference', 'user_id', 'tx_hash', 'deposit_address', 'refund_tx_hash']


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_index('ix_cases_fragments', 'cases', COLUMNS, unique=False, postgresql_using='gin',
                    postgresql_ops={column: 'gin_trgm_ops' for column in COLUMNS})


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_cases_fragments', table_name='cases')
