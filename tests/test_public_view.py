"""The user-facing appeal view reads the stored decision's JSON directly: same result as the full parse."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from app.api_models import AppealOut
from recovery.i18n import LANGUAGES, translator
from recovery.public import FEE_TERMS, appeal_view
from recovery.rules import Decision, user_flags, user_reasons
from recovery.user_text import REASONS
from recovery.vocabulary import Flag
from tests.rules.test_rules import SCENARIOS, Scenario, run

WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def case_row(decision: dict[str, Any] | None, **columns: Any) -> SimpleNamespace:
    row: dict[str, Any] = {
        "reference": "RC-000001", "status": "in_review", "origin": "appeal", "network": "ethereum",
        "deposit_network": None,
        "asset": "USDT", "tx_hash": "0x" + "ab" * 32, "deposit_address": "0x" + "11" * 20, "memo": None,
        "claimed_amount": None, "category": None, "recoverable": None, "resolution": None, "flags": [],
        "decision": decision, "amount": None, "fee_amount": None, "fee_asset": None, "fee_usd": None,
        "net_amount": None, "refund_network": None, "refund_tx_hash": None, "sla_due_at": None, "created_at": WHEN,
        "updated_at": WHEN,
    }
    row.update(columns)
    return SimpleNamespace(**row)


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_the_view_shows_what_the_full_decision_shows(s: Scenario) -> None:
    decision = run(s)
    stored = decision.to_json()

    view = appeal_view(case_row(stored), [])

    parsed = Decision.from_json(stored)
    assert view["flags"] == sorted(user_flags(parsed))
    assert [(r["code"], r["evidence"]) for r in view["reasons"]] == [
        (r["code"], r["evidence"]) for r in user_reasons(parsed)]
    for language in LANGUAGES:  # every reason of every scenario has its own sentence in every language
        tr = translator(language)
        texts = [r["text"] for r in appeal_view(case_row(stored), [], language=language)["reasons"]]
        assert all(text and "{" not in text and text != tr.text(REASONS["unknown"]) for text in texts), texts
    assert view["found_on_network"] == parsed.network
    if parsed.fee is None:
        assert view["fee"] is None
    else:
        terms = parsed.fee.to_json()
        for key in FEE_TERMS:
            expected = terms[key]
            if isinstance(expected, str):
                assert Decimal(view["fee"]["breakdown"][key]) == Decimal(expected), key
            else:
                assert view["fee"]["breakdown"][key] == expected, key
        assert view["fee"]["asset"] == parsed.asset
    AppealOut.model_validate(view)
    for reason in view["reasons"]:
        assert not any(key.endswith(("user_id", "user_ids")) for key in reason["evidence"])


def test_internal_reasons_and_flags_and_user_ids_never_reach_the_view() -> None:
    stored = {
        "network": "ethereum", "asset": "USDT",
        "flags": [Flag.CONTESTED.value, Flag.AMOUNT_MISMATCH.value],
        "reasons": [
            {"code": "credited_to_other", "text": "internal", "evidence": {"owner_user_id": "bob"}, "internal": True},
            {"code": "found", "text": "Found.", "evidence": {"block": 7, "credited_user_id": "alice"}},
        ],
        "fee": None,
    }

    view = appeal_view(case_row(stored, flags=["contested", "expired"]), [])

    assert view["flags"] == ["amount_mismatch", "expired"]
    assert view["reasons"] == [
        {"code": "found", "text": "We found your transaction on ethereum.", "evidence": {"block": 7}}]


@pytest.mark.parametrize("stored", [
    {"reasons": "not a list"},
    {"flags": {"a": 1}},
    {"reasons": [{"text": "no code"}]},
    {"reasons": [{"code": 7, "text": "code is a number"}]},
    {"fee": ["not", "a", "mapping"]},
    {"network": 12},
    ["a", "list"],
])
def test_a_malformed_stored_decision_is_shown_as_no_decision(stored: Any) -> None:
    view = appeal_view(case_row(stored, flags=["partial_payment"]), [])

    assert view["reasons"] == [] and view["fee"] is None and view["found_on_network"] is None
    assert view["flags"] == ["partial_payment"]  # the case's own columns still count


def event(action: str, details: dict[str, Any], *, to_status: str = "submitted",
          from_status: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(action=action, from_status=from_status, to_status=to_status, details=details,
                           created_at=WHEN)


def test_a_detected_case_says_we_found_it_and_what_happens_next() -> None:
    opened = event("submit", {"origin": "detected", "network": "bsc", "tx_hash": "0x" + "ab" * 32})
    checked = event("chain_result", {"outcome": "decided", "category": "wrong_network"}, from_status="submitted",
                    to_status="in_review")

    view = appeal_view(case_row(None, origin="detected", network="bsc"), [opened, checked])

    assert view["origin"] == "detected"
    first, second = view["timeline"]
    assert (first["event"], first["status"]) == ("detected", "submitted")
    assert first["message"].startswith("We found this deposit on bsc and opened this case for you")
    assert "do not need to file an appeal" in first["message"]
    assert (second["event"], second["category"]) == ("checked", "wrong_network")
    AppealOut.model_validate(view)


def test_an_appeal_and_an_intake_case_show_origin_appeal() -> None:
    for origin in ("appeal", "intake"):
        opened = event("submit", {"origin": origin, "network": "ethereum"})
        view = appeal_view(case_row(None, origin=origin), [opened])
        assert view["origin"] == "appeal"
        assert [(e["event"], e["message"]) for e in view["timeline"]] == [("submitted", "Appeal received.")]
        AppealOut.model_validate(view)


def test_a_claimed_shared_address_case_tells_the_appellant_it_was_linked() -> None:
    opened = event("submit", {"origin": "detected", "shared_address": True, "network": "xrpl"})
    claim = event("claim", {"origin": "appeal", "previous_user_id": "shared:xrpl:rAddress", "user_id": "zoe"},
                  from_status="in_review", to_status="in_review")

    view = appeal_view(case_row(None, origin="detected", network="xrpl"), [opened, claim])

    detected, submitted = view["timeline"]
    assert detected["event"] == "detected" and "shared deposit address without a memo" in detected["message"]
    assert submitted["event"] == "submitted" and "linked to the case we opened" in submitted["message"]
    assert "shared:" not in str(view) and "zoe" not in str(view)  # no user id (placeholder or not) shown
    AppealOut.model_validate(view)


def test_the_explorer_link_is_of_the_network_where_the_funds_are(default_config) -> None:  # type: ignore[no-untyped-def]
    """Issue 21: funds found on BSC for an appeal that claims Ethereum link to the BSC explorer."""
    tx = "0x" + "ab" * 32
    found_elsewhere = case_row(None, network="ethereum", deposit_network="bsc", tx_hash=tx)
    view = appeal_view(found_elsewhere, [], default_config)
    assert view["explorer_url"] == default_config.network("bsc").explorer_link(tx)
    assert view["explorer_url"] != default_config.network("ethereum").explorer_link(tx)
    not_found_yet = case_row(None, network="ethereum", deposit_network=None, tx_hash=tx)
    assert appeal_view(not_found_yet, [], default_config)["explorer_url"] == (
        default_config.network("ethereum").explorer_link(tx))


@pytest.mark.parametrize(("status", "columns", "label", "says"), [
    ("submitted", {}, "Received", "looking the transaction up"),
    ("awaiting_chain", {}, "Waiting for the network", "usually within 30 minutes"),
    ("in_review", {"recoverable": "yes", "sla_due_at": datetime(2026, 11, 5, 9, 0, tzinfo=UTC)}, "Being reviewed",
     "An approver reviews recoverable deposits: expect a decision by November 5, 2026."),
    ("in_review", {"recoverable": "no"}, "Being reviewed", "A specialist reviews your appeal"),
    ("approved", {"resolution": "credit"}, "Approved", "credited to your account within 24 hours"),
    ("approved", {"resolution": "refund"}, "Approved", "refund will be sent to the sending address within 24 hours"),
    ("refund_pending", {}, "Refund on its way", "once the network confirms it"),
    ("credited", {}, "Credited", "the amount is in your account"),
    ("rejected", {}, "Not recoverable", "the reason is below"),
    ("closed", {}, "Closed", "This appeal is closed."),
])
def test_every_status_has_a_label_and_a_next_step(default_config, status: str, columns: dict[str, Any],  # type: ignore[no-untyped-def]
                                                  label: str, says: str) -> None:
    """Issue 21: beside the raw status (for machines), a label and one sentence with a date where there is one."""
    view = appeal_view(case_row(None, status=status, **columns), [], default_config)
    assert (view["status"], view["status_label"]) == (status, label)
    assert says in view["next_step"]
    AppealOut.model_validate(view)
