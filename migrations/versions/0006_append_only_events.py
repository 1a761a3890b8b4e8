"""append-only audit events: the database refuses UPDATE and DELETE on case_events

SQLite: two triggers. PostgreSQL: a trigger (UPDATE, DELETE and TRUNCATE) as a second line, and an
application role ``recovery_app`` that may read and write every table but only SELECT and INSERT
audit events; the services run as a login role that is a member of it (README, "Running on
PostgreSQL"), the migrations as the owner.

Revision ID: 0006_append_only_events
Revises: 0005_keyed_audit_chain
Create Date: 2026-12-07 06:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0006_append_only_events'
down_revision: str | None = '0005_keyed_audit_chain'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "recovery_app"


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE OR REPLACE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'case_events is append-only: % refused', TG_OP;
            END $$""")
        op.execute("CREATE TRIGGER case_events_append_only BEFORE UPDATE OR DELETE ON case_events "
                   "FOR EACH ROW EXECUTE FUNCTION case_events_append_only()")
        op.execute("CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events "
                   "FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only()")
        op.execute(  # APP_ROLE is this module's constant
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'recovery_app') THEN "
            "CREATE ROLE recovery_app NOLOGIN; END IF; END $$"
        )
        op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON case_events FROM {APP_ROLE}")
        op.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES "
                   f"TO {APP_ROLE}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES "
                   f"TO {APP_ROLE}")
    else:
        op.execute("CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events "
                   "BEGIN SELECT RAISE(ABORT, 'case_events is append-only: UPDATE refused'); END")
        op.execute("CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events "
                   "BEGIN SELECT RAISE(ABORT, 'case_events is append-only: DELETE refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {APP_ROLE}")
        op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {APP_ROLE}")
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
        op.execute("DROP TRIGGER IF EXISTS case_events_no_truncate ON case_events")
        op.execute("DROP TRIGGER IF EXISTS case_events_append_only ON case_events")
        op.execute("DROP FUNCTION IF EXISTS case_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS case_events_no_delete")
        op.execute("DROP TRIGGER IF EXISTS case_events_no_update")
