"""XRP Ledger adapter: every recorded answer in ``xrp/`` decoded and checked against what SOURCES.md
says it shows, then the adapter over HTTP against the replay server (lookups, account history,
faults, failover, bad input).

Two older recordings (xrpl.js test fixtures) do not hash to the hash they carry:
``transaction_entry_payment_with_destination_tag.json`` (3F437BAA…) hashes to its hash only with
``Flags`` 2147483648 (tfFullyCanonicalSig alone): the fixture's tfPartialPayment bit was added by
hand; ``tx_payment_iou_paths_no_tag_apiv2.json`` (F4AB442A…, a hash used as a placeholder in many
test suites) hashes to B2059AD8…. The adapter reports such answers as *unclear* (the answer
contradicts itself: a person reads it, it is never credited); their decoding is still tested here
with ``check_hash=False``. The new account_tx page (all 49 hashes verify) and
the ledger recording supply real tagged payments. The new recordings are tested in
test_xrpl_history.py, the "never guess" rules in test_xrpl_mutations.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from xrpl.core import keypairs
from xrpl.core.addresscodec import classic_address_to_xaddress

from chains.base import AssetKind, ChainAdapter, ChainUnavailable, InvalidChainInput, Observation, TxStatus
from chains.registry import adapter_for
from chains.replay import ReplayServer
from chains.transport import UnusableAnswer
from chains.xrpl import (
    ISSUED_CURRENCY_DECIMALS,
    XrplAdapter,
    XrplEntry,
    currency_symbol,
    decode_amount,
    decode_entry,
    parse_account_tx,
    parse_tx_result,
    split_entry,
)
from recovery.config import Config, Network
from recovery.registry import DepositAddress, InMemoryRegistry
from recovery.rules import Appeal, classify

pytestmark = pytest.mark.fixtures

XRP_1DROP = "474F58E6C78F1DE8542036AB3C16E2B5A4089241DEE3E58142154DC3CA0E8271"
IOU_PATHS = "F4AB442A6D4CBB935D66E1DA7309A5FC71C7143ED4049053EC14E3875B0CF9BF"
PARTIAL_IOU = "A0A074D10355223CBE2520A42F93A52E3CC8B4D692570EB4841084F9BBB39F7A"
TAGGED = "3F437BAAC9E713F24DF2954EADB7BE80F608D8B758116298B999BA252DF4816C"
MEMO_OUT = "C370C5AA3696056A5A6F13D2FBC69E915FF0C61C1022D045717DF580E00B07C1"
CHECK_CREATE = "4E0AA11CBDD1760DE95B68DF2ABBE75C9698CEB548BEA9789053FCB3EBD444FB"
LEDGER_TAGGED = "225B05E7CC17C3F6F58EFA0F2D11C655FEC282922ED4808C267F5615ED56A572"
FAILED_NFT = "CBAA588936C4F560EBC6AA2B131AC274F53ADF4F590A2D686C364ACA406A4626"
DUST_RECEIVER = "rnZmVGX6f4pUYyS4oXYJzoLdRojQV8y297"
#: the account_tx page's incoming payment with destination tag 123456 (10000 drops)
TAG_123456 = "545274368AE0F07E529A30BE139BDBE5FCA7764647F820A8ECE14BB41E4B8F98"
PAGE = "rippled_account_tx_payments_dest_tags_page.json"
#: the highest ledger a recording shows validated (tx 474F58E6…), which server_info reports
HEAD = 99743688


def load(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / "xrp" / name).read_bytes())


def ledger_entries(fixtures_dir: Path) -> dict[str, Any]:
    body = load(fixtures_dir, "ledger_expanded_txs_with_destination_tags.json")
    return {
        tx["hash"]: split_entry({**tx, "ledger_index": body["result"]["ledger_index"]}, validated=True)
        for tx in body["result"]["ledger"]["transactions"]
    }


# --------------------------------------------------------------------------------------------------
# the recordings, decoded directly


def test_xrp_payment_without_tag_api_v1(fixtures_dir: Path) -> None:
    entry = parse_tx_result(load(fixtures_dir, "tx_payment_xrp_no_tag_apiv1.json"), XRP_1DROP)
    assert entry is not None
    obs = decode_entry("xrpl", entry, HEAD)
    assert obs.status is TxStatus.SUCCESS and obs.block_number == HEAD and obs.confirmations == 1
    assert obs.sender == "rnXZ876yGEhoATQSYegtD8bg8wpA8TTX5a" and obs.fee == 11
    assert obs.memo is None and "memos" not in obs.details
    (t,) = obs.transfers
    assert (t.kind, t.recipient, t.amount, t.contract, t.memo) == (AssetKind.NATIVE, DUST_RECEIVER, 1, None, None)
    assert obs.details["amount_source"] == "meta.delivered_amount"
    assert obs.timestamp is not None and obs.timestamp.year == 2025


def test_iou_payment_through_paths_without_delivered_amount(fixtures_dir: Path) -> None:
    """Old ledger (#348860): no delivered_amount; not a partial payment, so DeliverMax arrived in
    full; the issuer written is the destination itself, the trust line that grew is rpZc4m…'s.
    The recording's fields do not hash to its hash: unclear on the adapter's path, decoded here
    without the check."""
    body = load(fixtures_dir, "tx_payment_iou_paths_no_tag_apiv2.json")
    checked = parse_tx_result(body, IOU_PATHS)
    assert checked is not None and "hash to B2059AD8" in str(checked.unverified)
    assert decode_entry("xrpl", checked, HEAD).status is TxStatus.UNCLEAR
    obs = decode_entry("xrpl", split_entry(body["result"], check_hash=False), HEAD)
    assert obs.status is TxStatus.SUCCESS and obs.block_number == 348860
    (t,) = obs.transfers
    assert t.kind is AssetKind.TOKEN and t.recipient == "rMH4UxPrbuMa1spCBR98hLLyNJp4d8p4tM"
    assert t.amount == 10**12  # 0.001 USD at 15 decimals
    assert t.decimals == ISSUED_CURRENCY_DECIMALS and t.symbol == "USD"
    assert t.contract == "USD.rpZc4mVfWUif9CRoHRKKcmhu1nx2xktxBo"
    assert obs.details["issuer_resolved_from_meta"] == "rpZc4mVfWUif9CRoHRKKcmhu1nx2xktxBo"
    assert obs.details["amount_source"].startswith("Amount (not a partial payment")


def test_partial_payment_counts_only_what_was_delivered(fixtures_dir: Path) -> None:
    obs = decode_entry("xrpl", split_entry(load(fixtures_dir, "tx_result_partial_payment_iou.json")), HEAD)
    (t,) = obs.transfers
    assert t.amount == 9_980039920159681  # delivered 9.980039920159681, not the 10 USD asked for
    assert t.contract == "USD.rvYAfWj5gh67oV6fW32ZzP3Aw4Eubs59B" and t.recipient == "rNNuQMuExCiEjeZ4h9JJnj5PSWypdMXDj4"
    assert obs.details["partial_payment"] is True
    assert obs.details["amount_requested"]["value"] == "10"
    # the recording is a bare result: it does not say the transaction was validated
    assert obs.status is TxStatus.PENDING and obs.confirmations == 0 and obs.details["provisional"] is True


def test_destination_tag_from_transaction_entry(fixtures_dir: Path) -> None:
    """The fixture's Flags were edited (tfPartialPayment added): the fields no longer hash to the
    hash, so the adapter refuses it; with the flag as signed, they do."""
    body = load(fixtures_dir, "transaction_entry_payment_with_destination_tag.json")
    assert "contradicts itself" in str(split_entry(body["result"]).unverified)
    as_signed = {**body["result"], "tx_json": {**body["result"]["tx_json"], "Flags": 0x80000000}}
    assert split_entry(as_signed).unverified is None  # the hash check passes on the signed flags
    obs = decode_entry("xrpl", split_entry(body["result"], check_hash=False), HEAD)
    assert obs.status is TxStatus.SUCCESS and obs.tx_hash == TAGGED
    assert obs.memo == "109735445"
    (t,) = obs.transfers
    assert (t.recipient, t.amount, t.memo) == ("rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", 104169972, "109735445")
    # tfPartialPayment is set, yet everything arrived: flagged, amount from delivered_amount
    assert obs.details["partial_payment"] is True and obs.details["delivered_amount"] == "104169972"
    assert obs.block_hash == "C3D46598EB9BF92688CE2395496AE3A55E084F57319F1086B7CD5CF002049097"


def test_account_tx_with_memos(fixtures_dir: Path) -> None:
    page = parse_account_tx(load(fixtures_dir, "account_tx_payments_with_memos.json"), DUST_RECEIVER)
    assert page.marker == {"ledger": 96608933, "seq": 38}
    observed = {e.tx_hash: decode_entry("xrpl", e, HEAD) for e in page.entries}
    assert len(observed) == 3
    incoming = [o for o in observed.values() if o.transfers[0].recipient == DUST_RECEIVER]
    assert sorted(o.transfers[0].amount for o in incoming) == [1, 1]
    out = observed[MEMO_OUT]
    assert out.sender == DUST_RECEIVER and out.transfers[0].amount == 6_000_000
    assert out.details["memos"] == [{"MemoData": "=:s:0xBA4D1d35bCe0e8F28E5a3403e7a0b996c5d50AC4:0/1/0:g1:50"}]
    assert all(o.memo is None for o in observed.values())  # memos are not destination tags


def test_check_create_is_not_a_payment(fixtures_dir: Path) -> None:
    page = parse_account_tx(load(fixtures_dir, "account_tx_checkcreate_with_destination_tag.json"))
    assert page.marker == {"ledger": 61965340, "seq": 0}
    observed = {e.tx_hash: decode_entry("xrpl", e, HEAD) for e in page.entries}
    check = observed[CHECK_CREATE]
    assert check.status is TxStatus.SUCCESS and check.transfers == ()
    assert check.memo == "13" and check.details["transaction_type"] == "CheckCreate"
    assert "non_payment" in check.details
    (other,) = (o for h, o in observed.items() if h != CHECK_CREATE)
    assert other.details["transaction_type"] == "DepositPreauth" and other.transfers == ()


def test_ledger_payments_tags_partials_and_failure(fixtures_dir: Path) -> None:
    entries = ledger_entries(fixtures_dir)
    observed = {h: decode_entry("xrpl", e, HEAD) for h, e in entries.items()}
    tagged = {h[:8]: o for h, o in observed.items() if o.memo is not None and o.transfers}
    assert {h: (o.memo, o.transfers[0].amount) for h, o in tagged.items()} == {
        "225B05E7": ("1288227521", 329174800),
        "42F1570B": ("11034230", 107653731),
        "BB25A30F": ("265460", 67185533),
    }
    failed = observed[FAILED_NFT]
    assert failed.status is TxStatus.FAILED and failed.details["result"] == "tecOBJECT_NOT_FOUND"
    assert failed.transfers == () and failed.fee is not None
    # a partial self-payment that asks for 1,000,000 XRP and delivers 109210 drops
    (arb,) = (o for h, o in observed.items() if h.startswith("4D84AF2EB5"))
    assert arb.transfers[0].amount == 109210 and arb.details["amount_requested"] == "1000000000000"
    # a 40-hex currency code gets its ASCII symbol; the contract keeps the ledger's spelling
    (duels,) = (o for h, o in observed.items() if h.startswith("1CE90E0CA5"))
    assert duels.transfers[0].symbol == "DUELS"
    assert duels.transfers[0].contract == "4455454C53000000000000000000000000000000.rPR5dpAgG39ZKMw7v8ZH1NwTqV82ciAsX6"
    assert all(o.status is not TxStatus.NOT_FOUND for o in observed.values())


def test_amount_scale_rounds_down_and_flags() -> None:
    exact = decode_amount({"currency": "USD", "issuer": "rvYAfWj5gh67oV6fW32ZzP3Aw4Eubs59B", "value": "1.5"})
    assert exact.units == 15 * 10**14 and not exact.rounded_down
    tiny = decode_amount({"currency": "USD", "issuer": "rvYAfWj5gh67oV6fW32ZzP3Aw4Eubs59B", "value": "1.23e-16"})
    assert tiny.units == 0 and tiny.rounded_down
    assert decode_amount("1000000").units == 10**6 and decode_amount("1000000").kind is AssetKind.NATIVE
    assert currency_symbol("524C555344000000000000000000000000000000") == "RLUSD"
    assert currency_symbol("0000000000000000000000005553440000000000") == "USD"


# --------------------------------------------------------------------------------------------------
# over HTTP


def network_at(base: Network, *urls: str, **extra: Any) -> Network:
    data = base.model_dump()
    data.update(base.model_extra or {})
    data.update(rpc_urls=list(urls), timeout_seconds=0.5, connect_timeout_seconds=0.5, retry_attempts=1,
                retry_wait_max_seconds=0.01, cooldown_seconds=0)
    data.update(extra)
    return Network.model_validate(data)


@pytest.fixture
def adapter(replay_config: Config) -> XrplAdapter:
    return XrplAdapter(replay_config.networks["xrpl"])


def test_lookup_every_recorded_transaction(adapter: XrplAdapter, fixtures_dir: Path) -> None:
    hashes = [XRP_1DROP, PARTIAL_IOU, MEMO_OUT, CHECK_CREATE, TAG_123456, *ledger_entries(fixtures_dir)]
    observed = adapter.lookup_many(hashes)
    assert all(o.found for o in observed.values())
    assert observed[XRP_1DROP].confirmations == 1 and observed[XRP_1DROP].transfers[0].amount == 1
    assert observed[TAG_123456].confirmations == HEAD - 84869363 + 1
    assert observed[TAG_123456].memo == "123456"
    assert observed[PARTIAL_IOU].transfers[0].amount == 9_980039920159681
    assert observed[CHECK_CREATE].transfers == () and observed[FAILED_NFT].status is TxStatus.FAILED
    assert observed[LEDGER_TAGGED].block_number == 98408898 and observed[LEDGER_TAGGED].memo == "1288227521"


def recorded_tx(fixtures_dir: Path, name: str, tx_hash: str) -> dict[str, Any]:
    """The transaction fields of ``tx_hash`` as the recording ``name`` holds them (any layout)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            tx = node.get("tx_json") or node.get("tx") or node
            if isinstance(tx, dict) and node.get("hash", tx.get("hash")) == tx_hash and "Account" in tx:
                yield tx
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return dict(next(walk(load(fixtures_dir, name))))


def test_the_key_that_signed_is_kept_master_or_regular(adapter: XrplAdapter, fixtures_dir: Path) -> None:
    """``SigningPubKey`` over HTTP, as recorded: the tagged payment was signed by its account's master
    key; the recorded CheckCreate by a regular key (its key derives another account)."""
    payment = recorded_tx(fixtures_dir, "ledger_expanded_txs_with_destination_tags.json", LEDGER_TAGGED)
    check = recorded_tx(fixtures_dir, "account_tx_checkcreate_with_destination_tag.json", CHECK_CREATE)
    observed = adapter.lookup_many([LEDGER_TAGGED, CHECK_CREATE])
    master = observed[LEDGER_TAGGED]
    assert master.details["signing_pub_key"] == payment["SigningPubKey"].upper()
    assert keypairs.derive_classic_address(master.details["signing_pub_key"]) == master.sender == payment["Account"]
    regular = observed[CHECK_CREATE]
    assert regular.details["signing_pub_key"] == check["SigningPubKey"].upper()
    assert keypairs.derive_classic_address(regular.details["signing_pub_key"]) != regular.sender
    assert "multi_signed" not in master.details and "multi_signed" not in regular.details
    # kept through the stored observation's JSON (what the evidence service reads)
    assert Observation.from_json(master.to_json()).details["signing_pub_key"] == payment["SigningPubKey"].upper()


@pytest.mark.parametrize(
    "key",
    ["", "0x{k}", "{k}00", "{k_short}", "05{k_tail}", "zz{k_tail}", "{k} ", 12345, None],
    ids=["empty", "0x", "long", "short", "prefix", "not-hex", "space", "number", "removed"],
)
def test_a_signing_key_edited_under_the_hash_is_never_kept(fixtures_dir: Path, key: Any) -> None:
    """The recorded tagged payment with its SigningPubKey edited: the fields no longer hash to the id,
    so nothing is kept (and the payment is unclear); read without the hash check, no form but a
    public key is kept either."""
    raw = dict(ledger_entries(fixtures_dir)[LEDGER_TAGGED].raw or {})
    recorded = str(raw["SigningPubKey"])
    edited = dict(raw)
    if key is None:
        del edited["SigningPubKey"]
    else:
        edited["SigningPubKey"] = (key.format(k=recorded, k_short=recorded[:-2], k_tail=recorded[2:])
                                   if isinstance(key, str) else key)
    checked = decode_entry("xrpl", split_entry(edited, validated=True), HEAD)
    assert "signing_pub_key" not in checked.details
    # xrpl-py's codec reads hex with a trailing space as the same bytes, so that edit still hashes to
    # the id: the payment stays clear, and its key is still not kept (only the exact form is)
    assert checked.status is (TxStatus.SUCCESS if key == "{k} " else TxStatus.UNCLEAR)
    unchecked = decode_entry("xrpl", split_entry(edited, validated=True, check_hash=False), HEAD)
    assert "signing_pub_key" not in unchecked.details and "multi_signed" not in unchecked.details


def test_a_multi_signed_form_keeps_no_key(fixtures_dir: Path) -> None:
    """The recorded tagged payment turned into the multi-signed form (an empty SigningPubKey, its own
    signature moved into ``Signers``): flagged ``multi_signed``, no key kept; under the hash check it
    is unclear and nothing is kept."""
    raw = dict(ledger_entries(fixtures_dir)[LEDGER_TAGGED].raw or {})
    signer = {"Account": raw["Account"], "SigningPubKey": raw["SigningPubKey"], "TxnSignature": raw["TxnSignature"]}
    multi = {**{k: v for k, v in raw.items() if k != "TxnSignature"}, "SigningPubKey": "",
             "Signers": [{"Signer": signer}]}
    unchecked = decode_entry("xrpl", split_entry(multi, validated=True, check_hash=False), HEAD)
    assert unchecked.details["multi_signed"] is True and "signing_pub_key" not in unchecked.details
    checked = decode_entry("xrpl", split_entry(multi, validated=True), HEAD)
    assert checked.status is TxStatus.UNCLEAR
    assert "multi_signed" not in checked.details and "signing_pub_key" not in checked.details


@pytest.mark.parametrize("tx_hash", [TAGGED, IOU_PATHS])
def test_a_recording_that_does_not_hash_is_unclear(adapter: XrplAdapter, tx_hash: str) -> None:
    """Never a credit, never "not found": a person gets the reason and the raw answer."""
    obs = adapter.lookup_many([tx_hash, XRP_1DROP])  # the rest of the batch is answered as usual
    assert obs[tx_hash].status is TxStatus.UNCLEAR and obs[XRP_1DROP].status is TxStatus.SUCCESS
    assert any("contradicts itself" in r for r in obs[tx_hash].details["unrecognised"])
    raw = obs[tx_hash].details["raw"]
    assert raw.get("hash", raw.get("tx_json", {}).get("hash")) == tx_hash


def test_unknown_hash_is_not_found_and_keys_are_kept(adapter: XrplAdapter) -> None:
    unknown = "AB" * 32
    observed = adapter.lookup_many([XRP_1DROP.lower(), unknown])
    assert set(observed) == {XRP_1DROP.lower(), unknown}
    assert observed[unknown].status is TxStatus.NOT_FOUND
    assert observed[XRP_1DROP.lower()].tx_hash == XRP_1DROP


@pytest.mark.parametrize("bad", ["", "0x" + "ab" * 32, "ab" * 31, "zz" * 32, " " + "ab" * 32])
def test_invalid_hashes_are_refused_before_any_request(
    adapter: XrplAdapter, replay_server: ReplayServer, bad: str
) -> None:
    before = replay_server.requests["xrpl"]
    with pytest.raises(InvalidChainInput) as caught:
        adapter.lookup_many([XRP_1DROP, bad])
    assert caught.value.field == "tx_hash"
    assert replay_server.requests["xrpl"] == before


def recorded_incoming(fixtures_dir: Path, account: str) -> list[tuple[int, int, str]]:
    """(ledger, index in ledger, hash) of every validated payment to ``account`` that any recording
    in ``xrp/`` shows, decoded straight from the files (recognised by content, not by name; a file
    of another shape, or one whose fields do not hash, adds nothing), oldest first."""
    entries: dict[str, XrplEntry] = {}
    for path in sorted((fixtures_dir / "xrp").glob("*.json")):
        body = json.loads(path.read_bytes())
        result = body.get("result", body) if isinstance(body, dict) else None
        if not isinstance(result, dict):
            continue
        if isinstance(result.get("transactions"), list):
            items = result["transactions"]
        elif isinstance(result.get("ledger"), dict):
            items = [{**tx, "ledger_index": result["ledger_index"], "validated": result.get("validated")}
                     for tx in result["ledger"].get("transactions", []) if isinstance(tx, dict)]
        elif "tx_json" in result or "meta" in result:
            items = [result]
        else:
            continue
        for item in items:
            try:
                entry = split_entry(item)
            except UnusableAnswer:
                continue
            entries.setdefault(entry.tx_hash, entry)
    found = []
    for entry in entries.values():
        obs = decode_entry("xrpl", entry, None)
        if entry.validated and obs.status is TxStatus.SUCCESS and any(t.recipient == account for t in obs.transfers):
            found.append((entry.ledger_index or 0, int(obs.details["tx_index"]), entry.tx_hash))
    return sorted(found)


def test_incoming_pages_through_account_tx(replay_config: Config, replay_server: ReplayServer,
                                           fixtures_dir: Path) -> None:
    """One entry per page (``limit`` 1, following ``marker``): exactly the recorded payments to the
    account, oldest first: the page's 22 incoming payments (SOURCES.md) and tx 474F58E6…, which only
    the ``tx`` recording shows; the page's TrustSets and 27 outgoing payments are left out."""
    small_pages = XrplAdapter(network_at(replay_config.networks["xrpl"], *replay_config.networks["xrpl"].rpc_urls,
                                         account_tx_limit=1))
    expected = recorded_incoming(fixtures_dir, DUST_RECEIVER)
    page = parse_account_tx(load(fixtures_dir, PAGE), DUST_RECEIVER)
    on_page = {e.tx_hash for e in page.entries if e.tx.get("Destination") == DUST_RECEIVER}
    assert len(on_page) == 22 and on_page <= {h for _l, _i, h in expected}
    assert XRP_1DROP in {h for _l, _i, h in expected}
    before = replay_server.requests["xrpl"]
    found = small_pages.incoming(DUST_RECEIVER, 0)
    assert [o.tx_hash for o in found] == [h for _l, _i, h in expected]
    assert replay_server.requests["xrpl"] - before >= len(expected)  # one account_tx page per entry, at least
    assert all(o.status is TxStatus.SUCCESS and o.transfers[0].recipient == DUST_RECEIVER for o in found)
    tags = {o.tx_hash[:8]: o.memo for o in found if o.memo is not None}
    assert tags == {"54527436": "123456", "3A7BBEC9": "1234", "6F0A9948": "1234"}
    assert {o.transfers[0].kind for o in found} == {AssetKind.NATIVE, AssetKind.TOKEN}
    # a range: only what the recordings show inside it
    inside = small_pages.incoming(DUST_RECEIVER, 96608934, 99000000)
    assert [o.tx_hash for o in inside] == [h for ledger, _i, h in expected if 96608934 <= ledger <= 99000000]


def test_incoming_x_address_keeps_only_its_tag(adapter: XrplAdapter) -> None:
    destination = "rsRy14FvipgqudiGmptJBhr1RtpsgfzKMM"
    found = adapter.incoming(classic_address_to_xaddress(destination, 1288227521, False), 98408898, 98408898)
    (obs,) = found
    assert obs.tx_hash == LEDGER_TAGGED and obs.transfers[0].memo == "1288227521"
    assert adapter.incoming(classic_address_to_xaddress(destination, 1, False), 98408898, 98408898) == []


def test_incoming_for_an_account_nobody_recorded_is_empty(adapter: XrplAdapter) -> None:
    assert adapter.incoming("rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", 0) == []


def test_incoming_refuses_bad_ranges(adapter: XrplAdapter) -> None:
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming(DUST_RECEIVER, 10, 5)
    assert caught.value.field == "until"
    with pytest.raises(InvalidChainInput):
        adapter.incoming("0x" + "ab" * 20, 0)


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "truncated", "garbage", "empty", "reset"])
def test_faults_are_unavailable_never_not_found(replay_config: Config, replay_server: ReplayServer,
                                                 replay_faults: Any, kind: str) -> None:
    base = replay_config.networks["xrpl"]
    adapter = XrplAdapter(network_at(base, replay_server.url_for("xrpl")))
    replay_faults.inject("xrpl", kind, count=1)
    with pytest.raises(ChainUnavailable):
        adapter.lookup("AB" * 32)
    replay_faults.inject("xrpl", kind, count=1)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(XRP_1DROP)
    # the next attempt (no fault left) answers normally
    assert adapter.lookup(XRP_1DROP).status is TxStatus.SUCCESS


