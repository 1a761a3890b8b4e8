"""Never guess: the Bitcoin decoders fed mutations of the recorded bodies (fields removed, values of
other types, unknown enum values) never report a success with a transfer the recording did not have.

Each recording is found by its content (a new file in the folder joins in by itself). A mutation may
be refused as garbage (``ChainUnavailable``), read as ``unclear``, or read as before; it is never a
new credit, and never handled by the decoders' last-resort net for a ``KeyError``/``TypeError``
("malformed transaction"): every shape is met by an explicit check.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.base import ChainUnavailable, Observation, TxStatus
from chains.bitcoin import BitcoinAdapter, blockbook_txids_page
from chains.transport import UnusableAnswer
from recovery.config import Config
from tests.chains.test_bitcoin import recorded_bodies, recorded_tip
from tests.fixtures_replay import network_at
from tests.support.mutations import assert_no_new_credit, mutate, mutated_bodies

#: the decoders never reach the network: a URL that is never called
_NOWHERE = "http://127.0.0.1:9"
_SETTINGS = settings(max_examples=300, deadline=None)


def _adapter(config: Config, **extra: object) -> BitcoinAdapter:
    return BitcoinAdapter(network_at(config.network("bitcoin"), [_NOWHERE], **extra))


def _testnet(body: dict[str, Any]) -> bool:
    """Whether a recorded Esplora transaction is a testnet one (its addresses say so)."""
    listed = [o.get("scriptpubkey_address") or "" for o in body["vout"]]
    return any(a.startswith(("tb1", "m", "n", "2")) for a in listed if a)


@pytest.fixture(scope="module")
def esplora(fixtures_dir: Path, default_config: Config) -> list[tuple[BitcoinAdapter, dict[str, Any], int]]:
    bodies = recorded_bodies(fixtures_dir, "esplora")
    assert len(bodies) >= 3
    tip = recorded_tip(fixtures_dir)
    adapters = {net: _adapter(default_config, testnet=net) for net in (False, True)}
    return [(adapters[_testnet(b)], b, tip) for b in bodies]


@pytest.fixture(scope="module")
def blockbook(fixtures_dir: Path, default_config: Config) -> list[tuple[BitcoinAdapter, dict[str, Any]]]:
    bodies = recorded_bodies(fixtures_dir, "blockbook")
    assert len(bodies) >= 3
    adapter = _adapter(default_config, api="blockbook")
    return [(adapter, b) for b in bodies]


def _decoded(decode: Any, *args: Any) -> Observation | None:
    """The decoder's answer, or None where it refused the body as garbage (never by the net)."""
    try:
        obs: Observation = decode(*args)
    except ChainUnavailable as exc:
        assert "malformed transaction" not in exc.reason, f"caught only by the last-resort net: {exc.reason}"
        return None
    return obs


def test_the_recordings_decode_cleanly(
    esplora: list[tuple[BitcoinAdapter, dict[str, Any], int]], blockbook: list[tuple[BitcoinAdapter, dict[str, Any]]]
) -> None:
    """The starting point: no recording is unclear, and each has the transfers SOURCES.md lists."""
    observed = [a.decode_esplora(b["txid"], b, tip) for a, b, tip in esplora]
    observed += [a.decode_blockbook(b["txid"], b) for a, b in blockbook]
    assert all(o.status in (TxStatus.SUCCESS, TxStatus.PENDING) for o in observed)
    assert all("unrecognised" not in o.details and o.transfers for o in observed)


@_SETTINGS
@given(data=st.data())
def test_esplora_mutations_never_credit(
    esplora: list[tuple[BitcoinAdapter, dict[str, Any], int]], data: st.DataObject
) -> None:
    adapter, body, tip = data.draw(st.sampled_from(esplora))
    what, mutated = data.draw(mutated_bodies(body))
    original = adapter.decode_esplora(body["txid"], body, tip)
    obs = _decoded(adapter.decode_esplora, body["txid"], mutated, tip)
    if obs is not None:
        assert_no_new_credit(original, obs, f"{body['txid'][:12]}: {what}")


@_SETTINGS
@given(data=st.data())
def test_blockbook_mutations_never_credit(
    blockbook: list[tuple[BitcoinAdapter, dict[str, Any]]], data: st.DataObject
) -> None:
    adapter, body = data.draw(st.sampled_from(blockbook))
    what, mutated = data.draw(mutated_bodies(body))
    original = adapter.decode_blockbook(body["txid"], body)
    obs = _decoded(adapter.decode_blockbook, body["txid"], mutated)
    if obs is not None:
        assert_no_new_credit(original, obs, f"{body['txid'][:12]}: {what}")
        if original.status is TxStatus.PENDING:
            # an unconfirmed transaction stays uncredited, whatever the mutation
            assert obs.status is not TxStatus.SUCCESS


