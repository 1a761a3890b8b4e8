"""Shared fixtures: the same storage and service tests run on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recovery import migrate
from recovery.config import Config, load_config
from recovery.db import Database, connect
from recovery.services import CaseService
from recovery.settings import REPO_ROOT, get_settings
from tests.support.demo import shared_demo_run
from tests.support.pgcluster import PgCluster

pytest_plugins = ["tests.fixtures_anvil", "tests.fixtures_replay"]

#: one audit key for the whole test session and every process it starts (the CLI, workers, the
#: demo); production sets RECOVERY_AUDIT_KEY from a secret store. The key file the embedded default
#: creates is tested on its own (tests/test_audit_keyed.py).
os.environ.setdefault("RECOVERY_AUDIT_KEY", "test-session-audit-key-" + "k" * 24)

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _audit_anchor_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test (and every process it starts) has an audit anchor file of its own: the re-check
    and the API publish anchors, and `audit verify` reads them, by default in ./var."""
    path = tmp_path_factory.mktemp("anchors") / "audit-anchors.jsonl"
    monkeypatch.setenv("RECOVERY_AUDIT_ANCHOR_FILE", str(path))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    db = connect(f"sqlite:///{path}")
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    name = pg_cluster.create_database("template_migrated")
    db = connect(pg_cluster.url(name))
    migrate.upgrade(db)
    db.dispose()
    return name


def new_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "case.db"
        shutil.copyfile(template, path)
        db = connect(f"sqlite:///{path}")
        yield db
        db.dispose()
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        template_name: str = request.getfixturevalue("pg_template")
        name = cluster.create_database(template=template_name)
        db = connect(cluster.url(name))
        yield db
        db.dispose()
        cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database, once on SQLite and once on PostgreSQL."""
    yield from new_database(request.param, request, tmp_path)


@pytest.fixture(scope="session")
def default_config() -> Config:
    return load_config(REPO_ROOT / "config")


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def service(database: Database, default_config: Config, clock: Clock) -> CaseService:
    return CaseService(database, default_config, clock)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The recorded chain responses; tests that need them skip, saying so, where the folder is absent."""
    path = get_settings().fixtures_dir
    if not path.is_dir():
        pytest.skip(f"recorded chain responses not found at {path} (set RECOVERY_FIXTURES_DIR)")
    return path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Any]:
    """The JSON summary of one ``recovery demo --no-serve --json --appeals 80`` for the whole test
    run: under pytest-xdist the first worker to ask runs it (the others wait on a lock) in the
    run's shared temporary folder. Tests never change its folder: each reads a private copy
    (``tests.support.demo.demo_copy``)."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    return shared_demo_run(shared / "demo-run", "--json", "--appeals", "80")
