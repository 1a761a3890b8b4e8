"""The XRP Ledger recordings of 2026-12-07, through the adapter: the rippled ``server_info`` answer
and the ``account_tx`` page of 49 transactions for rnZmVGX6… (destination tags, RLUSD amounts,
TrustSets), checked against what SOURCES.md says they show; then a replay that serves the recorded
``server_info`` (validated ledger 82521761, older than most recorded transactions): a node that is
behind, which the adapter answers with "try later" for anything above its ledger."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from xrpl.core.addresscodec import classic_address_to_xaddress

from chains.base import AssetKind, ChainUnavailable, Observation, TxStatus
from chains.replay import ReplayServer
from chains.replay import xrpl as xrpl_replay
from chains.xrpl import ISSUED_CURRENCY_DECIMALS, XrplAdapter, decode_entry, parse_account_tx
from recovery.config import Config
from tests.chains.test_xrpl import DUST_RECEIVER, PAGE, TAG_123456, recorded_incoming
from tests.fixtures_replay import FAST, network_at

pytestmark = pytest.mark.fixtures

#: ``info.validated_ledger.seq`` of the recorded server_info (SOURCES.md)
RECORDED_HEAD = 82521761
RLUSD_HEX = "524C555344000000000000000000000000000000"
RLUSD_ISSUER = "rMxCKbEDwqr76QuheSUMdEGf4B9xJ8m5De"
#: the page's oldest transaction (ledger 82046057, below the recorded head): 93940000 drops in
OLDEST_IN = "622C274E9F89AD7E52C8C942F77C7AB0AA15457C3A76D049D25633D32D4AB398"


def load(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / "xrp" / name).read_bytes())


@pytest.fixture(scope="module")
def page_observations(fixtures_dir: Path) -> dict[str, Observation]:
    page = parse_account_tx(load(fixtures_dir, PAGE), DUST_RECEIVER)
    return {e.tx_hash: decode_entry("xrpl", e, None, DUST_RECEIVER) for e in page.entries}


# --------------------------------------------------------------------------------------------------
# the account_tx page, decoded directly


def test_page_shape_as_sources_says(fixtures_dir: Path) -> None:
    """49 transactions (hashes checked against their fields on parsing), all validated, no marker,
    ledgers 82046057-98322656, 47 Payment and 2 TrustSet, all tesSUCCESS."""
    page = parse_account_tx(load(fixtures_dir, PAGE), DUST_RECEIVER)
    assert page.account == DUST_RECEIVER and page.marker is None
    assert len(page.entries) == 49 and len({e.tx_hash for e in page.entries}) == 49
    assert all(e.validated and e.unverified is None for e in page.entries)
    ledgers = [e.ledger_index or 0 for e in page.entries]
    assert (min(ledgers), max(ledgers)) == (82046057, 98322656)
    assert Counter(str(e.tx["TransactionType"]) for e in page.entries) == {"Payment": 47, "TrustSet": 2}
    assert {e.meta["TransactionResult"] for e in page.entries if e.meta is not None} == {"tesSUCCESS"}
    assert (page.ledger_min, page.ledger_max) == (32570, 98408868)


def test_page_directions_tags_and_amounts(page_observations: dict[str, Observation]) -> None:
    observed = page_observations
    assert all(o.status is TxStatus.SUCCESS and o.confirmations == 1 for o in observed.values())
    incoming = {h: o for h, o in observed.items() if o.transfers and o.transfers[0].recipient == DUST_RECEIVER}
    outgoing = {h: o for h, o in observed.items() if o.transfers and o.sender == DUST_RECEIVER}
    # SOURCES.md: 22 incoming, 27 outgoing (the 27 sent by the account: 25 payments and the 2 TrustSets)
    assert (len(incoming), len(outgoing)) == (22, 25)
    assert sum(o.sender == DUST_RECEIVER for o in observed.values()) == 27
    assert not set(incoming) & set(outgoing)
    assert all(len(o.transfers) == 1 for o in [*incoming.values(), *outgoing.values()])
    # destination tags are the memo, on the observation and on its transfer
    assert sorted((o.memo, h[:8]) for h, o in observed.items() if o.memo is not None) == [
        ("1", "9FC79F30"), ("122", "1DE3C15D"), ("1234", "3A7BBEC9"), ("1234", "6F0A9948"), ("123456", "54527436")]
    assert all(t.memo == o.memo for o in observed.values() for t in o.transfers)
    tagged = observed[TAG_123456]
    assert (tagged.transfers[0].amount, tagged.transfers[0].kind, tagged.sender) == (
        10000, AssetKind.NATIVE, "r4uGPFKuV7fVb4MNTythfvZ3igAu6aMoDj")
    # every amount is the delivered amount (never Amount); the page has no partial payments
    assert all(o.details["amount_source"] == "meta.delivered_amount" for o in [*incoming.values(), *outgoing.values()])
    assert not any(o.details.get("partial_payment") for o in observed.values())


def test_page_rlusd_amounts(page_observations: dict[str, Observation]) -> None:
    """Nine RLUSD delivered amounts: the 40-hex code read as RLUSD, the issuer kept, the decimal
    value as exact integer units of 15 decimals (nothing rounded)."""
    tokens = [(h, o) for h, o in page_observations.items() if o.transfers and o.transfers[0].kind is AssetKind.TOKEN]
    assert len(tokens) == 9
    for _h, o in tokens:
        (t,) = o.transfers
        assert (t.symbol, t.contract, t.decimals) == ("RLUSD", f"{RLUSD_HEX}.{RLUSD_ISSUER}", ISSUED_CURRENCY_DECIMALS)
        value = o.details["delivered_amount"]["value"]
        assert "amount_rounded_down" not in o.details
        assert Decimal(t.amount).scaleb(-ISSUED_CURRENCY_DECIMALS) == Decimal(value)  # exact
    received = sorted(o.transfers[0].amount for _h, o in tokens if o.transfers[0].recipient == DUST_RECEIVER)
    assert received == [10**12, 10**13, 3 * 10**14, 112 * 10**13]  # 0.001, 0.01, 0.3, 1.12 RLUSD


def test_trust_set_is_never_a_deposit(page_observations: dict[str, Observation]) -> None:
    trust = [o for o in page_observations.values() if o.details["transaction_type"] == "TrustSet"]
    assert len(trust) == 2
    for o in trust:
        assert o.status is TxStatus.SUCCESS and o.transfers == () and "non_payment" in o.details
        assert "delivered_amount" not in o.details and o.sender == DUST_RECEIVER


# --------------------------------------------------------------------------------------------------
# through the replay (every transaction of the page answers ``tx``)


def test_every_page_transaction_answers_tx(replay_config: Config, fixtures_dir: Path,
                                           page_observations: dict[str, Observation]) -> None:
    """``tx`` for each of the 49 hashes (assembled by the replay from the page's parts) reads as
    the page entry does: same status, sender, transfers, tag and ledger."""
    adapter = XrplAdapter(replay_config.networks["xrpl"])
    observed = adapter.lookup_many(list(page_observations))
    for tx_hash, direct in page_observations.items():
        got = observed[tx_hash]
        assert (got.status, got.sender, got.transfers, got.memo, got.block_number, got.fee) == (
            direct.status, direct.sender, direct.transfers, direct.memo, direct.block_number, direct.fee), tx_hash


def test_incoming_keeps_only_the_tag_of_an_x_address(replay_config: Config) -> None:
    adapter = XrplAdapter(replay_config.networks["xrpl"])
    found = adapter.incoming(classic_address_to_xaddress(DUST_RECEIVER, 1234, False), 0)
    assert [(o.tx_hash[:8], o.transfers[0].amount) for o in found] == [("6F0A9948", 10000), ("3A7BBEC9", 1000000)]
    assert adapter.incoming(classic_address_to_xaddress(DUST_RECEIVER, 122, False), 0) == []  # 122 was outgoing


def test_incoming_rlusd_payments(replay_config: Config) -> None:
    adapter = XrplAdapter(replay_config.networks["xrpl"])
    tokens = [o for o in adapter.incoming(DUST_RECEIVER, 94000000, 95400000) if o.transfers[0].kind is AssetKind.TOKEN]
    assert [(o.block_number, o.transfers[0].amount) for o in tokens] == [
        (94174709, 112 * 10**13), (94800737, 10**12), (95343178, 3 * 10**14), (95344333, 10**13)]
    assert all(o.transfers[0].symbol == "RLUSD" for o in tokens)


# --------------------------------------------------------------------------------------------------
# a node that is behind: the recorded server_info


@pytest.fixture(scope="module")
def behind(fixtures_dir: Path) -> Iterator[ReplayServer]:
    handler = xrpl_replay.build_handler(fixtures_dir, recorded_head=True)
    with ReplayServer({"xrpl": handler}, hold_seconds=2.0) as server:
        yield server


@pytest.fixture
def behind_adapter(behind: ReplayServer, replay_config: Config) -> XrplAdapter:
    return XrplAdapter(network_at(replay_config.networks["xrpl"], [behind.url_for("xrpl")], **FAST))


def test_recorded_server_info_is_the_head(behind_adapter: XrplAdapter) -> None:
    assert behind_adapter.head() == RECORDED_HEAD


def test_a_transaction_above_the_nodes_ledger_is_try_later(behind_adapter: XrplAdapter) -> None:
    """The node lists tx 545274368A… as validated in ledger 84869363, yet says its last validated
    ledger is 82521761: it contradicts itself; never "not found", never a guess."""
    with pytest.raises(ChainUnavailable, match="behind"):
        behind_adapter.lookup(TAG_123456)
    with pytest.raises(ChainUnavailable):  # one such hash makes the whole batch "try later"
        behind_adapter.lookup_many([OLDEST_IN, TAG_123456])


def test_a_transaction_below_the_nodes_ledger_is_answered(behind_adapter: XrplAdapter) -> None:
    obs = behind_adapter.lookup(OLDEST_IN)
    assert obs.status is TxStatus.SUCCESS and obs.block_number == 82046057
    assert obs.confirmations == RECORDED_HEAD - 82046057 + 1
    assert obs.transfers[0].recipient == DUST_RECEIVER and obs.transfers[0].amount == 93940000


def test_incoming_on_a_node_behind(behind_adapter: XrplAdapter, fixtures_dir: Path) -> None:
    """Up to the node's own ledger: what the recordings show there. A range reaching past it:
    try later."""
    expected = [h for ledger, _i, h in recorded_incoming(fixtures_dir, DUST_RECEIVER) if ledger <= RECORDED_HEAD]
    assert len(expected) >= 3
    assert [o.tx_hash for o in behind_adapter.incoming(DUST_RECEIVER, 0)] == expected
    assert [o.tx_hash for o in behind_adapter.incoming(DUST_RECEIVER, 0, RECORDED_HEAD)] == expected
    with pytest.raises(ChainUnavailable, match="behind"):
        behind_adapter.incoming(DUST_RECEIVER, 0, RECORDED_HEAD + 1)
