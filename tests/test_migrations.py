"""The migrations build exactly the schema the models describe, both ways, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import recovery.evidence_records  # the evidence tables
import recovery.models  # noqa: F401  (the tables, registered on SQLModel.metadata)
from recovery import migrate
from recovery.db import Database
from recovery.models import POSTGRESQL_ONLY_TABLES


def differences(db: Database) -> list[object]:
    def outside_the_models(_object: object, name: str | None, kind: str, _reflected: bool, _other: object) -> bool:
        # PostgreSQL's search copy of the identifiers is no model (migration 0015; checked in test_case_search)
        return not (kind == "table" and name in POSTGRESQL_ONLY_TABLES)

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "include_object": outside_the_models})
        return list(compare_metadata(context, SQLModel.metadata))


def case_indexes(db: Database) -> set[str]:
    return {str(index["name"]) for index in inspect(db.engine).get_indexes("cases")}


def test_the_migrated_schema_is_the_models_schema(database: Database) -> None:
    assert migrate.current_revision(database) == migrate.head_revision()
    assert differences(database) == []


def test_the_lighter_case_writes_migration_goes_down_and_up_again(database: Database) -> None:
    dropped = {"ix_cases_status", "ix_cases_user_id", "ix_cases_lease_expires_at"}
    assert not dropped & case_indexes(database)
    assert {"ix_cases_status_created", "ix_cases_network_tx"} <= case_indexes(database)

    migrate.downgrade(database, "0002_scan")
    assert dropped <= case_indexes(database)

    migrate.upgrade(database)
    assert not dropped & case_indexes(database) and differences(database) == []
    if database.is_postgresql:  # room on each page for heap-only updates of the lease stamps
        with database.engine.connect() as connection:
            options = connection.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'cases'")).scalar()
        assert options == ["fillfactor=85"]


def test_the_dashboard_times_migration_goes_down_and_up_again(database: Database) -> None:
    def observation_columns() -> set[str]:
        return {str(c["name"]) for c in inspect(database.engine).get_columns("chain_observations")}

    assert "block_time" in observation_columns() and "ix_cases_origin" in case_indexes(database)
    migrate.downgrade(database, "0008_ownership_evidence")
    assert "block_time" not in observation_columns() and "ix_cases_origin" not in case_indexes(database)
    migrate.upgrade(database)
    assert "block_time" in observation_columns() and "ix_cases_origin" in case_indexes(database)
    assert differences(database) == []
