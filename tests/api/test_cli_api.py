"""``recovery api``: refuses settings that cannot work, and serves the API with uvicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from app import cli
from app.demo.serving import free_port, wait_http
from recovery.db import Database, connect
from recovery.settings import get_settings
from tests.api.conftest import SECRET, bearer

runner = CliRunner()


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in list(os.environ):
        if name.startswith("RECOVERY_API_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_without_a_token_key_the_api_does_not_start(clean_env: pytest.MonkeyPatch, sqlite_db: Database) -> None:
    clean_env.setenv("RECOVERY_DATABASE_URL", url_of(sqlite_db))
    result = runner.invoke(cli.app, ["api", "--port", str(free_port())])
    assert result.exit_code == 2
    assert "RECOVERY_API_JWT_SECRET" in result.stderr


def test_bad_settings_are_named(clean_env: pytest.MonkeyPatch, sqlite_db: Database) -> None:
    clean_env.setenv("RECOVERY_DATABASE_URL", url_of(sqlite_db))
    clean_env.setenv("RECOVERY_API_JWT_SECRET", "too-short")
    clean_env.setenv("RECOVERY_API_RATE_LIMIT", "0")
    result = runner.invoke(cli.app, ["api"])
    assert result.exit_code == 2
    assert "RECOVERY_API_JWT_SECRET" in result.stderr and "RECOVERY_API_RATE_LIMIT" in result.stderr


def test_an_unmigrated_database_is_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = connect(f"sqlite:///{tmp_path / 'empty.db'}")
    clean_env.setenv("RECOVERY_DATABASE_URL", url_of(empty))
    clean_env.setenv("RECOVERY_API_JWT_SECRET", SECRET)
    result = runner.invoke(cli.app, ["api"])
    empty.dispose()
    assert result.exit_code == 2
    assert "recovery db upgrade" in result.stderr


def test_recovery_api_serves_the_api(sqlite_db: Database, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RECOVERY_DATABASE_URL": url_of(sqlite_db), "RECOVERY_API_JWT_SECRET": SECRET,
           "RECOVERY_VAR_DIR": str(tmp_path)}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        base = f"http://127.0.0.1:{port}"
        mine = requests.get(f"{base}/v1/appeals", headers=bearer("alice"), timeout=10)
        anonymous = requests.get(f"{base}/v1/appeals", timeout=10)
        schema = requests.get(f"{base}/openapi.json", timeout=10).json()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert mine.status_code == 200 and mine.json()["total"] == 0
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "missing_token"
    assert "server" not in {name.lower() for name in mine.headers}
    assert set(schema["paths"]) >= {"/healthz", "/v1/networks", "/v1/appeals", "/v1/appeals/{reference}"}
    # uvicorn shuts down cleanly on SIGTERM (then exits by the signal, as recent versions do).
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()
