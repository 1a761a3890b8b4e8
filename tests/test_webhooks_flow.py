"""A whole appeal on real anvil chains, pushed to a verifying receiver (SQLite and PostgreSQL):
every change its user sees (checked with its reasons and fee quote, the question and its reminder,
the answer, the approval, the refund sent and confirmed) arrives once, in order, as the user's
appeal view; operators' names, notes, internal reasons and the other appellant of the same
transfer never appear."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recovery import public
from recovery.db import Database
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import FUNDER, EvmTestbed
from tests.test_batch_recheck import appeal
from tests.test_payouts import PEPE_NET_UNITS, PEPE_PRICE, PEPE_UNITS, decided, pay, recheck, settle, version
from tests.test_webhooks import BODY_KEYS, SECRET, configure, deliverer
from tests.webhook_receiver import Receiver

MARIA = Actor("maria", Role.SPECIALIST)
OMAR = Actor("omar", Role.APPROVER)
NOTE = "INTERNAL-NOTE: double-check the sender with compliance"

#: the token has no price: the team values it (``fee_set``, the new fee quote) before approving
CAROL_SEES = ["submitted", "checked", "information_requested", "information_reminder", "information_provided",
              "fee_set", "approved", "refund_sent", "refunded"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(SECRET).start()
    yield running
    running.stop()


def internal_texts(decision: dict[str, Any] | None) -> list[str]:
    return [r["text"] for r in (decision or {}).get("reasons", []) if r.get("internal")]


def test_a_whole_refund_is_pushed_as_the_user_sees_it_and_nothing_else(
    database: Database, evm_testbed: EvmTestbed, clock: Clock, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, receiver.url)
    service = CaseService(database, evm_testbed.config, clock)
    token = evm_testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    reference, tx, address = decided(service, evm_testbed, "carol", token, PEPE_UNITS)
    # dave claims carol's deposit: his own case, contested, decided not ours for him
    daves = appeal(service, "dave", "ethereum", token, tx, address)
    recheck(service)
    service.note(reference, NOTE, MARIA, expected_version=version(service, reference))
    service.assign(reference, "maria", MARIA, expected_version=version(service, reference))
    service.request_info(reference, "Which wallet did you send it from?", MARIA,
                         expected_version=version(service, reference))
    clock.advance(hours=service.config.policy.info_reminder_hours + 1)
    assert service.sweep_questions()["reminded"] == [reference]
    service.provide_info(reference, "From my own wallet.", Actor("carol", Role.USER),
                         expected_version=version(service, reference))
    service.set_valuation(reference, MARIA, expected_version=version(service, reference), price_usd=PEPE_PRICE,
                          source="quote", reason="no listed price")
    service.send_for_approval(reference, MARIA, expected_version=version(service, reference))
    service.approve(reference, OMAR, expected_version=version(service, reference))
    refund = pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS)
    service.record_refund(reference, refund, MARIA, expected_version=version(service, reference))
    settle(service, evm_testbed)
    assert service.get(reference).case.status == "refunded"

    report = deliverer(database, [receiver.url], clock).deliver_due()
    assert report.failed == 0 and report.delivered == len(receiver.records)
    assert all(r.verified for r in receiver.records)
    assert all(set(r.data) == BODY_KEYS for r in receiver.records)
    carol = [r for r in receiver.records if r.data["reference"] == reference]
    dave = [r for r in receiver.records if r.data["reference"] == daves]
    assert len(carol) + len(dave) == len(receiver.records)
    assert [r.data["type"] for r in carol] == CAROL_SEES
    assert {r.data["user_id"] for r in carol} == {"carol"} and {r.data["user_id"] for r in dave} == {"dave"}
    assert [r.data["type"] for r in dave][:2] == ["submitted", "checked"]
    assert [r.data["appeal"]["status"] for r in carol][-2:] == ["refund_pending", "refunded"]
    assert carol[-1].data["appeal"]["refund_tx_hash"] == refund
    # the body is the user's appeal view as the API shows it after that change
    view = service.get(reference)
    assert carol[-1].data["appeal"] == public.appeal_view(view.case, view.events, service.config)
    assert carol[1].data["appeal"]["fee"] is not None and carol[1].data["appeal"]["reasons"]

    hidden = ["maria", "omar", NOTE, "compliance", "contested"]
    internal = internal_texts(service.get(reference).case.decision) + internal_texts(service.get(daves).case.decision)
    assert internal, "no internal reason to hide: the check would prove nothing"
    for record in carol:
        text = record.raw.decode()
        assert not [word for word in [*hidden, *internal, "dave"] if word in text]
    for record in dave:
        text = record.raw.decode()
        assert not [word for word in [*hidden, *internal, "carol"] if word in text]
