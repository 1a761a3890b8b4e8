"""case fragments table: the trigram index moves off ``cases`` onto a narrow copy of the five searched identifiers (PostgreSQL)

Migration 0014's ``ix_cases_fragments`` (a GIN index of trigrams on ``cases``) answers the queue's
search for part of an identifier in milliseconds, but every new row version of a case writes it, and
a status change is a new row version with every index written: the batch re-check, which changes the
status of every case it decides, ran about 14% slower on PostgreSQL with it (350 against 407 cases/s
at 10,000 cases).

The five identifiers are set when a case is filed and change only when a refund is recorded. Their
trigrams now live on ``case_fragments`` (``case_id`` and a copy of ``reference``, ``user_id``,
``tx_hash``, ``deposit_address``, ``refund_tx_hash``; ``ix_case_fragments_trgm``), kept by two
triggers on ``cases``: after an INSERT, and after an UPDATE that changes one of the five (an UPDATE
that does not name them, as the re-check's and the lease stamps', does not fire it at all). Whatever
writes a case, the service layer, a bulk import or SQL by hand, the copy follows it in the same
transaction. The search (``recovery/case_search.py``) looks a part up there and checks each
candidate with the same condition as before, so the matches are exactly those of a scan of
``cases``.

SQLite has no trigram index: nothing to do there.

Revision ID: 0015_case_fragments_table
Revises: 0014_case_search_fragments
Create Date: 2026-12-07 20:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0015_case_fragments_table'
down_revision: str | None = '0014_case_search_fragments'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the columns a fragment is looked for in (recovery/case_search.py::fragment_condition)
COLUMNS = ['reference', 'user_id', 'tx_hash', 'deposit_address', 'refund_tx_hash']
_LIST = ', '.join(COLUMNS)

CREATE_TABLE = """
CREATE TABLE case_fragments (
    case_id INTEGER PRIMARY KEY REFERENCES cases (id) ON DELETE CASCADE,
    reference VARCHAR(20),
    user_id VARCHAR(128),
    tx_hash VARCHAR(128),
    deposit_address VARCHAR(128),
    refund_tx_hash VARCHAR(128)
)"""

COPY_FUNCTION = f"""
CREATE FUNCTION case_fragments_copy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO case_fragments (case_id, {_LIST})
    VALUES (NEW.id, {', '.join('NEW.' + c for c in COLUMNS)})
    ON CONFLICT (case_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in COLUMNS)};
    RETURN NULL;
END
$$"""  # noqa: S608  (this module's own column names)

ON_INSERT = "CREATE TRIGGER cases_fragments_on_insert AFTER INSERT ON cases FOR EACH ROW EXECUTE FUNCTION case_fragments_copy()"

ON_UPDATE = f"""
CREATE TRIGGER cases_fragments_on_update AFTER UPDATE OF {_LIST} ON cases FOR EACH ROW
WHEN (({', '.join('OLD.' + c for c in COLUMNS)}) IS DISTINCT FROM ({', '.join('NEW.' + c for c in COLUMNS)}))
EXECUTE FUNCTION case_fragments_copy()"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(CREATE_TABLE)
    op.execute(f'INSERT INTO case_fragments (case_id, {_LIST}) SELECT id, {_LIST} FROM cases')  # noqa: S608
    op.execute(COPY_FUNCTION)
    op.execute(ON_INSERT)
    op.execute(ON_UPDATE)
    op.create_index('ix_case_fragments_trgm', 'case_fragments', COLUMNS, unique=False, postgresql_using='gin',
                    postgresql_ops={column: 'gin_trgm_ops' for column in COLUMNS})
    op.drop_index('ix_cases_fragments', table_name='cases')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.create_index('ix_cases_fragments', 'cases', COLUMNS, unique=False, postgresql_using='gin',
                    postgresql_ops={column: 'gin_trgm_ops' for column in COLUMNS})
    op.execute('DROP TRIGGER cases_fragments_on_update ON cases')
    op.execute('DROP TRIGGER cases_fragments_on_insert ON cases')
    op.execute('DROP FUNCTION case_fragments_copy()')
    op.execute('DROP TABLE case_fragments')
