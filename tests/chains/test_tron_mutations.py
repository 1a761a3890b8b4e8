"""Never guess, TRON: java-tron's documented failure results are ``failed``; anything the adapter
cannot read with certainty (an unknown result value, an unknown contract type, an unreadable
transfer field) is ``unclear``; and no mutation of a recorded body yields a success with a transfer
the recording did not have. The parsers are called directly (no HTTP).

The recorded bodies are found by their content (a ``gettransactionbyid`` body has ``txID`` and
``raw_data``; an info ``id`` and ``blockNumber``; a TronGrid page ``data``/``success``/``meta``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.base import AssetKind, ChainUnavailable, Observation, TxStatus
from chains.tron import decode_page_entry, decode_transaction
from tests.support.mutations import assert_no_new_credit, mutated_bodies

TRX = "5a9935a1b7be0150a511111582bbfed62ddb873333b3986bd712e6105fe90ad5"
TRC20_CALL = "0b9e01dde099e590564200cbc9f348bb289d6751be8c7a30f70e58355880c9da"
TRC20_INFO = "0af79242191c6728b79e858a36a4b5c65e4e52b9fcee4dc5af30eac57b6d0953"
TRC10_TX = "f6804d16ac87fa77357e8145fbfdafd459433f89f87019bc8ea2308260abb761"
HEAD = 80_000_000
#: java-tron Transaction.Result.contractResult values that are failures (core/Tron.proto)
DOCUMENTED_FAILURES = (
    "REVERT",
    "BAD_JUMP_DESTINATION",
    "OUT_OF_MEMORY",
    "PRECOMPILED_CONTRACT",
    "STACK_TOO_SMALL",
    "STACK_TOO_LARGE",
    "ILLEGAL_OPERATION",
    "STACK_OVERFLOW",
    "OUT_OF_ENERGY",
    "OUT_OF_TIME",
    "JVM_STACK_OVER_FLOW",
    "UNKNOWN",
    "TRANSFER_FAILED",
    "INVALID_CODE",
)


def _bodies(fixtures_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(gettransactionbyid bodies by txID, info bodies by id, TronGrid page entries)."""
    txs: dict[str, Any] = {}
    infos: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for path in sorted((fixtures_dir / "tron").glob("*.json")):
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict):
            continue
        if "txID" in data and "raw_data" in data:
            txs[data["txID"].lower()] = data
        elif "id" in data and "blockNumber" in data:
            infos[data["id"].lower()] = data
        elif isinstance(data.get("data"), list) and isinstance(data.get("meta"), dict):
            entries += [e for e in data["data"] if isinstance(e, dict)]
    return txs, infos, entries


@pytest.fixture(scope="module")
def bodies(fixtures_dir: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    txs, infos, entries = _bodies(fixtures_dir)
    assert set(txs) >= {TRX, TRC20_CALL} and set(infos) >= {TRX, TRC20_INFO} and len(entries) >= 46
    return txs, infos, entries


def _lookup(tx: dict[str, Any], info: dict[str, Any], tx_hash: str) -> Observation | None:
    """What the public lookup path makes of these bodies: an observation, or "try later"."""
    try:
        return decode_transaction("tron", tx_hash, tx, info, HEAD)
    except ChainUnavailable:
        return None


# ------------------------------------------------------------------ documented results


@pytest.mark.parametrize("value", DOCUMENTED_FAILURES)
def test_documented_failures_are_failed(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]], value: str
) -> None:
    txs, infos, entries = bodies
    info = copy.deepcopy(infos[TRC20_INFO])
    info["receipt"]["result"] = value
    obs = decode_transaction("tron", TRC20_INFO, {}, info, HEAD)
    assert obs.status is TxStatus.FAILED and obs.transfers == () and obs.details["result"] == value
    tx = copy.deepcopy(txs[TRX])
    tx["ret"][0]["contractRet"] = value
    obs = decode_transaction("tron", TRX, tx, infos[TRX], HEAD)
    assert obs.status is TxStatus.FAILED and obs.transfers == ()
    assert obs.details["attempted"][0]["amount"] == "25000000"
    entry = copy.deepcopy(next(e for e in entries if e["txID"] == TRC10_TX))
    entry["ret"][0]["contractRet"] = value
    read = decode_page_entry("tron", entry, HEAD)
    assert read is not None and read.status is TxStatus.FAILED and read.transfers == ()


def test_info_result_failed_is_failed(bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]) -> None:
    txs, infos, _entries = bodies
    info = copy.deepcopy(infos[TRX])
    info["result"] = "FAILED"
    assert decode_transaction("tron", TRX, txs[TRX], info, HEAD).status is TxStatus.FAILED


@pytest.mark.parametrize("value", ["UNKNOWN_VALUE_X", "", "success", 1])
def test_an_unknown_result_is_unclear(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]], value: object
) -> None:
    txs, infos, entries = bodies
    info = copy.deepcopy(infos[TRC20_INFO])
    info["receipt"]["result"] = value
    obs = decode_transaction("tron", TRC20_INFO, {}, info, HEAD)
    assert obs.status is TxStatus.UNCLEAR
    assert any("receipt.result" in r for r in obs.details["unrecognised"]) and obs.details["raw"]["info"] == info
    tx = copy.deepcopy(txs[TRX])
    tx["ret"][0]["contractRet"] = value
    assert decode_transaction("tron", TRX, tx, infos[TRX], HEAD).status is TxStatus.UNCLEAR
    entry = copy.deepcopy(next(e for e in entries if e["txID"] == TRC10_TX))
    entry["ret"][0]["contractRet"] = value
    read = decode_page_entry("tron", entry, HEAD)
    assert read is not None and read.status is TxStatus.UNCLEAR and read.details["raw"] == entry


