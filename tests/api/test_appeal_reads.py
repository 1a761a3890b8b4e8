"""The appeal read remembers its answers against everything they were made of: a case read again
unchanged is not rendered again, and any change (an event, any column, the language) is read anew."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from recovery.public import AppealReader, CaseRecord, EventRecord
from recovery.services import Actor
from recovery.vocabulary import Role
from tests.api.conftest import ApiWorld, bearer
from tests.api.test_languages import file_decided, scenario


class CountingRender:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, case: CaseRecord, events: list[EventRecord], language: str) -> bytes:
        self.calls += 1
        return f"{case.status}|{case.amount}|{len(events)}|{language}".encode()


def test_an_unchanged_case_is_rendered_once_and_any_change_is_read_anew(world: ApiWorld) -> None:
    reference = file_decided(world, scenario("uncredited_valid_usdt"))
    reader = AppealReader(world.db)
    render = CountingRender()
    try:
        first = reader.own_view("alice", reference, "en", render)
        assert first is not None and first.startswith(b"in_review|")
        assert reader.own_view("alice", reference, "en", render) == first
        remembered = reader.inline  # the embedded database's raw path remembers; PostgreSQL renders each time
        assert render.calls == (1 if remembered else 2)
        assert reader.own_view("bob", reference, "en", render) is None  # another user's case: nothing
        assert reader.own_view("alice", reference, "es", render) == first.replace(b"|en", b"|es")

        calls = render.calls
        case = world.service.get(reference).case
        world.service.request_info(reference, "Which wallet?", Actor("spec", Role.SPECIALIST),
                                   expected_version=case.version)
        after_event = reader.own_view("alice", reference, "en", render)
        assert after_event is not None and after_event.startswith(b"needs_info|")
        assert render.calls == calls + 1

        # a column changed behind the service's back (no version bump, no event) is still a new answer
        with world.db.engine.begin() as connection:
            connection.execute(text("UPDATE cases SET amount = '99' WHERE reference = :r"), {"r": reference})
        changed = reader.own_view("alice", reference, "en", render)
        assert changed is not None and b"|99|" in changed
    finally:
        reader.close()


def test_the_api_answers_the_same_bytes_until_the_case_changes(world: ApiWorld) -> None:
    reference = file_decided(world, scenario("uncredited_valid_usdt"))
    path = f"/v1/appeals/{reference}"
    first = world.client.get(path, headers=bearer("alice"))
    again = world.client.get(path, headers=bearer("alice"))
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    case = world.service.get(reference).case
    world.service.request_info(reference, "Which wallet?", Actor("spec", Role.SPECIALIST),
                               expected_version=case.version)
    changed: Any = world.client.get(path, headers=bearer("alice")).json()
    assert changed["status"] == "needs_info" and changed["open_question"]["message"] == "Which wallet?"
    assert world.client.get(path, headers=bearer("bob")).status_code == 404
