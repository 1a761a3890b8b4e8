"""The driver-level read path of ``recovery cases list`` and ``cases show`` (issue 20) reads what
the ORM reads: its column lists and value kinds are the models', every row value equals the model's
attribute, the JSON shapes are :mod:`recovery.views`' byte for byte, and the commands print them;
on SQLite and PostgreSQL. And the settings read without pydantic give the database URL the settings
give, or fail as they fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import JSON, text
from typer.testing import CliRunner

from app import cli
from recovery import case_reads, case_rows
from recovery.config import Config
from recovery.db import Database
from recovery.dbtypes import ExactDecimal, UTCDateTime
from recovery.env_settings import database_url
from recovery.errors import NotFound
from recovery.models import Case, CaseEvent
from recovery.services import SYSTEM, CaseService
from recovery.settings import Settings, get_settings, settings_problems
from recovery.views import case_json, event_json
from tests.test_cases import new_draft

runner = CliRunner()


COLUMN_LISTS = [(case_rows.CASE_COLUMNS, Case), (case_rows.EVENT_COLUMNS, CaseEvent)]


@pytest.mark.parametrize(("columns", "model"), COLUMN_LISTS, ids=["cases", "case_events"])
def test_the_column_lists_and_kinds_are_the_models(columns: tuple[str, ...], model: type) -> None:
    """Every column of the table, in its order; money, time and JSON columns decoded as the model's
    column types decode them."""
    table = model.__table__.columns  # type: ignore[attr-defined]
    assert columns == tuple(c.name for c in table)
    kinds = {"money": case_rows.MONEY_COLUMNS, "time": case_rows.TIME_COLUMNS, "json": case_rows.JSON_COLUMNS}
    for kind, column_type in (("money", ExactDecimal), ("time", UTCDateTime), ("json", JSON)):
        assert {c.name for c in table if isinstance(c.type, column_type)} == kinds[kind] & set(columns), kind


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def decided(database: Database, default_config: Config) -> Iterator[tuple[Database, str]]:
    """Two appeals filed through the service, and a third case row with every field set (money,
    flags, a decision with reasons, times, a payout override) and an event with nested details."""
    service = CaseService(database, default_config)
    service.submit(new_draft("user-1"), SYSTEM)
    service.submit(new_draft("user-2", network="bsc"), SYSTEM)
    when = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    with database.write() as session:
        case = Case(
            reference="RC-900001", user_id="user-3", origin="detected", network="ethereum", deposit_network="bsc",
            asset="USDT", tx_hash="0x" + "ab" * 32, deposit_address="0x" + "cd" * 20, memo="memo 7",
            claimed_amount=Decimal("1250.000000000000000001"), status="approved", category="wrong_network",
            recoverable="yes", resolution="refund", flags=["wrong_network", "large"],
            decision={"reasons": [{"code": "wrong_network", "text": "sent on BSC"}, "plain reason"],
                      "amount": "1250.5", "nested": {"list": [1, "two", None]}},
            category_override=None, amount=Decimal("1250.5"), value_usd=Decimal("1250.50"),
            fee_amount=Decimal("12.5"), fee_asset="USDT", fee_usd=Decimal("12.50"), net_amount=Decimal("1238"),
            credited_user_id=None, refund_network="bsc", refund_address="0x" + "ef" * 20, refund_tx_hash=None,
            assignee="ann", created_at=when, updated_at=when + timedelta(hours=2), sla_due_at=when + timedelta(days=3),
            first_decided_at=when + timedelta(hours=1), check_count=2, version=4,
            payout_override={"memo": "new"},
        )
        session.add(case)
        session.flush()
        last = session.execute(text("SELECT max(id) FROM case_events")).scalar_one()  # the audit chain sets ids
        session.add(CaseEvent(id=last + 1, case_id=case.id, actor="ann", actor_role="specialist", action="approve",
                              from_status="in_review", to_status="approved",
                              details={"amount": "1250.5", "reasons": ["a", "b"], "to": {"x": 1}},
                              created_at=when + timedelta(hours=1), prev_hash="0" * 64, hash="f" * 64))
    yield database, "RC-900001"


def test_core_rows_hold_the_values_the_orm_loads(decided: tuple[Database, str]) -> None:
    db, reference = decided
    with db.read() as session:
        models = case_reads.read_cases(session, limit=10)
        view = case_reads.read_case(session, reference)
    with case_rows.read_connection(_url(db)) as reader:
        rows = case_rows.case_rows(reader, limit=10)
        shown = case_rows.read_case_rows(reader, reference)
    assert len(rows) == len(models) == 3
    for row, model in [*zip(rows, models, strict=True), (shown.case, view.case),
                       *zip(shown.events, view.events, strict=True)]:
        assert list(row) == [c.name for c in type(model).__table__.columns]  # type: ignore[attr-defined]
        for name, value in row.items():
            assert value == getattr(model, name) and type(value) is type(getattr(model, name)), name
    assert [case_rows.case_json(r) for r in rows] == [case_json(m) for m in models]
    assert [case_rows.event_json(e) for e in shown.events] == [event_json(e) for e in view.events]
    # key order too: the commands print these dictionaries
    assert list(case_rows.case_json(shown.case)) == list(case_json(view.case))
    assert list(case_rows.event_json(shown.events[0])) == list(event_json(view.events[0]))


FILTERS = [
    case_rows.CaseFilter(),
    case_rows.CaseFilter(status="submitted"),
    case_rows.CaseFilter(network="ethereum"),
    case_rows.CaseFilter(user_id="user-2", network="bsc"),
    case_rows.CaseFilter(assignee="ann", origin="detected"),
    case_rows.CaseFilter(category="tx_not_found"),
]


@pytest.mark.parametrize("filters", FILTERS, ids=[repr(f) for f in FILTERS])
def test_core_filters_pages_and_counts_are_the_orms(decided: tuple[Database, str],
                                                    filters: case_rows.CaseFilter) -> None:
    db, _ = decided
    for limit, offset in ((100, 0), (1, 1), (2, 0), (5, 3)):
        with db.read() as session:
            expected = [c.id for c in case_reads.read_cases(session, filters, limit=limit, offset=offset)]
            total = case_reads.count_cases(session, filters)
        with case_rows.read_connection(_url(db)) as reader:
            assert [r.id for r in case_rows.case_rows(reader, filters, limit=limit, offset=offset)] == expected
            assert case_rows.count_case_rows(reader, filters) == total


def test_an_unknown_reference_is_not_found(decided: tuple[Database, str]) -> None:
    db, _ = decided
    with case_rows.read_connection(_url(db)) as reader, pytest.raises(NotFound, match="no case RC-404"):
        case_rows.read_case_rows(reader, "RC-404")


HOSTILE = ["x' OR '1'='1", "user-1'; DROP TABLE cases; --", "%", "_", "?", "%s", "%(x)s"]  # (argv holds no NUL byte)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_a_filter_value_is_a_bound_value_never_sql(decided: tuple[Database, str], value: str) -> None:
    """Quotes, LIKE wildcards and parameter markers in a filter match only themselves: no case has
    them, every table is still there."""
    db, reference = decided
    with case_rows.read_connection(_url(db)) as reader:
        assert case_rows.case_rows(reader, case_rows.CaseFilter(user_id=value)) == []
        assert case_rows.count_case_rows(reader, case_rows.CaseFilter(user_id=value, network=value)) == 0
        with pytest.raises(NotFound):
            case_rows.read_case_rows(reader, value)
        assert case_rows.count_case_rows(reader) == 3 and case_rows.read_case_rows(reader, reference).events


def test_the_commands_print_the_views_json(decided: tuple[Database, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``cases list --json`` and ``cases show --json`` print what ``recovery.views`` makes of the
    models, byte for byte; the tables show the fully decided case."""
    db, reference = decided
    monkeypatch.setenv("RECOVERY_DATABASE_URL", db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    with db.read() as session:
        models = case_reads.read_cases(session, case_reads.CaseFilter(network="ethereum"))
        view = case_reads.read_case(session, reference)

    def dumped(data: object) -> str:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    listed = runner.invoke(cli.app, ["cases", "list", "--network", "ethereum", "--json"])
    assert listed.exit_code == 0 and listed.stdout == dumped([case_json(c) for c in models])
    shown = runner.invoke(cli.app, ["cases", "show", reference, "--json"])
    expected = {**case_json(view.case), "events": [event_json(e) for e in view.events]}
    assert shown.exit_code == 0 and shown.stdout == dumped(expected)
    table = runner.invoke(cli.app, ["cases", "list", "--user", "user-3"])
    assert table.exit_code == 0
    assert "1 of 1 cases" in table.stdout and "wrong_network, large" in table.stdout
    assert "2026-03-04T05:06+00:00" in table.stdout
    page = runner.invoke(cli.app, ["cases", "show", reference])
    assert page.exit_code == 0
    for shown_text in ("1250.000000000000000001", "• sent on BSC", "• plain reason", "ann (specialist)",
                       "in_review → approved", "2026-03-04T06:06:07+00:00", "sla_due_at"):
        assert shown_text in page.stdout, shown_text
    missing = runner.invoke(cli.app, ["cases", "show", "RC-404"])
    assert missing.exit_code == 1 and "error (not_found): no case RC-404" in missing.stderr


# ---------------------------------------------------------------------------- settings without pydantic
GOOD_ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"RECOVERY_DATABASE_URL": "postgresql+psycopg://u:p@db.example/recovery"},
    {"recovery_database_url": "sqlite:////tmp/lower-case-name.db"},  # names are read without regard to case
    {"RECOVERY_DATABASE_URL": ""},
    {"RECOVERY_EXCHANGE_NAME": "  Example Exchange  "},
    {"RECOVERY_WEBHOOK_URLS": "https://a.example/hook, http://b.example:8080/x",
     "RECOVERY_WEBHOOK_SECRET": "s" * 16},
    {"RECOVERY_WEBHOOK_URLS": " , ", "RECOVERY_WEBHOOK_SECRET": ""},
    {"RECOVERY_LOG_LEVEL": "whatever", "RECOVERY_UNKNOWN": "ignored"},
]
BAD_ENVIRONMENTS: list[dict[str, str]] = [
    {"RECOVERY_DATABASE_URL": "mysql://db.example/recovery"},
    {"RECOVERY_EXCHANGE_NAME": ""},
    {"RECOVERY_EXCHANGE_NAME": "two\nlines"},
    {"RECOVERY_EXCHANGE_NAME": "x" * 65},
    {"RECOVERY_WEBHOOK_URLS": "ftp://a.example/x", "RECOVERY_WEBHOOK_SECRET": "s" * 16},
    {"RECOVERY_WEBHOOK_URLS": "https://a.example/x"},
    {"RECOVERY_WEBHOOK_URLS": "https://a.example/x", "RECOVERY_WEBHOOK_SECRET": "short"},
    {"recovery_webhook_urls": "https://user:pw@a.example/x", "RECOVERY_WEBHOOK_SECRET": "s" * 16},
]