def test_a_retry_rides_over_one_fault(replay_config: Config, replay_server: ReplayServer, replay_faults: Any) -> None:
    adapter = XrplAdapter(network_at(replay_config.networks["xrpl"], replay_server.url_for("xrpl"), retry_attempts=2))
    replay_faults.inject("xrpl", "503", count=1)
    assert adapter.lookup(TAG_123456).memo == "123456"


def test_failover_to_the_second_url(replay_config: Config, replay_server: ReplayServer, replay_faults: Any) -> None:
    good = replay_server.url_for("xrpl")
    adapter = XrplAdapter(network_at(replay_config.networks["xrpl"], replay_server.url_for("no-such-family"), good))
    obs = adapter.lookup(TAG_123456)
    assert obs.status is TxStatus.SUCCESS
    first, second = adapter.transport.state()
    assert first.failures >= 1 and second.failures == 0


def test_server_errors_other_than_not_found_are_unavailable(replay_config: Config, replay_server: ReplayServer) -> None:
    # the replay answers unknownCmd to a method it does not serve: an unusable answer, not "not found"
    adapter = XrplAdapter(network_at(replay_config.networks["xrpl"], replay_server.url_for("xrpl")))
    with pytest.raises(ChainUnavailable, match="unknownCmd"):
        adapter._rpc("no_such_method", {}, lambda body: parse_tx_result(body, XRP_1DROP))


