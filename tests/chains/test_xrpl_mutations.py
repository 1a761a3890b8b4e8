""""Never guess" on the XRP Ledger: the ``tx`` / ``account_tx`` / entry parsers fed mutations of the
recorded bodies (fields removed, types changed, unknown values) never report a success with a
transfer the recorded answer did not have, and never fail with anything but an unusable answer
(which the adapter turns into "try later"); a field changed under the hash makes it unclear.

Then the documented shapes no recording shows (xrpl.org Transaction Results / Finality of
Results), each made by one in-memory edit of a recorded entry: a ``tec`` result is a failure with
its fee, ``validated: false`` is pending, and these are *unclear*: a ``tef``/``tem``/``ter``/``tel``
(or unknown) result in a validated ledger, an undocumented transaction type addressed to the
account, a field the codec does not know, and a delivered amount that cannot be read."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.base import Observation, TxStatus
from chains.transport import UnusableAnswer
from chains.xrpl import (
    TF_PARTIAL_PAYMENT,
    XrplEntry,
    decode_entry,
    parse_account_tx,
    parse_tx_result,
    result_class,
    split_entry,
)
from tests.chains.test_xrpl import DUST_RECEIVER, PAGE, TAG_123456
from tests.support.mutations import REPLACEMENTS, assert_no_new_credit, mutate, mutated_bodies, paths

pytestmark = pytest.mark.fixtures

HEAD = 99743688


@dataclass(frozen=True)
class Case:
    """One recorded body and the parser that reads it."""

    name: str
    body: Any
    parse: Callable[[Any], list[Observation]]


def _tx_parser(tx_hash: str) -> Callable[[Any], list[Observation]]:
    def parse(body: Any) -> list[Observation]:
        entry = parse_tx_result(body, tx_hash)
        return [] if entry is None else [decode_entry("xrpl", entry, HEAD)]

    return parse


def _page_parser(account: str) -> Callable[[Any], list[Observation]]:
    def parse(body: Any) -> list[Observation]:
        return [decode_entry("xrpl", e, HEAD, account) for e in parse_account_tx(body, account).entries]

    return parse


def _ledger_entry(body: Any) -> list[Observation]:
    return [decode_entry("xrpl", split_entry(body, validated=True), HEAD)]


def _entry(body: Any) -> list[Observation]:
    return [decode_entry("xrpl", split_entry(body), HEAD)]


def recorded_cases(fixtures_dir: Path) -> list[Case]:
    """Every transaction of every recording in ``xrp/``, recognised by content: a ``tx`` answer as it
    is (a bare result wrapped as rippled would), an ``account_tx`` page cut into one-entry pages
    (its envelope kept), a ``ledger`` or ``transaction_entry`` transaction as an entry."""
    cases: list[Case] = []
    for path in sorted((fixtures_dir / "xrp").glob("*.json")):
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            continue
        result = data.get("result")
        if result is None and "tx_json" in data and "meta" in data:
            body = {"result": {**data, "status": "success"}}
            cases.append(Case(path.name, body, _tx_parser(str(data["tx_json"]["hash"]))))
        elif not isinstance(result, dict):
            continue
        elif isinstance(result.get("transactions"), list) and "account" in result:
            envelope = {k: v for k, v in result.items() if k not in ("transactions", "marker")}
            for item in result["transactions"]:
                page = {"result": {**envelope, "transactions": [item]}}
                cases.append(Case(f"{path.name}#{len(cases)}", page, _page_parser(str(result["account"]))))
        elif isinstance(result.get("ledger"), dict):
            for tx in result["ledger"].get("transactions", []):
                cases.append(Case(f"{path.name}:{str(tx['hash'])[:8]}", {**tx, "ledger_index": result["ledger_index"]},
                                  _ledger_entry))
        elif "metadata" in result:
            cases.append(Case(path.name, result, _entry))
        elif "meta" in result:
            tx = result.get("tx_json", result)
            cases.append(Case(path.name, data, _tx_parser(str(result.get("hash") or tx["hash"]))))
    return cases


def observe(case: Case, body: Any) -> list[Observation] | None:
    """The observations, or None when the parser refused the body as unusable (the only refusal
    allowed: the transport fails over on it, and the adapter says "try later")."""
    try:
        return case.parse(body)
    except UnusableAnswer:
        return None


@pytest.fixture(scope="module")
def cases(fixtures_dir: Path) -> list[tuple[Case, dict[str, Observation]]]:
    out = []
    for case in recorded_cases(fixtures_dir):
        original = observe(case, case.body)
        out.append((case, {o.tx_hash: o for o in original or []}))
    return out


def test_every_recording_gives_cases(cases: list[tuple[Case, dict[str, Observation]]]) -> None:
    """The folder grows: at least the transactions of 2026-12-07 and before are fed to the property."""
    names = {c.name.split("#")[0].split(":")[0] for c, _o in cases}
    assert {PAGE, "tx_payment_xrp_no_tag_apiv1.json", "tx_result_partial_payment_iou.json",
            "ledger_expanded_txs_with_destination_tags.json"} <= names
    assert sum(c.name.startswith(PAGE) for c, _o in cases) == 49
    credited = [o for _c, obs in cases for o in obs.values() if o.status is TxStatus.SUCCESS and o.transfers]
    assert len(credited) >= 60  # the property starts from real credits, not from refusals


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_mutation_yields_a_new_credit(cases: list[tuple[Case, dict[str, Observation]]], data: st.DataObject) -> None:
    case, originals = data.draw(st.sampled_from(cases), label="recording")
    what, body = data.draw(mutated_bodies(case.body), label="mutation")
    observed = observe(case, body)  # anything but UnusableAnswer (KeyError, TypeError, ...) fails the test
    for obs in observed or []:
        assert_no_new_credit(originals.get(obs.tx_hash), obs, f"{case.name}: {what}")


#: one recorded transaction of each shape: (recording, hash prefix)
REPRESENTATIVES = [
    (PAGE, "54527436"),  # account_tx v1 entry: XRP to the account with destination tag 123456
    (PAGE, "6CFABA22"),  # account_tx v1 entry: 1.12 RLUSD (40-hex currency) to the account
    (PAGE, "8D85617B"),  # account_tx v1 entry: TrustSet
    ("account_tx_payments_with_memos.json", "66B94DCE"),  # account_tx v2 entry (tx_json + hash)
    ("tx_payment_xrp_no_tag_apiv1.json", "474F58E6"),  # tx answer, API v1 layout
    ("tx_result_partial_payment_iou.json", "A0A074D1"),  # bare tx result: partial IOU payment
    ("ledger_expanded_txs_with_destination_tags.json", "225B05E7"),  # ledger transaction with a tag
]


@pytest.mark.parametrize(("recording", "prefix"), REPRESENTATIVES, ids=[p for _r, p in REPRESENTATIVES])
def test_every_single_mutation_of_each_shape(cases: list[tuple[Case, dict[str, Observation]]],
                                             recording: str, prefix: str) -> None:
    """Exhaustively, on one recorded transaction of each shape: every field (at every depth)
    removed, and replaced by each value of the mutation set, one at a time."""
    case, originals = next((c, o) for c, o in cases if c.name.startswith(recording)
                           and any(h.startswith(prefix) for h in o))
    assert any(o.status in (TxStatus.SUCCESS, TxStatus.PENDING) for o in originals.values())
    tried = 0
    for path in paths(case.body):
        for how, value in [("remove", None)] + [("set", v) for v in REPLACEMENTS]:
            tried += 1
            for obs in observe(case, mutate(case.body, path, how, value)) or []:
                assert_no_new_credit(originals.get(obs.tx_hash), obs, f"{case.name}: {how} {path} {value!r}")
    assert tried > 100


# --------------------------------------------------------------------------------------------------
# documented shapes no recording shows, each one edit of the page's tagged payment


@pytest.fixture
def tagged(fixtures_dir: Path) -> dict[str, Any]:
    page = json.loads((fixtures_dir / "xrp" / PAGE).read_bytes())
    (item,) = (i for i in page["result"]["transactions"] if i["tx"]["hash"] == TAG_123456)
    return copy.deepcopy(item)


def decode(item: dict[str, Any], account: str | None = DUST_RECEIVER) -> Observation:
    return decode_entry("xrpl", split_entry(item), HEAD, account)


def test_the_recorded_entry_is_a_credit(tagged: dict[str, Any]) -> None:
    obs = decode(tagged)
    assert obs.status is TxStatus.SUCCESS and obs.transfers[0].amount == 10000 and obs.memo == "123456"


@pytest.mark.parametrize("code", ["tecUNFUNDED_PAYMENT", "tecPATH_DRY", "tecNO_DST_INSUF_XRP"])
def test_tec_is_a_failure_that_charged_the_fee(tagged: dict[str, Any], code: str) -> None:
    tagged["meta"]["TransactionResult"] = code
    obs = decode(tagged)
    assert obs.status is TxStatus.FAILED and obs.transfers == ()
    assert obs.fee == int(tagged["tx"]["Fee"]) and obs.details["attempted"]["destination_tag"] == 123456


def test_not_validated_is_pending(tagged: dict[str, Any]) -> None:
    tagged["validated"] = False
    obs = decode(tagged)
    assert obs.status is TxStatus.PENDING and obs.confirmations == 0 and obs.details["provisional"] is True


@pytest.mark.parametrize("code", ["tefPAST_SEQ", "temBAD_AMOUNT", "terQUEUED", "telINSUF_FEE_P", "tesQUEUED",
                                  "tuxSOMETHING", ""])
def test_a_result_no_validated_ledger_holds_is_unclear(tagged: dict[str, Any], code: str) -> None:
    tagged["meta"]["TransactionResult"] = code
    obs = decode(tagged)
    assert obs.status is TxStatus.UNCLEAR
    assert any("TransactionResult" in r for r in obs.details["unrecognised"])
    assert obs.details["raw"]["tx"]["hash"] == TAG_123456


def test_an_unknown_result_class_is_unclear_even_unvalidated(tagged: dict[str, Any]) -> None:
    tagged["validated"] = False
    tagged["meta"]["TransactionResult"] = "xyzNEW"
    assert decode(tagged).status is TxStatus.UNCLEAR
    assert result_class("tesSUCCESS", False) == (TxStatus.PENDING, None)


@pytest.mark.parametrize("delivered", [{"currency": "RLUSD", "issuer": "rMxCKbEDwqr76QuheSUMdEGf4B9xJ8m5De",
                                        "value": "1"}, "-5", "1.5", {"value": "1"}, 10000])
def test_an_unreadable_delivered_amount_is_unclear(tagged: dict[str, Any], delivered: Any) -> None:
    tagged["meta"]["delivered_amount"] = delivered
    obs = decode(tagged)
    assert obs.status is TxStatus.UNCLEAR and obs.transfers == ()
    assert any("delivered amount cannot be read" in r for r in obs.details["unrecognised"])


def test_a_partial_payment_without_a_delivered_amount_is_unclear(fixtures_dir: Path) -> None:
    """The recorded partial payment (flag tfPartialPayment, 9.98 of 10 USD delivered) with its
    delivered amount removed: the 10 USD asked for is never read as delivered."""
    data = json.loads((fixtures_dir / "xrp" / "tx_result_partial_payment_iou.json").read_bytes())
    assert int(data["tx_json"]["Flags"]) & TF_PARTIAL_PAYMENT
    del data["meta"]["delivered_amount"]
    obs = decode_entry("xrpl", split_entry({**data, "validated": True, "ledger_index": 1}), HEAD)
    assert obs.status is TxStatus.UNCLEAR and obs.transfers == ()


def test_an_undocumented_type_addressed_to_the_account_is_unclear(tagged: dict[str, Any]) -> None:
    tagged["tx"]["TransactionType"] = "PaymentV2"  # a type the codec and the docs do not know
    obs = decode(tagged)
    assert obs.status is TxStatus.UNCLEAR and obs.transfers == ()
    reasons = " ".join(obs.details["unrecognised"])
    assert "PaymentV2" in reasons and "cannot be checked" in reasons
    entry: XrplEntry = split_entry(tagged)
    assert entry.unverified is not None


def test_an_unknown_field_makes_the_hash_uncheckable(tagged: dict[str, Any]) -> None:
    tagged["tx"]["NewAmendmentField"] = 1
    obs = decode(tagged)
    assert obs.status is TxStatus.UNCLEAR
    assert any("NewAmendmentField" in r for r in obs.details["unrecognised"])


@pytest.mark.parametrize(("field", "value"), [
    ("DestinationTag", 1), ("Destination", "rMxCKbEDwqr76QuheSUMdEGf4B9xJ8m5De"), ("Amount", "20000"),
    ("Flags", TF_PARTIAL_PAYMENT),
])
def test_fields_that_do_not_hash_are_unclear(tagged: dict[str, Any], field: str, value: Any) -> None:
    """A signed field changed (another tag, destination, amount or flag): the answer contradicts
    its own hash; unclear, whatever the fields say."""
    tagged["tx"][field] = value
    if field == "Amount":
        tagged["tx"]["DeliverMax"] = value
    obs = decode(tagged)
    assert obs.status is TxStatus.UNCLEAR
    assert any("contradicts itself" in r for r in obs.details["unrecognised"])


def test_amount_and_deliver_max_that_differ_are_unclear(tagged: dict[str, Any]) -> None:
    tagged["tx"]["DeliverMax"] = "20000"
    assert "differ" in str(split_entry(tagged).unverified)
