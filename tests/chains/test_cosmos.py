"""The Cosmos SDK adapter against the recorded LCD answers (Cosmos Hub).

What each recording shows is taken from fixtures/chains/SOURCES.md. The replay server's latest
block is the highest recorded height (30033798), so that block's transaction has 1 confirmation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chains import addresses
from chains.base import AssetKind, ChainUnavailable, InvalidChainInput, Observation, TxStatus
from chains.cosmos import CosmosAdapter, decode_transfers, decode_tx
from chains.replay import ReplayServer
from chains.replay import cosmos as cosmos_replay
from chains.transport import UnusableAnswer
from recovery.config import Config
from tests.fixtures_replay import FAST, network_at

MEMO_TX = "BC5E330F0AFA34489B9796E8101A2B027CC8AE8E820AFC7901C3C1E75C2895DD"
IBC_TX = "90BBC25C199B58E6A4C9A2A3448C64E853B4E8DF3E88B1F6E35DE9FBF20400F6"
IBC_DENOM = "ibc/915992C8486D299941292A913640167F0BA02DC2F599BFFED0732CE932C2FCC4"
MEMO_TO = "cosmos1hgp84me0lze8t4jfrwsr05aep2kr57zrk4gecx"
IBC_TO = "cosmos1n3wq399w3s6reslvngve5quw85xusf7la5cpfs"
UNKNOWN = "AB" * 32
HEAD = 30033798


def _adapter(config: Config, urls: list[str] | None = None, **extra: object) -> CosmosAdapter:
    base = config.network("cosmoshub")
    return CosmosAdapter(network_at(base, urls or [base.rpc_urls[0]], **{**FAST, **extra}))


@pytest.fixture
def adapter(replay_config: Config, replay_faults: object) -> CosmosAdapter:
    return _adapter(replay_config)


# ------------------------------------------------------------------ every recording, decoded


def test_msgsend_with_numeric_memo(adapter: CosmosAdapter) -> None:
    obs = adapter.lookup(MEMO_TX)
    assert obs.status is TxStatus.SUCCESS
    assert obs.block_number == 26257963 and obs.confirmations == HEAD - 26257963 + 1
    assert obs.timestamp == datetime(2025, 6, 20, 4, 9, 19, tzinfo=UTC)
    assert obs.memo == "6439432658467882"
    assert addresses.memo_is_wellformed("digits", obs.memo)  # the network's memo format
    assert obs.sender == "cosmos1wev8ptzj27aueu04wgvvl4gvurax6rj5f0v7rw"
    (t,) = obs.transfers
    assert (t.kind, t.sender, t.recipient, t.amount, t.contract) == (
        AssetKind.NATIVE,
        "cosmos1wev8ptzj27aueu04wgvvl4gvurax6rj5f0v7rw",
        MEMO_TO,
        50_000_000,  # 50 ATOM in uatom
        None,
    )
    assert obs.fee == 1600
    assert obs.details["messages"] == ["/cosmos.bank.v1beta1.MsgSend"]


def test_msgsend_of_an_ibc_denom_without_memo(adapter: CosmosAdapter) -> None:
    obs = adapter.lookup(IBC_TX.lower())
    assert obs.tx_hash == IBC_TX
    assert obs.status is TxStatus.SUCCESS and obs.block_number == HEAD and obs.confirmations == 1
    assert obs.memo is None
    (t,) = obs.transfers
    assert (t.kind, t.sender, t.recipient, t.amount, t.contract) == (
        AssetKind.TOKEN,
        "cosmos1dej28rxfh39axghzlcusd98qhpkdarcqqu23ua",
        IBC_TO,
        20_000_000_000,
        IBC_DENOM,
    )
    assert obs.details["ibc_denoms"] == [IBC_DENOM]
    assert obs.fee == 689


def test_decode_transfers_uses_the_network_denom(fixtures_dir: Path) -> None:
    body = json.loads((fixtures_dir / "cosmos" / "tx_msgsend_ibc_denom_no_memo.json").read_text())
    messages = body["tx"]["body"]["messages"]
    (as_token,) = decode_transfers(messages, "uatom")
    (as_native,) = decode_transfers(messages, IBC_DENOM)
    assert as_token.kind is AssetKind.TOKEN and as_native.kind is AssetKind.NATIVE and as_native.contract is None


def test_unknown_hash_is_not_found(adapter: CosmosAdapter, replay_server: ReplayServer) -> None:
    before = replay_server.requests["cosmos"]
    obs = adapter.lookup(UNKNOWN)
    assert obs.status is TxStatus.NOT_FOUND and obs.transfers == ()
    assert replay_server.requests["cosmos"] - before == 1  # no head request for nothing found


def test_a_404_without_the_notfound_body_is_unavailable(replay_config: Config, replay_server: ReplayServer) -> None:
    """A wrong base URL (here: the Esplora API) answers 404 too; that must not read as 'not found'."""
    wrong = _adapter(replay_config, [replay_server.url_for("bitcoin")])
    with pytest.raises(ChainUnavailable, match="code 5"):
        wrong.lookup(UNKNOWN)


def test_lookup_many(adapter: CosmosAdapter) -> None:
    given = [MEMO_TX, MEMO_TX.lower(), IBC_TX, UNKNOWN]
    found = adapter.lookup_many(given)
    assert list(found) == given and found[MEMO_TX] == found[MEMO_TX.lower()]
    assert [found[h].status for h in given] == [TxStatus.SUCCESS] * 3 + [TxStatus.NOT_FOUND]


# ------------------------------------------------------------------ incoming


@pytest.mark.parametrize("search_param", ["query", "events"])
def test_incoming_through_the_tx_search(replay_config: Config, replay_faults: object, search_param: str) -> None:
    """The replay server answers the search from the recorded transactions."""
    adapter = _adapter(replay_config, search_param=search_param)
    assert [o.tx_hash for o in adapter.incoming(IBC_TO, 0)] == [IBC_TX]
    (memo,) = adapter.incoming(MEMO_TO, 26257963, 26257963)
    assert memo.tx_hash == MEMO_TX and memo.memo == "6439432658467882"
    assert adapter.incoming(MEMO_TO, 26257964) == []
    assert adapter.incoming(MEMO_TO, 0, 26257962) == []
    # the sender received nothing
    assert adapter.incoming("cosmos1wev8ptzj27aueu04wgvvl4gvurax6rj5f0v7rw", 0) == []


def test_incoming_validates_its_input(adapter: CosmosAdapter) -> None:
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming("osmo1n3wq399w3s6reslvngve5quw85xusf7la5cpfs", 0)
    assert caught.value.field == "deposit_address"
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming(IBC_TO, 5, 4)
    assert caught.value.field == "until"


# ------------------------------------------------------------------ addresses and hashes


def test_address_and_hash_validation(
    adapter: CosmosAdapter, replay_config: Config, replay_server: ReplayServer
) -> None:
    assert adapter.is_address(MEMO_TO) and adapter.normalize_address(MEMO_TO.upper()) == MEMO_TO
    assert not adapter.is_address(MEMO_TO[:-1] + ("q" if MEMO_TO[-1] != "q" else "p"))
    osmosis = _adapter(replay_config, bech32_prefix="osmo")
    assert not osmosis.is_address(MEMO_TO)
    assert adapter.normalize_tx_hash(MEMO_TX.lower()) == MEMO_TX
    before = replay_server.requests["cosmos"]
    for bad in (MEMO_TX[:-1], "0x" + MEMO_TX, "Z" * 64, "\t" + MEMO_TX):
        with pytest.raises(InvalidChainInput) as caught:
            adapter.lookup_many([IBC_TX, bad])
        assert caught.value.field == "tx_hash"
    assert replay_server.requests["cosmos"] == before


# ------------------------------------------------------------------ faults and failover


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "truncated", "garbage", "empty", "reset"])
def test_a_failing_node_is_unavailable_never_not_found(
    adapter: CosmosAdapter, replay_server: ReplayServer, kind: str
) -> None:
    replay_server.faults.inject("cosmos", kind, count=2)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(MEMO_TX)
    replay_server.faults.inject("cosmos", kind, count=2)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(UNKNOWN)
    assert adapter.lookup(MEMO_TX).status is TxStatus.SUCCESS


@pytest.mark.parametrize("kind", ["503", "truncated", "empty"])
def test_one_bad_answer_is_retried(adapter: CosmosAdapter, replay_server: ReplayServer, kind: str) -> None:
    clean = adapter.lookup_many([MEMO_TX, IBC_TX])
    replay_server.faults.inject("cosmos", kind, count=1)
    assert adapter.lookup_many([MEMO_TX, IBC_TX]) == clean


def test_head_failure_makes_the_lookup_unavailable(adapter: CosmosAdapter, replay_server: ReplayServer) -> None:
    replay_server.faults.inject("cosmos", "truncated", count=2, path="/cosmos/base/")
    with pytest.raises(ChainUnavailable):
        adapter.lookup(IBC_TX)


def test_search_failure_makes_incoming_unavailable(adapter: CosmosAdapter, replay_server: ReplayServer) -> None:
    replay_server.faults.inject("cosmos", "garbage", count=2, path="/cosmos/tx/v1beta1/txs")
    with pytest.raises(ChainUnavailable):
        adapter.incoming(IBC_TO, 0)


@pytest.fixture
def broken_server(fixtures_dir: Path) -> Iterator[ReplayServer]:
    with ReplayServer({"cosmos": cosmos_replay.build_handler(fixtures_dir)}, hold_seconds=2.0) as server:
        server.faults.inject("cosmos", "reset", rate=1.0)
        yield server


def test_failover_to_the_second_url(
    replay_config: Config, replay_server: ReplayServer, broken_server: ReplayServer, replay_faults: object
) -> None:
    good = replay_config.network("cosmoshub").rpc_urls[0]
    adapter = _adapter(replay_config, [broken_server.url_for("cosmos"), good], cooldown_seconds=60)
    assert adapter.lookup(MEMO_TX).memo == "6439432658467882"
    first, second = adapter.transport.state()
    assert first.failures >= 1 and "connection" in (first.last_error or "") and second.failures == 0


def test_observation_round_trips_through_json(adapter: CosmosAdapter) -> None:
    for obs in adapter.lookup_many([MEMO_TX, IBC_TX]).values():
        assert Observation.from_json(json.loads(json.dumps(obs.to_json()))) == obs


# ------------------------------------------------------------------ never guess (in-memory changes of the recordings)
# No real failed (code != 0) lookup nor an unknown message type was recorded (SOURCES.md): these
# change the recorded bodies in memory, in both copies of the transaction (``tx`` and
# ``tx_response.tx``) where the change is to the transaction itself.


def _recorded(fixtures_dir: Path, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((fixtures_dir / "cosmos" / name).read_text())
    return body


def _set_message_type(body: dict[str, Any], kind: str) -> None:
    for tx in (body["tx"], body["tx_response"]["tx"]):
        tx["body"]["messages"][0]["@type"] = kind


def _decode(body: dict[str, Any]) -> Observation:
    return decode_tx("cosmoshub", body["tx_response"]["txhash"], body, HEAD, denom="uatom", hrp="cosmos")


def test_the_recordings_decode_without_doubt(fixtures_dir: Path) -> None:
    for name in ("tx_msgsend_with_numeric_memo.json", "tx_msgsend_ibc_denom_no_memo.json"):
        obs = _decode(_recorded(fixtures_dir, name))
        assert obs.status is TxStatus.SUCCESS and "unrecognised" not in obs.details


def test_a_nonzero_code_is_failed_and_the_fee_still_charged(fixtures_dir: Path) -> None:
    body = _recorded(fixtures_dir, "tx_msgsend_with_numeric_memo.json")
    body["tx_response"].update(code=5, codespace="sdk", raw_log="insufficient funds")
    obs = _decode(body)
    assert obs.status is TxStatus.FAILED and obs.transfers == () and obs.fee == 1600
    assert obs.details["code"] == 5 and obs.details["codespace"] == "sdk"
    assert obs.details["attempted"][0]["recipient"] == MEMO_TO


@pytest.mark.parametrize("code", [None, "0", "UNKNOWN", -1, True])
def test_a_code_that_is_missing_or_not_a_code_is_unclear(fixtures_dir: Path, code: object) -> None:
    body = _recorded(fixtures_dir, "tx_msgsend_with_numeric_memo.json")
    if code is None:
        del body["tx_response"]["code"]
    else:
        body["tx_response"]["code"] = code
    obs = _decode(body)
    assert obs.status is TxStatus.UNCLEAR and "tx_response.code" in obs.details["unrecognised"][0]
    assert obs.details["raw"]["tx_response"]["txhash"] == MEMO_TX


def test_an_unknown_message_type_that_moved_coins_is_unclear(fixtures_dir: Path) -> None:
    """The events (SDK 0.50, msg_index 0) show message 0 paid 50 ATOM: read as a type the
    adapter does not know, that payment cannot be read."""
    body = _recorded(fixtures_dir, "tx_msgsend_with_numeric_memo.json")
    _set_message_type(body, "/cosmos.staking.v1beta1.MsgDelegate")
    obs = _decode(body)
    assert obs.status is TxStatus.UNCLEAR and obs.transfers == ()
    assert "MsgDelegate" in obs.details["unrecognised"][0] and MEMO_TO in obs.details["unrecognised"][0]


def test_an_unknown_message_type_that_moved_nothing_is_not_unclear(fixtures_dir: Path) -> None:
    body = _recorded(fixtures_dir, "tx_msgsend_with_numeric_memo.json")
    _set_message_type(body, "/cosmos.gov.v1.MsgVote")
    # message 0 now moves no coin: its ``message`` events (msg_index 0) stay, its bank events go
    body["tx_response"]["events"] = [
        e
        for e in body["tx_response"]["events"]
        if e["type"] == "message" or not any(a["key"] == "msg_index" for a in e["attributes"])
    ]
    obs = _decode(body)
    assert obs.status is TxStatus.SUCCESS and obs.transfers == ()
    assert obs.details["messages"] == ["/cosmos.gov.v1.MsgVote"]


def test_an_unknown_message_type_with_events_of_an_older_sdk_is_unclear(fixtures_dir: Path) -> None:
    """Without ``msg_index`` (SDK < 0.50) the fee transfer and a message's cannot be told apart."""
    body = _recorded(fixtures_dir, "tx_msgsend_with_numeric_memo.json")
    _set_message_type(body, "/cosmos.gov.v1.MsgVote")
    for event in body["tx_response"]["events"]:
        event["attributes"] = [a for a in event["attributes"] if a["key"] != "msg_index"]
    assert _decode(body).status is TxStatus.UNCLEAR


