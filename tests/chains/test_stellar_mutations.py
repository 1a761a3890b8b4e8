"""Never guess: the Stellar parsers fed mutations of the recorded Horizon answers (fields removed,
values of other types, values nobody has sent) never report a success with a transfer the recorded
answer did not have; what they cannot read with certainty is ``unclear``, never success.

The recordings are picked by their content (a transaction has ``envelope_xdr``; an operation or
payment record has ``transaction_hash`` and ``type``), so a new file joins these tests by itself.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stellar_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stellar_sdk.operation import Operation
from stellar_sdk.xdr import TransactionEnvelope

from chains.base import ChainUnavailable, Observation, TxStatus
from chains.replay import ReplayServer
from chains.replay.server import Reply, Request
from chains.replay.stellar import build_handler
from chains.stellar import (
    MEMO_TYPES,
    PaymentRecord,
    StellarAdapter,
    decode_transaction,
    operation_kind,
    parse_payment_record,
    parse_payments_page,
)
from chains.transport import UnusableAnswer
from recovery.config import Config
from recovery.registry import DepositAddress, InMemoryRegistry
from recovery.rules import Appeal, classify
from recovery.settings import get_settings
from tests.fixtures_replay import FAST, network_at
from tests.support.mutations import assert_no_new_credit, mutated_bodies

pytestmark = pytest.mark.fixtures

HEAD = 58575576
PUBNET_XLM = "dbc69dff72e4ca7ddf47311e12da09ac5952c777d19855f95f13b0ec624f8baf"
PUBNET_RECIPIENT = "GDMP73OGYG7RFR4AHAIFF3B5X3HJ6HP7PJURS5SHMYOYPSLKD3VYVTPF"
FAILED_TX = "ced549af061dc39758ce222f78f027e82b5077176a4e2efbeb4dc04086150b7d"
EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _folder() -> Path:
    return get_settings().fixtures_dir / "stellar"


def _recordings() -> Iterator[tuple[str, Any]]:
    folder = _folder()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            yield path.name, json.loads(path.read_bytes())
        except ValueError:
            continue


def _transactions() -> list[str]:
    return [name for name, body in _recordings() if isinstance(body, dict) and "envelope_xdr" in body]


def _records() -> list[str]:
    return [
        name
        for name, body in _recordings()
        if isinstance(body, dict)
        and (("transaction_hash" in body and "type" in body) or isinstance(body.get("_embedded"), dict))
    ]


def load(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / "stellar" / name).read_bytes())


def by_hash(fixtures_dir: Path, tx_hash: str) -> dict[str, Any]:
    for path in sorted((fixtures_dir / "stellar").glob("*.json")):
        body = json.loads(path.read_bytes())
        if isinstance(body, dict) and body.get("hash") == tx_hash and "envelope_xdr" in body:
            return body
    raise AssertionError(f"no recorded transaction {tx_hash}")


# --------------------------------------------------------------------------------------------------
# the property, on every recorded transaction


def test_the_recordings_are_found_by_content(fixtures_dir: Path) -> None:
    assert (fixtures_dir / "stellar") == _folder()
    assert len(_transactions()) >= 5 and len(_records()) >= 4


@pytest.mark.parametrize("name", _transactions())
@EXAMPLES
@given(data=st.data())
def test_mutated_transactions_never_credit_more(fixtures_dir: Path, name: str, data: st.DataObject) -> None:
    body = load(fixtures_dir, name)
    original = decode_transaction("stellar", body, HEAD)
    what, mutated = data.draw(mutated_bodies(body))
    try:
        observed = decode_transaction("stellar", mutated, HEAD)
    except UnusableAnswer:
        return  # refused: the transport fails over, then "try later"
    assert_no_new_credit(original, observed, f"{name}: {what}")
    if observed.status is TxStatus.UNCLEAR:
        assert observed.details["unrecognised"] and observed.details["raw"] == mutated


# --------------------------------------------------------------------------------------------------
# the property, on every recorded operation and payment record


def _as_observation(records: list[PaymentRecord]) -> Observation:
    """What a list of records would credit if it were read as a credit: the transfers of records
    of successful transactions. (``incoming`` never credits from a record; it reads the
    transaction, whose parser the property above covers.)"""
    transfers = tuple(r.transfer for r in records if r.successful is True and r.transfer is not None)
    return Observation(network="stellar", tx_hash="records", status=TxStatus.SUCCESS, transfers=transfers)


def _parse_records(body: Any) -> list[PaymentRecord]:
    if isinstance(body, dict) and "_embedded" in body:
        return parse_payments_page(body)
    return [parse_payment_record(body)]


@pytest.mark.parametrize("name", _records())
@EXAMPLES
@given(data=st.data())
def test_mutated_records_never_credit_more(fixtures_dir: Path, name: str, data: st.DataObject) -> None:
    body = load(fixtures_dir, name)
    original = _parse_records(body)
    what, mutated = data.draw(mutated_bodies(body))
    try:
        observed = _parse_records(mutated)
    except UnusableAnswer:
        return
    if "'asset_code'" in what and what.endswith("= '0x'"):
        # "0x" is a valid credit_alphanum4 code: a record of another asset, which nothing in a
        # record can tell apart; everything else about the transfer must be unchanged
        assert [(t.recipient, t.amount, t.sender) for t in _as_observation(observed).transfers] == [
            (t.recipient, t.amount, t.sender) for t in _as_observation(original).transfers
        ]
        return
    assert_no_new_credit(_as_observation(original), _as_observation(observed), f"{name}: {what}")


# --------------------------------------------------------------------------------------------------
# what cannot be read is unclear, never success (recorded bodies changed in memory)


def _patched_envelope(body: dict[str, Any], part: str, value: int) -> dict[str, Any]:
    """``body`` with the XDR discriminant of its memo (``part="memo"``) or of its first operation's
    body (``part="operation"``) set to ``value``: a type a newer protocol could send. The offsets
    follow the XDR layout of a v1 envelope: type, source, fee, sequence, preconditions, memo,
    operation count, operations (each: optional source, then its body's type)."""
    raw = bytearray(base64.b64decode(body["envelope_xdr"]))
    envelope = TransactionEnvelope.from_xdr(body["envelope_xdr"]).v1
    assert envelope is not None, "a v1 envelope"
    tx = envelope.tx
    at = 4 + len(tx.source_account.to_xdr_bytes()) + 4 + 8 + len(tx.cond.to_xdr_bytes())
    if part == "operation":
        op = tx.operations[0]
        at += len(tx.memo.to_xdr_bytes()) + 4 + 4
        at += len(op.source_account.to_xdr_bytes()) if op.source_account is not None else 0
    raw[at:at + 4] = value.to_bytes(4, "big")
    return {**body, "envelope_xdr": base64.b64encode(bytes(raw)).decode()}


@pytest.mark.parametrize("part", ["operation", "memo"])
def test_an_envelope_naming_an_unknown_type_is_unclear(fixtures_dir: Path, part: str) -> None:
    body = by_hash(fixtures_dir, PUBNET_XLM)
    patched = _patched_envelope(body, part, 99)
    obs = decode_transaction("stellar", patched, HEAD)
    assert obs.status is TxStatus.UNCLEAR and obs.transfers == ()
    kind = "OperationType" if part == "operation" else "MemoType"
    assert any(kind in r and "envelope_xdr" in r for r in obs.details["unrecognised"])
    assert obs.details["raw"] == patched and obs.block_number == body["ledger"]


def test_an_unknown_memo_type_is_unclear_and_a_contradicting_one_unusable(fixtures_dir: Path) -> None:
    body = by_hash(fixtures_dir, PUBNET_XLM)
    obs = decode_transaction("stellar", {**body, "memo_type": "MEMO_HASH_V2"}, HEAD)
    assert obs.status is TxStatus.UNCLEAR
    assert any("memo_type" in r and "MEMO_HASH_V2" in r for r in obs.details["unrecognised"])
    assert len(obs.transfers) == 1  # kept for the person who reviews it
    assert {"none", "text", "id", "hash", "return"} == MEMO_TYPES
    with pytest.raises(UnusableAnswer, match="memo_type"):
        decode_transaction("stellar", {**body, "memo_type": "text"}, HEAD)


def test_a_failed_transaction_stays_failed_whatever_else_is_unreadable(fixtures_dir: Path) -> None:
    """A failed transaction applied none of its operations: nothing in it is a credit."""
    body = by_hash(fixtures_dir, FAILED_TX)
    assert decode_transaction("stellar", {**body, "memo_type": "MEMO_HASH_V2"}, HEAD).status is TxStatus.FAILED
    patched = _patched_envelope(body, "operation", 99)
    obs = decode_transaction("stellar", patched, HEAD)
    assert obs.status is TxStatus.FAILED and obs.fee == 100 and obs.transfers == ()


def test_every_operation_type_has_a_decided_treatment() -> None:
    """Operations stellar-sdk knows are transfers, moves of nothing, or unclear; a class this
    adapter has never heard of (a newer stellar-sdk) is unclear."""
    classes = {c.__name__: c for c in Operation.__subclasses__()}
    kinds = {name: operation_kind(c) for name, c in classes.items()}
    assert {n for n, k in kinds.items() if k == "transfer"} == {
        "Payment", "PathPaymentStrictReceive", "PathPaymentStrictSend", "CreateAccount", "AccountMerge",
    }
    for name in ("InvokeHostFunction", "ClaimClaimableBalance", "CreateClaimableBalance", "LiquidityPoolWithdraw",
                 "Inflation"):
        assert kinds[name] == "unclear", name
    assert kinds["ChangeTrust"] == kinds["ManageSellOffer"] == kinds["SetOptions"] == "other"
    assert operation_kind(type("FutureOperation", (Operation,), {})) == "unclear"
    assert stellar_sdk.Payment in classes.values()


def test_an_unclear_transaction_goes_to_a_person(fixtures_dir: Path, replay_config: Config) -> None:
    body = by_hash(fixtures_dir, PUBNET_XLM)
    obs = decode_transaction("stellar", {**body, "memo_type": "MEMO_HASH_V2"}, HEAD)
    registry = InMemoryRegistry()
    registry.add_address(DepositAddress("alice", "stellar", PUBNET_RECIPIENT, "12", "eoa"))
    decision = classify(Appeal("alice", "stellar", PUBNET_XLM), {"stellar": obs}, registry, replay_config,
                        datetime(2026, 1, 1, tzinfo=UTC))
    assert "unrecognised_chain_data" in [f.value for f in decision.flags]
    assert "unrecognised_chain_data" in [r.code for r in decision.reasons]


# --------------------------------------------------------------------------------------------------
# the adapter's public lookup path, over HTTP: a result or "try later", never another error


class MutatedTransaction:
    """The replay, except that ``GET /transactions/{hash}`` answers ``body`` (set per example)."""

    def __init__(self, fixtures_dir: Path) -> None:
        self.inner = build_handler(fixtures_dir)
        self.body: Any = None

    def handle(self, request: Request) -> Reply:
        if request.path.startswith("/transactions/") and request.path.count("/") == 2:
            return Reply.json(json.dumps(self.body).encode())
        return self.inner.handle(request)


@pytest.fixture(scope="module")
def mutating_server(fixtures_dir: Path) -> Iterator[tuple[ReplayServer, MutatedTransaction]]:
    handler = MutatedTransaction(fixtures_dir)
    with ReplayServer({"stellar": handler}) as server:
        yield server, handler


@pytest.mark.parametrize("tx_hash", [PUBNET_XLM, FAILED_TX])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_lookup_of_a_mutated_answer_is_a_result_or_try_later(
    fixtures_dir: Path, replay_config: Config, mutating_server: tuple[ReplayServer, MutatedTransaction],
    tx_hash: str, data: st.DataObject,
) -> None:
    server, handler = mutating_server
    body = by_hash(fixtures_dir, tx_hash)
    original = decode_transaction("stellar", body, HEAD)
    what, handler.body = data.draw(mutated_bodies(body))
    url = server.url_for("stellar")
    network = network_at(replay_config.networks["stellar"], [url], **{**FAST, "retry_attempts": 1})
    try:
        observed = StellarAdapter(network).lookup(tx_hash)
    except ChainUnavailable:
        return
    assert_no_new_credit(original, observed, what)