def test_an_unknown_contract_type_is_unclear(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
) -> None:
    txs, infos, entries = bodies
    tx = copy.deepcopy(txs[TRX])
    tx["raw_data"]["contract"][0]["type"] = "ShieldedTransferContract"
    obs = decode_transaction("tron", TRX, tx, infos[TRX], HEAD)
    assert obs.status is TxStatus.UNCLEAR and "ShieldedTransferContract" in obs.details["unrecognised"][0]
    entry = copy.deepcopy(next(e for e in entries if e["txID"] == TRC10_TX))
    entry["raw_data"]["contract"][0]["type"] = "MarketSellAssetContract"
    read = decode_page_entry("tron", entry, HEAD)
    assert read is not None and read.status is TxStatus.UNCLEAR and read.transfers == ()


def test_a_contract_call_without_a_stated_result_is_unclear(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
) -> None:
    _txs, infos, _entries = bodies
    info = copy.deepcopy(infos[TRC20_INFO])
    del info["receipt"]["result"]
    assert decode_transaction("tron", TRC20_INFO, {}, info, HEAD).status is TxStatus.UNCLEAR


def test_trc10_asset_id_in_java_tron_hex_form(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
) -> None:
    """java-tron's own answers (``visible=false``) give asset_name as hex of the id's text; a
    pre-2019 asset *name* is not an id and is not guessed."""
    *_, entries = bodies
    entry = copy.deepcopy(next(e for e in entries if e["txID"] == TRC10_TX))
    value = entry["raw_data"]["contract"][0]["parameter"]["value"]
    value["asset_name"] = b"1002000".hex()
    read = decode_page_entry("tron", entry, HEAD)
    assert read is not None and read.status is TxStatus.SUCCESS
    assert (read.transfers[0].kind, read.transfers[0].contract) == (AssetKind.TRC10, "1002000")
    value["asset_name"] = b"BitTorrent".hex()
    read = decode_page_entry("tron", entry, HEAD)
    assert read is not None and read.status is TxStatus.UNCLEAR


def test_internal_transactions_are_internal_transfers(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
) -> None:
    """java-tron's InternalTransaction (documentation only: no recording has one that moves value)."""
    _txs, infos, _entries = bodies
    info = copy.deepcopy(infos[TRC20_INFO])
    contract, payee = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c", "413d9324021d2d2da7805c8e599b00da23bfa2ee2d"
    info["internal_transactions"] = [
        {"caller_address": contract, "transferTo_address": payee, "callValueInfo": [{"callValue": 5}]},
        {
            "caller_address": contract,
            "transferTo_address": payee,
            "callValueInfo": [{"callValue": 7}],
            "rejected": True,
        },
        {"caller_address": contract, "transferTo_address": payee, "callValueInfo": [{}]},
    ]
    obs = decode_transaction("tron", TRC20_INFO, {}, info, HEAD)
    assert obs.status is TxStatus.SUCCESS
    (moved,) = [t for t in obs.transfers if t.internal]
    assert (moved.kind, moved.amount, moved.recipient) == (AssetKind.NATIVE, 5, "TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51")
    info["internal_transactions"][0]["callValueInfo"] = [{"callValue": "5"}]
    assert decode_transaction("tron", TRC20_INFO, {}, info, HEAD).status is TxStatus.UNCLEAR


# ------------------------------------------------------------------ mutations (property)

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def _lookup_case(draw: st.DrawFn, fixtures_dir: Path) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    txs, infos, _entries = _bodies(fixtures_dir)
    tx_hash = draw(st.sampled_from(sorted(set(txs) | set(infos))))
    tx, info = txs.get(tx_hash, {}), infos.get(tx_hash, {})
    which = draw(st.sampled_from([w for w, body in (("tx", tx), ("info", info)) if body]))
    what, mutated = draw(mutated_bodies(tx if which == "tx" else info))
    if which == "tx":
        return tx_hash, f"{tx_hash[:8]} body: {what}", mutated, info
    return tx_hash, f"{tx_hash[:8]} info: {what}", tx, mutated


def test_no_mutation_of_a_lookup_answer_credits_something_new(
    fixtures_dir: Path, bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]
) -> None:
    txs, infos, _entries = bodies

    @_SETTINGS
    @given(_lookup_case(fixtures_dir))
    def check(case: tuple[str, str, dict[str, Any], dict[str, Any]]) -> None:
        tx_hash, what, tx, info = case
        original = _lookup(txs.get(tx_hash, {}), infos.get(tx_hash, {}), tx_hash)
        mutated = _lookup(tx, info, tx_hash)  # raises nothing but ChainUnavailable (caught there)
        if mutated is not None:
            assert_no_new_credit(original, mutated, what)

    check()


def test_no_mutation_of_a_history_entry_credits_something_new(
    bodies: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]],
) -> None:
    *_, entries = bodies
    with_block = [e for e in entries if "blockNumber" in e]
    assert with_block

    @_SETTINGS
    @given(st.data())
    def check(data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(with_block))
        what, mutated = data.draw(mutated_bodies(entry))
        original = decode_page_entry("tron", entry, HEAD)
        try:
            read = decode_page_entry("tron", mutated, HEAD)
        except ChainUnavailable:
            return
        if read is not None:
            assert_no_new_credit(original, read, f"{entry['txID'][:8]}: {what}")

    check()