def test_an_unknown_message_type_without_events_is_unclear(fixtures_dir: Path) -> None:
    body = _recorded(fixtures_dir, "tx_msgsend_ibc_denom_no_memo.json")  # its events list is empty
    _set_message_type(body, "/ibc.core.channel.v1.MsgRecvPacket")
    obs = _decode(body)
    assert obs.status is TxStatus.UNCLEAR and "no events" in obs.details["unrecognised"][0]


def test_events_that_disagree_with_the_messages_are_unclear(fixtures_dir: Path) -> None:
    body = _recorded(fixtures_dir, "tx_msgsend_with_numeric_memo.json")
    for event in body["tx_response"]["events"]:
        attributes = {a["key"]: a for a in event["attributes"]}
        if event["type"] == "transfer" and "msg_index" in attributes:
            attributes["amount"]["value"] = "40000000uatom"
    obs = _decode(body)
    assert obs.status is TxStatus.UNCLEAR and "40000000" in obs.details["unrecognised"][0]
    # the transfer read from the message is kept for the person who reviews it
    assert obs.transfers[0].amount == 50_000_000


def test_two_copies_of_the_transaction_that_differ_are_unusable(fixtures_dir: Path) -> None:
    body = _recorded(fixtures_dir, "tx_msgsend_ibc_denom_no_memo.json")
    body["tx"]["body"]["messages"][0]["amount"][0]["amount"] = "1"
    with pytest.raises(UnusableAnswer, match="not the same transaction"):
        _decode(body)
