"""Status webhooks (issue 22) on SQLite and PostgreSQL, delivered to a real local receiver that
verifies every signature: the outbox is written in the transaction of the change, events of a case
arrive in order, a receiver down for an hour gets everything when back, a worker killed mid-batch
loses nothing and repeats only the same ids, two PostgreSQL workers never send one event at once,
internal reasons and other users never leave, bad settings are named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select as core_select
from typer.testing import CliRunner

from recovery import webhook_outbox, webhooks
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.models import WebhookOutbox
from recovery.services import SYSTEM, Actor, CaseService
from recovery.settings import REPO_ROOT, Settings, get_settings, settings_problems
from recovery.vocabulary import Role
from tests.conftest import Clock, new_database
from tests.test_cases import new_draft
from tests.webhook_receiver import Receiver, check_signature

SECRET = "whsec-test-" + "s" * 24
SPECIALIST = Actor("maria", Role.SPECIALIST)
RECOVERY = str(Path(sys.executable).parent / "recovery")
BODY_KEYS = {"id", "type", "reference", "user_id", "occurred_at", "appeal"}


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test reads the settings it sets (and leaves none behind for the next)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def configure(monkeypatch: pytest.MonkeyPatch, *urls: str) -> None:
    monkeypatch.setenv("RECOVERY_WEBHOOK_URLS", ", ".join(urls))
    monkeypatch.setenv("RECOVERY_WEBHOOK_SECRET", SECRET)
    get_settings.cache_clear()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(SECRET).start()
    yield running
    running.stop()


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from new_database("postgresql", request, tmp_path)


def outbox(db: Database) -> list[Any]:
    table = WebhookOutbox.__table__  # type: ignore[attr-defined]
    with db.engine.connect() as connection:
        return list(connection.execute(core_select(table).order_by(table.c.id)))


def deliverer(db: Database, urls: list[str], clock: Any, **options: Any) -> webhooks.Deliverer:
    options.setdefault("timeout", 2.0)
    options.setdefault("lease_seconds", 60.0)
    return webhooks.Deliverer(db, urls=urls, secret=SECRET, clock=clock, **options)


def version(service: CaseService, reference: str) -> int:
    return service.get(reference).case.version


def four_events(service: CaseService, user: str, network: str = "ethereum") -> str:
    """A case with four events its user sees, without chains: submitted, awaiting the chain, a
    question, the answer (and a note and an assignment, which the user does not see)."""
    case, _ = service.submit(new_draft(user, network=network), Actor(user, Role.USER))
    reference = case.reference or ""
    service.apply_decision(reference, None, SYSTEM, expected_version=version(service, reference),
                           unavailable={network: "node down"})
    service.note(reference, "INTERNAL-NOTE: user looks suspicious", SPECIALIST,
                 expected_version=version(service, reference))
    service.assign(reference, "maria", SPECIALIST, expected_version=version(service, reference))
    service.request_info(reference, "Please send the exchange's withdrawal record.", SPECIALIST,
                         expected_version=version(service, reference))
    service.provide_info(reference, "Here it is.", Actor(user, Role.USER), expected_version=version(service, reference))
    return reference


FOUR = ["submitted", "awaiting_chain", "information_requested", "information_provided"]


def per_case(records: list[Any]) -> dict[str, list[tuple[str, str]]]:
    """(id, type) of the first receipt of each event, per case, in the order received."""
    seen: set[str] = set()
    cases: dict[str, list[tuple[str, str]]] = {}
    for record in records:
        if record.event_id in seen:
            continue
        seen.add(record.event_id)
        cases.setdefault(record.data["reference"], []).append((record.event_id, record.data["type"]))
    return cases


def queued_per_case(db: Database, url: str) -> dict[str, list[tuple[str, str]]]:
    cases: dict[str, list[tuple[str, str]]] = {}
    for row in outbox(db):
        if row.url == url:
            cases.setdefault(row.reference, []).append((row.event_id, row.event_type))
    return cases


# ------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(("urls", "secret", "named"), [
    ("ftp://hooks.example/x", SECRET, "RECOVERY_WEBHOOK_URLS: entry 1 ('ftp://hooks.example/x')"),
    ("https://ok.example/a, not-a-url", SECRET, "RECOVERY_WEBHOOK_URLS: entry 2 ('not-a-url')"),
    ("https://user:pw@hooks.example/", SECRET, "RECOVERY_WEBHOOK_URLS: entry 1"),
    ("https://hooks.example:port/", SECRET, "RECOVERY_WEBHOOK_URLS: entry 1"),
    ("https://hooks.example/", None, "RECOVERY_WEBHOOK_SECRET must be set"),
    ("https://hooks.example/", "short-secret", "RECOVERY_WEBHOOK_SECRET is 12 characters"),
])
def test_bad_settings_are_named_and_the_secret_is_never_echoed(
    monkeypatch: pytest.MonkeyPatch, urls: str, secret: str | None, named: str
) -> None:
    monkeypatch.setenv("RECOVERY_WEBHOOK_URLS", urls)
    if secret is None:
        monkeypatch.delenv("RECOVERY_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("RECOVERY_WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError) as raised:
        Settings()
    problems = settings_problems(raised.value)
    assert any(named in p for p in problems), problems
    assert "short-secret" not in str(raised.value)
    get_settings.cache_clear()
    from app.cli import app

    for command in (["webhooks", "status"], ["webhooks", "deliver", "--once"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert named in result.output and "short-secret" not in result.output and "Traceback" not in result.output


def test_good_settings_are_parsed_in_order_once() -> None:
    settings = Settings(webhook_urls="https://a.example/h  http://127.0.0.1:9/x,https://a.example/h",
                        webhook_secret=SECRET)
    assert settings.webhook_targets == ("https://a.example/h", "http://127.0.0.1:9/x")
    assert Settings(webhook_urls="").webhook_targets == ()


def test_the_signature_is_the_stripe_style_scheme() -> None:
    body = b'{"id":"evt_1"}'
    header = webhooks.signature(SECRET, body, 1_765_000_000)
    assert check_signature(SECRET, header, body) == (True, 1_765_000_000)
    assert webhooks.verify_signature(SECRET, header, body, now=1_765_000_100)
    assert not webhooks.verify_signature(SECRET, header, body + b" ", now=1_765_000_100)
    assert not webhooks.verify_signature("another-secret-0123456789", header, body, now=1_765_000_100)
    assert not webhooks.verify_signature(SECRET, header, body, now=1_765_000_000 + 301)  # too old: a replay


# ------------------------------------------------------------------------------------------ queueing


def test_with_no_url_nothing_is_queued_and_nothing_is_built(
    service: CaseService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECOVERY_WEBHOOK_URLS", raising=False)

    def never(*_args: Any) -> None:
        raise AssertionError("the webhook event was built with webhooks off")

    monkeypatch.setattr(webhook_outbox, "event_type", never)
    four_events(service, "user-1")
    assert outbox(database) == []


def test_a_change_that_rolls_back_queues_nothing(
    service: CaseService, database: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, receiver.url)
    case, _ = service.submit(new_draft("user-1"), Actor("user-1", Role.USER))
    reference = case.reference or ""
    assert [row.event_type for row in outbox(database)] == ["submitted"]  # the control: queued when committed
    real = webhook_outbox.enqueue
    written: list[int] = []

    def enqueue_then_fail(*args: Any, **kwargs: Any) -> int:
        written.append(real(*args, **kwargs))  # the rows are written in the change's transaction...
        raise RuntimeError("the database went away before the commit")

    monkeypatch.setattr(webhook_outbox, "enqueue", enqueue_then_fail)
    with pytest.raises(RuntimeError):
        service.reject(reference, "other", SPECIALIST, expected_version=version(service, reference))
    assert written == [1]
    assert service.get(reference).case.status == "submitted"  # ...and go with it
    assert [row.event_type for row in outbox(database)] == ["submitted"]
    assert deliverer(database, [receiver.url], utcnow).deliver_due().delivered == 1
    assert [r.data["type"] for r in receiver.records] == ["submitted"]


def test_a_receiver_down_for_an_hour_then_back_gets_every_event_in_order(
    service: CaseService, database: Database, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    up, down = Receiver(SECRET).start(), Receiver(SECRET).start()
    down.stop()  # refuses connections from the start
    try:
        configure(monkeypatch, up.url, down.url)
        references = [four_events(service, f"user-{i}") for i in range(3)]
        queued = outbox(database)
        assert len(queued) == 3 * len(FOUR) * 2
        worker = deliverer(database, [up.url, down.url], clock)
        for _minute in range(0, 60, 5):
            worker.deliver_due()
            clock.advance(minutes=5)
        assert {r.event_id for r in up.records} == {row.event_id for row in queued}  # the other URL is not held up
        late = webhooks.status(database, now=clock(), urls=[up.url, down.url])
        by_url = {item["url"]: item for item in late["urls"]}
        assert by_url[down.url]["pending"] == 12 and by_url[down.url]["delivered"] == 0
        assert "connection failed" in (by_url[down.url]["last_error"] or "")
        assert late["backlog"]["delivered"] == 12 and late["oldest_pending_seconds"] >= 3600
        down.start()  # back, on the same port
        for _step in range(30):
            if not worker.deliver_due().attempted and all(r.state != "pending" for r in outbox(database)):
                break
            clock.advance(minutes=5)
        assert all(row.state == "delivered" for row in outbox(database))
        for receiver in (up, down):
            assert all(r.verified for r in receiver.records)
            assert len(receiver.ids()) == len(set(receiver.ids())) == 12  # each once (nothing failed mid-way)
            got = per_case(receiver.records)
            assert got == queued_per_case(database, receiver.url)
            assert {ref: [t for _i, t in events] for ref, events in got.items()} == {ref: FOUR for ref in references}
        # the same event has one id and one body for both URLs
        assert {r.event_id: r.raw for r in up.records} == {r.event_id: r.raw for r in down.records}
        done = webhooks.status(database, now=clock(), urls=[up.url, down.url])
        assert done["backlog"] == {"due": 0, "waiting": 0, "in_flight": 0, "delivered": 24, "dead": 0}
    finally:
        up.stop()
        down.stop()


def test_an_event_refused_for_24_hours_is_dead_and_only_then_the_next_one_goes(
    service: CaseService, database: Database, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, receiver.url)
    reference = four_events(service, "user-1")
    first = outbox(database)[0]
    receiver.answer = lambda record: 500 if record.event_id == first.event_id else 200
    worker = deliverer(database, [receiver.url], clock)
    for _half_hour in range(52):
        worker.deliver_due()
        if outbox(database)[0].state == "dead":
            break
        assert receiver.ids() == [first.event_id] * len(receiver.records)  # nothing overtakes it
        clock.advance(minutes=30)
    dead = outbox(database)[0]
    assert dead.state == "dead" and dead.last_error == "HTTP 500" and dead.last_status == 500
    assert 24 <= (dead.last_attempt_at - dead.created_at).total_seconds() / 3600 <= 24.5
    attempts = dead.attempts
    assert 8 <= attempts <= 40  # backoff: 30 s doubling up to an hour apart, not one try per pass
    worker.deliver_due()
    report = webhooks.status(database, now=clock(), urls=[receiver.url])
    assert report["backlog"]["dead"] == 1 and report["urls"][0]["last_error"] == "HTTP 500"
    assert receiver.ids()[:attempts] == [first.event_id] * attempts  # the later ones only once it is dead
    assert [r.data["type"] for r in receiver.records[attempts:]] == FOUR[1:]
    assert all(r.data["reference"] == reference for r in receiver.records)


def test_redirects_are_followed_only_to_the_same_origin(
    service: CaseService, database: Database, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = Receiver(SECRET).start()
    try:
        receiver.redirect_to = elsewhere.url  # another port: another origin
        configure(monkeypatch, receiver.url)
        service.submit(new_draft("user-1"), Actor("user-1", Role.USER))
        report = deliverer(database, [receiver.url], clock).deliver_due()
        assert (report.delivered, report.failed) == (0, 1)
        assert elsewhere.records == [] and "not followed" in (outbox(database)[0].last_error or "")
        receiver.redirect_to = "/moved"  # same origin: followed, same body and signature
        clock.advance(minutes=5)
        assert deliverer(database, [receiver.url], clock).deliver_due().delivered == 1
        [moved] = receiver.records
        assert moved.path == "/moved" and moved.verified
    finally:
        elsewhere.stop()


# ------------------------------------------------------------------------------------ dying workers


def test_a_worker_that_dies_between_send_and_mark_loses_nothing_and_repeats_the_same_ids(
    service: CaseService, database: Database, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, receiver.url)
    for i in range(6):
        four_events(service, f"user-{i}")
    queued = outbox(database)
    doomed = deliverer(database, [receiver.url], clock, batch_size=4)

    def die(_results: Any) -> webhooks.DeliveryReport:
        raise SystemExit("killed after sending, before recording")

    monkeypatch.setattr(doomed, "mark", die)
    with pytest.raises(SystemExit):
        doomed.deliver_due()
    assert len(receiver.records) == 4
    sent_once = {r.event_id: r.raw for r in receiver.records}
    survivor = deliverer(database, [receiver.url], clock)
    # the dead worker's lease still holds its batch (the heads of four cases): only the other two go
    assert survivor.deliver_due().delivered == 2 * len(FOUR)
    assert {row.event_id for row in outbox(database) if row.state == "pending" and row.leased_by} == set(sent_once)
    clock.advance(seconds=61)
    while survivor.deliver_due().attempted:  # ...until it expires
        pass
    assert all(row.state == "delivered" for row in outbox(database))
    ids = receiver.ids()
    assert set(ids) == {row.event_id for row in queued}
    repeated = {i for i in ids if ids.count(i) > 1}
    assert repeated == set(sent_once)  # only the batch in hand, and under the same ids, byte for byte
    assert all(r.raw == sent_once[r.event_id] for r in receiver.records if r.event_id in sent_once)
    assert per_case(receiver.records) == queued_per_case(database, receiver.url)
    assert all(r.verified for r in receiver.records)


def test_a_killed_worker_process_loses_nothing(
    service: CaseService, database: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, receiver.url)
    for i in range(8):
        case, _ = service.submit(new_draft(f"user-{i}"), Actor(f"user-{i}", Role.USER))
        reference = case.reference or ""
        service.apply_decision(reference, None, SYSTEM, expected_version=version(service, reference))
    queued = outbox(database)
    assert len(queued) == 16
    hit, release = threading.Event(), threading.Event()

    def hold_the_third(_record: Any) -> None:
        if len(receiver.records) == 3:
            hit.set()
            release.wait(30)

    receiver.on_request = hold_the_third
    env = dict(os.environ, RECOVERY_DATABASE_URL=database.engine.url.render_as_string(hide_password=False),
               RECOVERY_VAR_DIR=str(tmp_path), RECOVERY_CONFIG_DIR=str(REPO_ROOT / "config"))
    worker = subprocess.Popen([RECOVERY, "webhooks", "deliver", "--batch-size", "5", "--timeout", "20",
                               "--lease-seconds", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _tick in range(240):  # until the third request is held, or the worker ended on its own
            if hit.wait(0.25) or worker.poll() is not None:
                break
        assert hit.is_set(), (worker.poll(), worker.stderr.read().decode() if worker.poll() is not None and
                              worker.stderr is not None else "")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(30)
    finally:
        release.set()
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
    receiver.on_request = None
    in_hand = [row.event_id for row in outbox(database) if row.leased_by is not None]
    assert len(in_hand) == 5 and all(row.state == "pending" for row in outbox(database) if row.event_id in in_hand)
    later = Clock(utcnow() + timedelta(seconds=61))  # the dead worker's lease has run out
    survivor = deliverer(database, [receiver.url], later)
    while survivor.deliver_due().attempted:
        pass
    assert all(row.state == "delivered" for row in outbox(database))
    ids = receiver.ids()
    assert set(ids) == {row.event_id for row in queued}
    assert {i for i in ids if ids.count(i) > 1} <= set(in_hand) and len(ids) > len(set(ids))
    assert per_case(receiver.records) == queued_per_case(database, receiver.url)
    assert all(r.verified for r in receiver.records)


def test_two_workers_on_postgresql_never_send_the_same_event_at_once(
    pg_db: Database, default_config: Any, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    configure(monkeypatch, receiver.url)
    service = CaseService(pg_db, default_config, clock)
    for i in range(30):
        case, _ = service.submit(new_draft(f"user-{i}"), Actor(f"user-{i}", Role.USER))
        reference = case.reference or ""
        service.apply_decision(reference, None, SYSTEM, expected_version=version(service, reference))
    queued = outbox(pg_db)
    in_flight: set[str] = set()
    overlaps: list[str] = []
    both = threading.Barrier(2, timeout=20)
    met: set[str] = set()
    guard = threading.Lock()

    def watch(record: Any) -> None:
        with guard:
            if record.event_id in in_flight:
                overlaps.append(record.event_id)
            in_flight.add(record.event_id)
            first = record.worker not in met
            met.add(record.worker)
        if first:
            both.wait()  # both workers hold a request open at the same moment: they really run together

    def done(record: Any) -> int:
        with guard:
            in_flight.discard(record.event_id)
        return 200

    receiver.on_request, receiver.answer = watch, done
    workers = []
    for name in ("A", "B"):
        http = webhooks.new_session()
        http.headers["X-Worker"] = name
        workers.append(deliverer(pg_db, [receiver.url], clock, batch_size=3, http=http))
    assert isinstance(workers[0].http, requests.Session)
    errors: list[BaseException] = []

    def run(worker: webhooks.Deliverer) -> None:
        try:
            while worker.deliver_due().attempted:
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == [] and overlaps == []
    while workers[0].deliver_due().attempted:  # whatever a worker left when the other still held its head
        pass
    ids = receiver.ids()
    assert sorted(ids) == sorted(row.event_id for row in queued)  # each exactly once
    assert {r.worker for r in receiver.records} == {"A", "B"}
    assert per_case(receiver.records) == queued_per_case(pg_db, receiver.url)


# ------------------------------------------------------------------------------------------- the CLI


def test_the_cli_delivers_once_and_shows_the_status(
    service: CaseService, database: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, receiver.url)
    four_events(service, "user-1")
    env = dict(os.environ, RECOVERY_DATABASE_URL=database.engine.url.render_as_string(hide_password=False),
               RECOVERY_VAR_DIR=str(tmp_path), RECOVERY_CONFIG_DIR=str(REPO_ROOT / "config"))

    def run(*args: str) -> Any:
        done = subprocess.run([RECOVERY, "webhooks", *args], env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = json.loads(run("status", "--json"))
    assert before["backlog"]["due"] == 4 and before["backlog"]["waiting"] == 0
    assert before["urls"][0]["url"] == receiver.url and before["oldest_pending_seconds"] is not None
    assert json.loads(run("deliver", "--once", "--json"))["delivered"] == 4
    after = json.loads(run("status", "--json"))
    assert after["backlog"] == {"due": 0, "waiting": 0, "in_flight": 0, "delivered": 4, "dead": 0}
    assert "delivered 4" in run("status")
    assert [r.data["type"] for r in receiver.records] == FOUR and all(r.verified for r in receiver.records)
    assert all(set(r.data) == BODY_KEYS and r.header_event_id == r.event_id for r in receiver.records)


def test_the_worker_runs_until_sigterm_and_then_stops_cleanly(
    service: CaseService, database: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, receiver.url)
    env = dict(os.environ, RECOVERY_DATABASE_URL=database.engine.url.render_as_string(hide_password=False),
               RECOVERY_VAR_DIR=str(tmp_path), RECOVERY_CONFIG_DIR=str(REPO_ROOT / "config"))
    worker = subprocess.Popen([RECOVERY, "webhooks", "deliver", "--poll-seconds", "0.1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        four_events(service, "user-1")  # queued while the worker runs: it picks them up
        for _tick in range(240):
            if len(receiver.records) >= len(FOUR) or worker.poll() is not None:
                break
            threading.Event().wait(0.25)
        assert [r.data["type"] for r in receiver.records] == FOUR, worker.poll()
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
    assert worker.returncode == 0, err
    assert "done: 4 delivered" in out
    assert all(row.state == "delivered" for row in outbox(database))


def test_a_worker_gives_back_what_it_could_not_send_within_its_lease(
    service: CaseService, database: Database, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, receiver.url)
    for i in range(5):
        service.submit(new_draft(f"user-{i}"), Actor(f"user-{i}", Role.USER))
    def slow(_record: Any) -> None:
        clock.advance(seconds=25)  # each answer takes 25 s

    receiver.on_request = slow
    report = deliverer(database, [receiver.url], clock, batch_size=5, lease_seconds=60).deliver_batch()
    assert report is not None and (report.delivered, report.postponed) == (3, 2)  # the 4th would outlive the lease
    rows = outbox(database)
    assert [row.state for row in rows] == ["delivered"] * 3 + ["pending"] * 2
    assert all(row.leased_by is None and row.attempts == 0 for row in rows[3:])  # given back, not counted as tried
