"""``recovery audit verify|anchor|rotate-key`` and ``recovery db upgrade``'s audit key, on SQLite and
PostgreSQL: an edited event and a truncated tail (caught by an anchor) exit 1 naming what broke, a
case row edited behind its events is named, a key rotation by an admin keeps the chain verifying,
an anchor is appended to the file RECOVERY_AUDIT_ANCHOR_FILE names; and the API's background task
publishes anchors, at most every N minutes."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from app import cli
from recovery import audit
from recovery.audit_anchors import AnchorSettings, read_anchors
from recovery.audit_keys import KEY_FILE_NAME, key_id_of, reset_cache
from recovery.db import Database
from recovery.models import AuditHead, CaseEvent
from recovery.operators import add_operator
from recovery.services import SYSTEM, Actor, CaseService
from recovery.settings import get_settings
from recovery.vocabulary import Role
from tests.support.tamper import as_dba
from tests.test_cases import new_draft

runner = CliRunner()
PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Database]:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("RECOVERY_OPERATOR_PASSWORD", raising=False)
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()
    reset_cache()


def run(*args: str, password: str | None = None) -> tuple[int, str, str]:
    env = {"RECOVERY_OPERATOR_PASSWORD": password} if password is not None else None
    result = runner.invoke(cli.app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def verify_json() -> tuple[int, dict[str, object]]:
    code, out, _ = run("audit", "verify", "--json")
    return code, json.loads(out)


def seed(db: Database, config: object) -> list[str]:
    """An admin and a specialist (two operator events), two cases with a note each (four case events)."""
    add_operator(db, "ada", PASSWORD, "admin")
    add_operator(db, "maria", PASSWORD, "specialist", actor="ada")
    service = CaseService(db, config)  # type: ignore[arg-type]
    references = []
    for user in ("user-1", "user-2"):
        case, _ = service.submit(new_draft(user), SYSTEM)
        reference = case.reference or ""
        service.note(reference, "looked it up", Actor("maria", Role.SPECIALIST), expected_version=1)
        references.append(reference)
    return references


def anchor_file() -> Path:
    return Path(os.environ["RECOVERY_AUDIT_ANCHOR_FILE"])


def test_verify_fails_on_an_edited_event_and_names_it(cli_env: Database, default_config: object) -> None:
    seed(cli_env, default_config)
    code, data = verify_json()
    assert code == 0 and data == {"ok": True, "events_checked": 6, "first_broken_event": None, "problem": None}
    as_dba(cli_env, "UPDATE case_events SET actor = 'mallory' WHERE id = 4")
    code, data = verify_json()
    assert code == 1 and data["first_broken_event"] == 4 and "edited" in str(data["problem"])
    code, _, err = run("audit", "verify")
    assert code == 1 and "broken at event 4" in err


def test_verify_names_a_case_row_edited_behind_its_events(cli_env: Database, default_config: object) -> None:
    [first, _second] = seed(cli_env, default_config)
    as_dba(cli_env, "UPDATE cases SET status = 'approved' WHERE reference = :r", r=first)
    code, data = verify_json()
    assert code == 1 and data["first_broken_event"] is None
    assert data["row_problems"] == [f"{first}: status: the row says 'approved', its events say 'submitted'"]
    code, _, err = run("audit", "verify")
    assert code == 1 and "1 case row(s) differ" in err and f"{first}: status" in err


def test_an_anchor_is_appended_to_the_anchor_file_and_catches_a_truncated_tail(
    cli_env: Database, default_config: object
) -> None:
    seed(cli_env, default_config)
    path = anchor_file()
    assert not path.exists()
    code, out, err = run("audit", "anchor", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["event_id"] == 6 and first["file"] == str(path)
    add_operator(cli_env, "omar", PASSWORD, "approver", actor="ada")  # event 7, about no case
    code, out, _ = run("audit", "anchor")
    assert code == 0 and "anchor published: event 7" in out
    anchors = read_anchors(path)
    assert [a["event_id"] for a in anchors] == [6, 7] and len(path.read_text().splitlines()) == 2
    assert anchors[0]["hash"] == first["hash"]
    code, data = verify_json()
    assert code == 0 and data["anchors_checked"] == 2

    # an insider deletes the newest event and points the head at the one before: the chain alone
    # (and every case row) still verifies; the anchor does not
    as_dba(cli_env, "DELETE FROM case_events WHERE id = 7")
    with Session(cli_env.engine) as session:
        last, head = session.get(CaseEvent, 6), session.get(AuditHead, 1)
        assert last is not None and head is not None
        head.last_event_id, head.last_hash = 6, last.hash
        session.add(head)
        session.commit()
    with cli_env.read() as session:
        assert audit.verify_chain(session, rows=True).ok
    code, data = verify_json()
    assert code == 1 and data["first_broken_event"] == 7
    assert "anchor 2 (event 7" in str(data["problem"]) and "truncated" in str(data["problem"])
    code, _, err = run("audit", "verify")
    assert code == 1 and "anchor 2 (event 7" in err


def test_rotate_key_by_an_admin_then_verify(
    cli_env: Database, default_config: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [reference, _] = seed(cli_env, default_config)
    # the session's literal secret cannot be rotated here
    code, _, err = run("audit", "rotate-key", "--as", "ada", password=PASSWORD)
    assert code == 1 and "literal secret" in err and "key file" in err
    # the same key, kept in a key file (what a deployment that rotates uses)
    secret = os.environ["RECOVERY_AUDIT_KEY"].encode()
    key_file = tmp_path / "keys" / "audit-key.json"
    key_file.parent.mkdir()
    key_file.write_text(json.dumps({"current": key_id_of(secret),
                                    "keys": [{"id": key_id_of(secret), "secret": secret.hex()}]}))
    monkeypatch.setenv("RECOVERY_AUDIT_KEY", str(key_file))
    reset_cache()
    code, _, err = run("audit", "rotate-key", "--as", "maria", password=PASSWORD)
    assert code == 1 and "only an admin" in err
    code, _, err = run("audit", "rotate-key", "--as", "ada", password="wrong password!!")
    assert code == 1 and "sign-in as ada failed" in err
    code, out, err = run("audit", "rotate-key", "--as", "ada", "--json", password=PASSWORD)
    assert code == 0, err
    rotated = json.loads(out)
    assert rotated["old_key_id"] == key_id_of(secret) and rotated["new_key_id"] != rotated["old_key_id"]
    stored = json.loads(key_file.read_text())
    assert stored["current"] == rotated["new_key_id"] and len(stored["keys"]) == 2
    # later events are signed with the new key, the earlier ones still verify with the old
    code, _, err = run("cases", "reject", reference, "--as", "maria", "--reason-code", "other", password=PASSWORD)
    assert code == 0, err
    with cli_env.read() as session:
        rotation = session.get(CaseEvent, rotated["event_id"])
        newest = session.get(CaseEvent, rotated["event_id"] + 1)
    assert rotation is not None and rotation.action == audit.KEY_ROTATED and rotation.actor == "ada"
    assert rotation.key_id == rotated["old_key_id"] and newest is not None and newest.key_id == rotated["new_key_id"]
    code, data = verify_json()
    assert code == 0 and data["ok"] is True
    # a verifier without the new key cannot check the new segment
    monkeypatch.setenv("RECOVERY_AUDIT_KEY", secret.decode())
    reset_cache()
    code, data = verify_json()
    assert code == 1 and data["first_broken_event"] == rotated["event_id"] + 1


def test_db_upgrade_creates_the_key_beside_the_data_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "var"
    monkeypatch.delenv("RECOVERY_AUDIT_KEY")
    monkeypatch.delenv("RECOVERY_DATABASE_URL", raising=False)
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(var))
    get_settings.cache_clear()
    reset_cache()
    try:
        code, out, err = run("db", "upgrade")
        assert code == 0, err
        key = var / KEY_FILE_NAME
        assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
        assert "database at revision" in out
        assert err.count("stored beside the data") == 1 and "RECOVERY_AUDIT_KEY" in err and "secret store" in err
        code, data = verify_json()  # the embedded default works with no set-up
        assert code == 0 and data["ok"] is True
        # with a secret from a secret store there is nothing to warn about
        monkeypatch.setenv("RECOVERY_AUDIT_KEY", "a-secret-from-the-secret-store-" + "s" * 16)
        monkeypatch.setenv("RECOVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
        get_settings.cache_clear()
        code, out, err = run("db", "upgrade")
        assert code == 0 and "beside the data" not in err and "RECOVERY_AUDIT_KEY" in out
    finally:
        get_settings.cache_clear()
        reset_cache()


def test_a_bad_audit_key_is_a_configuration_error(cli_env: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_AUDIT_KEY", "too-short")
    reset_cache()
    code, _, err = run("audit", "verify")
    assert code == 2 and "audit key" in err and "at least 32" in err


# ------------------------------------------------------------------------------------------ the API's anchoring


def test_the_api_publishes_anchors_in_the_background_at_most_every_n_minutes(
    database: Database, default_config: object, tmp_path: Path
) -> None:
    from app.api import publish_anchors

    service = CaseService(database, default_config)  # type: ignore[arg-type]
    service.submit(new_draft(), SYSTEM)
    settings = AnchorSettings(tmp_path / "anchors.jsonl", every_minutes=15)

    async def run_for(seconds: float) -> None:
        task = asyncio.create_task(publish_anchors(database.read, settings, poll_seconds=0.01))
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_for(0.5))
    [anchor] = read_anchors(settings.path)  # woke up many times, published once
    assert anchor["event_id"] == 1


def test_the_api_lifespan_runs_the_anchoring_task(database: Database, default_config: object, tmp_path: Path) -> None:
    import warnings

    from app.api import create_app
    from app.api_settings import ApiSettings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    service = CaseService(database, default_config)  # type: ignore[arg-type]
    service.submit(new_draft(), SYSTEM)
    settings = AnchorSettings(tmp_path / "anchors.jsonl")
    app = create_app(service, ApiSettings(jwt_secret="api-test-secret-" + "k" * 48), anchors=settings)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 10
        while not settings.path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [a["event_id"] for a in read_anchors(settings.path)] == [1]