def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, values: dict[str, str]) -> None:
    for name in list(__import__("os").environ):
        if name.upper().startswith("RECOVERY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(tmp_path / "var"))
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("values", GOOD_ENVIRONMENTS, ids=range(len(GOOD_ENVIRONMENTS)))
def test_the_database_url_without_pydantic_is_the_settings(values: dict[str, str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, tmp_path, values)
    assert database_url() == Settings().resolved_database_url()


def test_the_default_var_dir_is_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, tmp_path, {})
    monkeypatch.delenv("RECOVERY_VAR_DIR")
    monkeypatch.chdir(tmp_path)
    assert database_url() == Settings().resolved_database_url() == f"sqlite:///{tmp_path / 'var' / 'recovery.db'}"


@pytest.mark.parametrize("values", BAD_ENVIRONMENTS, ids=range(len(BAD_ENVIRONMENTS)))
def test_a_bad_setting_fails_as_the_settings_fail(values: dict[str, str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, tmp_path, values)
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError) as expected:
            Settings()
        with pytest.raises(ValidationError) as raised:
            database_url()
    finally:
        get_settings.cache_clear()
    assert raised.value.title == "Settings"
    assert settings_problems(raised.value) == settings_problems(expected.value)


# ---------------------------------------------------------------------------- a database that cannot be read
def _command_fails(monkeypatch: pytest.MonkeyPatch, url: str, message: str) -> None:
    """``cases list`` and ``cases show`` end with exit 1 and one line naming the problem, no traceback."""
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    for args in (["cases", "list"], ["cases", "show", "RC-000001", "--json"]):
        result = runner.invoke(cli.app, args)
        assert result.exit_code == 1, result.output
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert result.stdout == ""


def test_a_missing_sqlite_file_is_an_error_and_is_never_created(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(case_rows.ReadFailed, match="cannot open the SQLite database"), \
            case_rows.read_connection(f"sqlite:///{path}"):
        pass
    _command_fails(monkeypatch, f"sqlite:///{path}", f"cannot open the SQLite database '{path}'")
    assert not path.exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_without_the_schema_is_told_to_upgrade(backend: str, tmp_path: Path, request: pytest.FixtureRequest,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "sqlite":
        path = tmp_path / "empty.db"
        path.touch()
        url = f"sqlite:///{path}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.create_database())
    with pytest.raises(case_rows.ReadFailed, match="run `recovery db upgrade`"), \
            case_rows.read_connection(url) as reader:
        case_rows.case_rows(reader)
    _command_fails(monkeypatch, url, "the database schema is not this version's")


def test_an_unreachable_postgresql_is_an_error_not_an_empty_list(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+psycopg://postgres@/recovery?host={tmp_path}"  # no server listens there
    with pytest.raises(case_rows.ReadFailed, match="cannot reach the database"), case_rows.read_connection(url):
        pass
    _command_fails(monkeypatch, url, "error: cannot reach the database")


def test_a_url_the_driver_path_cannot_open_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}?mode=ro"
    with pytest.raises(case_rows.ReadFailed, match="RECOVERY_DATABASE_URL"), case_rows.read_connection(url):
        pass