def test_head_and_a_server_behind_a_seen_ledger(adapter: XrplAdapter) -> None:
    assert adapter.head() == HEAD
    with pytest.raises(ChainUnavailable, match="behind"):
        adapter.head(at_least=HEAD + 1)


def test_the_registry_serves_the_family(replay_config: Config) -> None:
    adapter = adapter_for(replay_config.network("xrpl"))
    assert isinstance(adapter, XrplAdapter) and isinstance(adapter, ChainAdapter)


@pytest.mark.parametrize(
    ("rows", "category", "code"),
    [
        ([("alice", "1288227521")], "uncredited_valid", "uncredited_valid"),
        ([("alice", "1"), ("bob", "1288227521")], "wrong_memo", "memo_other_user"),
        ([("alice", "1")], "wrong_memo", "wrong_memo"),
    ],
    ids=["own-tag", "another-users-tag", "unknown-tag"],
)
def test_destination_tag_through_the_rules(
    adapter: XrplAdapter, replay_config: Config, rows: list[tuple[str, str]], category: str, code: str
) -> None:
    """The recorded 329.1748 XRP payment with destination tag 1288227521 to a shared address (from the
    ledger recording), classified by the rules engine."""
    obs = adapter.lookup(LEDGER_TAGGED)
    registry = InMemoryRegistry()
    for user, tag in rows:
        registry.add_address(DepositAddress(user, "xrpl", "rsRy14FvipgqudiGmptJBhr1RtpsgfzKMM", tag, "eoa"))
    appeal = Appeal("alice", "xrpl", LEDGER_TAGGED, memo="1288227521")
    decision = classify(appeal, {"xrpl": obs}, registry, replay_config, datetime(2026, 1, 1, tzinfo=UTC))
    assert decision.category == category
    assert code in [r.code for r in decision.reasons]
    assert "partial_payment" not in [r.code for r in decision.reasons]  # a plain payment: no partial flag


def test_untagged_payment_to_a_shared_address_is_missing_memo(adapter: XrplAdapter, replay_config: Config) -> None:
    registry = InMemoryRegistry()
    registry.add_address(DepositAddress("alice", "xrpl", DUST_RECEIVER, "5", "eoa"))
    obs = adapter.lookup(XRP_1DROP)
    decision = classify(Appeal("alice", "xrpl", XRP_1DROP), {"xrpl": obs}, registry, replay_config,
                        datetime(2026, 1, 1, tzinfo=UTC))
    assert decision.category == "missing_memo"
