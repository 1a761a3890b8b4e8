"""The schema check without Alembic (issue 20): :func:`recovery.migrate.current_revision` and
:func:`recovery.migrate.head_revision` answer what Alembic answers, and leave to Alembic what they
cannot settle on their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.util.exc import CommandError

from recovery import migrate
from recovery.db import Database, connect


def test_the_head_is_alembics_head() -> None:
    assert migrate.source_heads(migrate.MIGRATIONS_DIR / "versions") == [migrate.alembic_head_revision()]
    assert migrate.head_revision() == migrate.alembic_head_revision()


def test_the_current_revision_is_alembics(database: Database) -> None:
    assert migrate.current_revision(database) == migrate.alembic_current_revision(database) == migrate.head_revision()
    with database.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0009_dashboard_times'")
    assert migrate.current_revision(database) == migrate.alembic_current_revision(database) == "0009_dashboard_times"
    with database.engine.begin() as conn:  # two rows: several heads stamped, Alembic's own error
        conn.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES ('0008_ownership_evidence')")
    with pytest.raises(CommandError, match="more than one head"):
        migrate.current_revision(database)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
    assert migrate.current_revision(database) is None and migrate.alembic_current_revision(database) is None


def test_a_database_never_migrated_has_no_revision(tmp_path: Path) -> None:
    db = connect(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert migrate.current_revision(db) is None and migrate.alembic_current_revision(db) is None
    finally:
        db.dispose()


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_the_source_heads_follow_alembics_rules(tmp_path: Path) -> None:
    write(tmp_path, "a.py", '"""revision = \'not this\'"""\nrevision: str = "a"\ndown_revision: str | None = None\n')
    write(tmp_path, "b.py", "revision = 'b'\ndown_revision = 'a'\n")
    write(tmp_path, "c.py", "revision = 'c'\ndown_revision = 'a'\n")
    write(tmp_path, "__init__.py", "revision = 'ignored'\ndown_revision = None\n")
    write(tmp_path, ".#b.py", "revision = 'editor lock file'\ndown_revision = None\n")
    write(tmp_path, "notes.txt", "revision = 'not python'\n")
    assert migrate.source_heads(tmp_path) == ["b", "c"]  # two heads: head_revision() asks Alembic
    write(tmp_path, "d.py", "revision = 'd'\ndown_revision = ('b', 'c')\ndepends_on = None\n")  # a merge
    assert migrate.source_heads(tmp_path) == ["d"]
    write(tmp_path, "e.py", "import os\nrevision = os.environ['REV']\ndown_revision = 'd'\n")
    assert migrate.source_heads(tmp_path) is None  # not a literal: Alembic reads it
    write(tmp_path, "e.py", "revision = 'e'\n")
    assert migrate.source_heads(tmp_path) is None  # no down_revision stated
