"""Run the Alembic migrations programmatically (``recovery db upgrade``, tests, the demo).

Checking that a database's schema is the newest (``recovery recheck``, ``recovery scan``, ``recovery
api``, ``recovery db current``) does not import Alembic, which costs a batch command's start-up
about as much as SQLAlchemy's ORM (issue 20): :func:`current_revision` reads the version table
itself and :func:`head_revision` reads the revision ids from the migration files' source. Anything
those readings cannot settle on their own (a version table with several rows, a migration whose
revision is not a plain literal, several heads) is left to Alembic, which answers or raises as it
always did. Upgrading and downgrading use Alembic.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import TYPE_CHECKING

from recovery.db import Database
from recovery.settings import REPO_ROOT

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = REPO_ROOT / "migrations"
#: Alembic's default version table (``migrations/env.py`` does not change it)
VERSION_TABLE = "alembic_version"
#: the files Alembic reads as revisions (its ``_only_source_rev_file``)
_REVISION_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision(db: Database) -> str | None:
    """The database's schema revision; None for a database never migrated."""
    with db.engine.connect() as connection:
        if not connection.dialect.has_table(connection, VERSION_TABLE):
            return None
        rows = list(connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars())  # noqa: S608
    if len(rows) <= 1:
        return str(rows[0]) if rows else None
    return alembic_current_revision(db)  # several heads stamped: Alembic's own error


def alembic_current_revision(db: Database) -> str | None:
    """:func:`current_revision` as Alembic reads it."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision of the migrations folder."""
    heads = source_heads(MIGRATIONS_DIR / "versions")
    if heads is not None and len(heads) == 1:
        return heads[0]
    return alembic_head_revision()  # none, several, or not readable from the source: Alembic decides


def alembic_head_revision() -> str | None:
    """:func:`head_revision` as Alembic reads it (it imports every migration)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def source_heads(versions: Path) -> list[str] | None:
    """The revisions of the migration files in ``versions`` that no other revises (sorted), read
    from each file's module-level ``revision`` and ``down_revision`` literals; None when a file does
    not state them as literals (a string; for ``down_revision`` also None or a tuple of strings)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted(versions.iterdir()):
        if not path.is_file() or not _REVISION_FILE.match(path.name):
            continue
        values = _literals(path, ("revision", "down_revision"))
        if values is None:
            return None
        revision, down = values
        parents = _revisions(down)
        if not isinstance(revision, str) or parents is None:
            return None
        revisions.add(revision)
        revised.update(parents)
    return sorted(revisions - revised)


def _revisions(down_revision: object) -> list[str] | None:
    """The revisions a ``down_revision`` literal names (none, one, or a merge's tuple of them)."""
    if down_revision is None:
        return []
    if isinstance(down_revision, str):
        return [down_revision]
    if isinstance(down_revision, tuple) and all(isinstance(v, str) for v in down_revision):
        return [str(v) for v in down_revision]
    return None


def _literals(path: Path, names: tuple[str, ...]) -> tuple[object, ...] | None:
    """The literal values assigned to ``names`` at the top level of the Python file ``path`` (the
    last assignment of each), or None when one of them is missing or not a literal."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_bytes(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                return None
    if set(found) != set(names):
        return None
    return tuple(found[name] for name in names)