@_SETTINGS
@given(data=st.data())
def test_address_page_mutations_never_invent_a_txid(fixtures_dir: Path, data: st.DataObject) -> None:
    pages = recorded_bodies(fixtures_dir, "address")
    assert pages
    page = data.draw(st.sampled_from(pages))
    what, mutated = data.draw(mutated_bodies(page))
    try:
        txids, _ = blockbook_txids_page(mutated, page["address"], 1, str.lower)
    except UnusableAnswer:
        return
    assert set(txids) <= set(page["txids"]), what


# ------------------------------------------------------------------ worked examples


def _body(items: list[tuple[BitcoinAdapter, dict[str, Any]]], txid_start: str) -> tuple[BitcoinAdapter, dict[str, Any]]:
    (found,) = [(a, b) for a, b in items if b["txid"].startswith(txid_start)]
    return found


def test_an_amount_that_is_not_a_decimal_string_is_unclear(
    blockbook: list[tuple[BitcoinAdapter, dict[str, Any]]],
) -> None:
    adapter, body = _body(blockbook, "8c1e3dec")
    for value in (175000, "175000.0", "1.75e5", "0x2ab98", " 175000"):
        obs = adapter.decode_blockbook(body["txid"], mutate(body, ("vout", 0, "value"), "set", value))
        assert obs.status is TxStatus.UNCLEAR
        assert obs.details["unrecognised"] == [f"vout[0].value is {value!r}, not a decimal string number of satoshi"]
        assert obs.details["raw"]["vout"][0]["value"] == value
        assert [t.amount for t in obs.transfers] == [9_888_100]  # the readable output is kept for the reviewer


def test_an_address_its_script_does_not_pay_is_unclear(
    esplora: list[tuple[BitcoinAdapter, dict[str, Any], int]],
) -> None:
    (adapter, body, tip), *_ = [e for e in esplora if e[1]["txid"].startswith("9b0c48b7")]
    # the change address written on the payment output: both valid testnet addresses
    swapped = mutate(body, ("vout", 0, "scriptpubkey_address"), "set", body["vout"][2]["scriptpubkey_address"])
    obs = adapter.decode_esplora(body["txid"], swapped, tip)
    assert obs.status is TxStatus.UNCLEAR
    assert "names the address mowfvQDr" in obs.details["unrecognised"][0]
    assert "its script pays mqbKtarY" in obs.details["unrecognised"][0]
    # an OP_RETURN output said to pay an address is no payment either
    claimed = mutate(body, ("vout", 1, "scriptpubkey_address"), "set", body["vout"][0]["scriptpubkey_address"])
    assert "OP_RETURN" in adapter.decode_esplora(body["txid"], claimed, tip).details["unrecognised"][0]


def test_a_height_that_contradicts_the_confirmations_is_garbage(
    blockbook: list[tuple[BitcoinAdapter, dict[str, Any]]],
) -> None:
    adapter, confirmed = _body(blockbook, "8c1e3dec")
    _, pending = _body(blockbook, "73b1ad97")
    for body, path, value in (
        (confirmed, ("confirmations",), 0),  # in block 860730 with 0 confirmations
        (pending, ("confirmations",), 3),  # 3 confirmations in no block (-1)
        (confirmed, ("blockHeight",), -1),
    ):
        with pytest.raises(ChainUnavailable, match="confirmations"):
            adapter.decode_blockbook(body["txid"], mutate(body, path, "set", value))
    # and a mempool transaction whose block time field is its first-seen time stays pending
    assert adapter.decode_blockbook(pending["txid"], copy.deepcopy(pending)).status is TxStatus.PENDING


def test_an_esplora_transaction_out_of_its_block_is_pending_and_replaceable(
    esplora: list[tuple[BitcoinAdapter, dict[str, Any], int]],
) -> None:
    """No unconfirmed Esplora transaction was recorded: the recorded bodies with ``status`` as
    Esplora's API.md gives it for the mempool (``confirmed`` false, no block fields). BIP-125
    signalling is read from the input sequences; replaceable either way (see chains/bitcoin.py)."""
    seen = {}
    for adapter, body, tip in esplora:
        mempool = mutate(body, ("status",), "set", {"confirmed": False})
        obs = adapter.decode_esplora(body["txid"], mempool, tip)
        assert obs.status is TxStatus.PENDING and obs.confirmations == 0 and obs.block_number is None
        assert obs.details["replaceable"] is True
        assert obs.transfers == adapter.decode_esplora(body["txid"], body, tip).transfers
        seen[body["txid"][:8]] = obs.details["rbf_signalled"]
    assert seen["9b0c48b7"] is True  # its input's sequence is 0xfffffffd
    assert seen["87f4cf75"] is False  # 0xffffffff: no explicit signal
    # a status that claims a block while unconfirmed is garbage
    adapter, body, tip = esplora[0]
    with pytest.raises(ChainUnavailable, match="unconfirmed transaction with block_height"):
        adapter.decode_esplora(body["txid"], mutate(body, ("status", "confirmed"), "set", False), tip)
