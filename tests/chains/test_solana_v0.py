"""The version-0 ``getTransaction`` result recorded in ``base64`` encoding, whose lookup-table
account keys are only in ``meta.loadedAddresses`` (SOURCES.md, "Added 2026-12-07"): decoded from
its wire bytes, checked against what the recording shows, then through the replay server; and the
"never guess" rules of the Solana decoder on in-memory changes of it."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chains.base import AssetKind, TxStatus
from chains.replay import ReplayServer
from chains.solana import SolanaAdapter, account_keys, decode_transaction, from_wire
from chains.transport import Transport, UnusableAnswer
from recovery.config import Config
from tests.fixtures_replay import network_at

pytestmark = pytest.mark.fixtures

FILE = "getTransaction_result_v0_base64_loaded_addresses_mainnet.json"
SIGNATURE = "2aoWC4uMT9zznC5m3ALE45Rb9YtmD6sNCabSgz4vACC9fKmwjaTooKVsn7mgoJ2Er3pa2xi8rbLcPzogNVwV5KSv"
FEE_PAYER = "12VFrc1dFynPzs4HBRdRoMKNm1jca2S2uhaNKCkdffwy"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
SLOT = 334182963
#: owners of the token accounts the USDC moves through (meta.pre/postTokenBalances)
VAULT_OWNER = "EM1GQEerfKsrT6eJbehX4nwV3MdTCdjvhUYVytFAuEVg"
RELAY_OWNER = "41fkvu8LhJDqkF325GTz6HuQRvZmCXVtYoYWPZeVCdux"
USDC_RECIPIENT = "3CznQLcJWpyNKrYyq7qCvZsHn19csgB8g5wvisx4us47"
USDC_RECIPIENT_TOKEN_ACCOUNT = "917TbE5DbzFzzGimezHfqBJWAsy4SL3UU5BzJNcVhXJ"
SOL_RECIPIENT = "3RY3ngufsn1aPSWE46Ga7sX5pZi2KPCvZG5uGS6TFLZJ"
HEAD = 355393521  # the replay's getSlot: the highest recorded slot (another recording)


@pytest.fixture
def recorded(fixtures_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((fixtures_dir / "solana" / FILE).read_bytes())
    return data


def test_the_recording_is_a_base64_v0_result(recorded: dict[str, Any]) -> None:
    assert recorded["version"] == 0 and recorded["transaction"][1] == "base64"
    assert base64.b64decode(recorded["transaction"][0])[1 + 64] == 0x80  # the v0 message prefix


def test_account_keys_are_static_then_loaded_writable_then_readonly(recorded: dict[str, Any]) -> None:
    shaped = from_wire(recorded)
    static = shaped["transaction"]["message"]["accountKeys"]
    loaded = recorded["meta"]["loadedAddresses"]
    assert len(static) == 7 and static[0] == FEE_PAYER
    assert USDC not in static  # the trap: the mint is only in loadedAddresses
    keys = account_keys(shaped)
    assert keys == [*static, *loaded["writable"], *loaded["readonly"]]
    assert keys[7] == USDC and keys[14] == "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
    assert len(keys) == len(recorded["meta"]["preBalances"]) == 15
    (lookup,) = shaped["transaction"]["message"]["addressTableLookups"]
    assert len(lookup["writableIndexes"]) == 4 and len(lookup["readonlyIndexes"]) == 4


def test_decoded_from_the_wire_bytes(recorded: dict[str, Any]) -> None:
    obs = decode_transaction("solana", SIGNATURE, recorded, HEAD)
    assert obs.status is TxStatus.SUCCESS and "unrecognised" not in obs.details
    assert (obs.block_number, obs.fee, obs.sender) == (SLOT, 91404, FEE_PAYER)
    assert obs.confirmations == HEAD - SLOT + 1
    assert obs.details["version"] == 0 and obs.details["encoding"] == "base64"
    assert obs.details["address_lookup_tables"] == ["BoVGDxjNDTcZXHAWwqqe6x5xBx6oho3S34t5d2NPy2RD"]
    released, paid, sol = obs.transfers
    # inner (CPI) instructions: the bridge releases USDC from its vault, then it is paid on
    assert (released.kind, released.contract, released.decimals) == (AssetKind.TOKEN, USDC, 6)
    assert (released.sender, released.recipient, released.amount) == (VAULT_OWNER, RELAY_OWNER, 16_838_513)
    assert (paid.kind, paid.contract, paid.decimals) == (AssetKind.TOKEN, USDC, 6)
    assert (paid.sender, paid.recipient, paid.amount) == (RELAY_OWNER, USDC_RECIPIENT, 4_608_152_451)
    assert (sol.kind, sol.sender, sol.recipient) == (AssetKind.NATIVE, RELAY_OWNER, SOL_RECIPIENT)
    assert sol.amount == 2_460_497
    assert obs.details["spl"][1]["destination_token_account"] == USDC_RECIPIENT_TOKEN_ACCOUNT


def test_the_balances_show_the_same_movements(recorded: dict[str, Any]) -> None:
    meta = recorded["meta"]
    amounts = {
        (e["accountIndex"], side): int(e["uiTokenAmount"]["amount"])
        for side in ("pre", "post")
        for e in meta[f"{side}TokenBalances"]
    }
    assert amounts[(4, "post")] - amounts[(4, "pre")] == 4_608_152_451
    assert amounts[(9, "pre")] - amounts[(9, "post")] == 16_838_513
    assert meta["postBalances"][10] - meta["preBalances"][10] == 2_460_497
    assert meta["preBalances"][0] - meta["postBalances"][0] == meta["fee"] == 91404


# --------------------------------------------------------------------------------------------------
# never guess


def test_meta_err_is_failed_with_the_fee_and_what_it_attempted(recorded: dict[str, Any]) -> None:
    failed = copy.deepcopy(recorded)
    failed["meta"]["err"] = {"InstructionError": [2, {"Custom": 1}]}
    failed["meta"]["status"] = {"Err": failed["meta"]["err"]}
    obs = decode_transaction("solana", SIGNATURE, failed, HEAD)
    assert obs.status is TxStatus.FAILED and obs.transfers == () and obs.fee == 91404
    assert len(obs.details["attempted"]) == 3 and obs.details["err"] == failed["meta"]["err"]


def test_a_missing_err_or_a_contradicting_status_is_unclear(recorded: dict[str, Any]) -> None:
    missing = copy.deepcopy(recorded)
    del missing["meta"]["err"]
    obs = decode_transaction("solana", SIGNATURE, missing, HEAD)
    assert obs.status is TxStatus.UNCLEAR and "meta.err" in obs.details["unrecognised"][0]
    assert obs.details["raw"] is missing
    contradicting = copy.deepcopy(recorded)
    contradicting["meta"]["status"] = {"Err": "InsufficientFundsForFee"}
    assert decode_transaction("solana", SIGNATURE, contradicting, HEAD).status is TxStatus.UNCLEAR


def test_a_balance_change_no_read_instruction_explains_is_unclear(recorded: dict[str, Any]) -> None:
    """Drop the inner token Transfer that pays the recipient: its token account still gained
    4608152451 (meta), which nothing read explains: the answer cannot be read with certainty."""
    cut = copy.deepcopy(recorded)
    del cut["meta"]["innerInstructions"][0]["instructions"][2]
    obs = decode_transaction("solana", SIGNATURE, cut, HEAD)
    assert obs.status is TxStatus.UNCLEAR
    assert all(t.recipient != USDC_RECIPIENT for t in obs.transfers)
    assert any(USDC_RECIPIENT_TOKEN_ACCOUNT in reason for reason in obs.details["unrecognised"])
    # the same with lamports: the SOL recipient gained more than the system transfer says
    more = copy.deepcopy(recorded)
    more["meta"]["postBalances"][10] += 1
    obs = decode_transaction("solana", SIGNATURE, more, HEAD)
    assert obs.status is TxStatus.UNCLEAR and SOL_RECIPIENT in " ".join(obs.details["unrecognised"])


@pytest.mark.parametrize("encoding", ["base32", "zstd", "jsonParsed"])
def test_an_unknown_transaction_encoding_is_unusable(recorded: dict[str, Any], encoding: str) -> None:
    odd = {**recorded, "transaction": [recorded["transaction"][0], encoding]}
    with pytest.raises(UnusableAnswer, match="encoding"):
        decode_transaction("solana", SIGNATURE, odd, HEAD)


def test_wire_bytes_whose_signature_does_not_verify_are_unusable(recorded: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(recorded["transaction"][0]))
    raw[-1] ^= 1  # one bit of the message
    forged = {**recorded, "transaction": [base64.b64encode(bytes(raw)).decode(), "base64"]}
    with pytest.raises(UnusableAnswer, match="signature"):
        decode_transaction("solana", SIGNATURE, forged, HEAD)


def test_loaded_addresses_that_do_not_match_the_lookups_are_unusable(recorded: dict[str, Any]) -> None:
    short = copy.deepcopy(recorded)
    short["meta"]["loadedAddresses"]["readonly"].pop()
    with pytest.raises(UnusableAnswer, match="loadedAddresses"):
        decode_transaction("solana", SIGNATURE, short, HEAD)


# --------------------------------------------------------------------------------------------------
# through the replay server


def test_the_replay_serves_it_by_its_first_signature(replay_server: ReplayServer) -> None:
    transport = Transport("solana", [replay_server.url_for("solana")])
    answer = transport.call("getTransaction", [SIGNATURE, {"encoding": "json", "maxSupportedTransactionVersion": 0}])
    assert answer["slot"] == SLOT and answer["transaction"][1] == "base64"


@pytest.mark.parametrize("encoding", ["jsonParsed", "json", "base64"])
def test_lookup_through_the_replay(replay_config: Config, replay_server: ReplayServer, encoding: str) -> None:
    adapter = SolanaAdapter(
        network_at(replay_config.networks["solana"], [replay_server.url_for("solana")], encoding=encoding)
    )
    obs = adapter.lookup(SIGNATURE)
    assert obs.status is TxStatus.SUCCESS and obs.fee == 91404 and obs.sender == FEE_PAYER
    assert obs.confirmations == HEAD - SLOT + 1
    assert [(t.recipient, t.amount) for t in obs.transfers if t.contract == USDC] == [
        (RELAY_OWNER, 16_838_513),
        (USDC_RECIPIENT, 4_608_152_451),
    ]


def test_incoming_finds_it_for_the_recipients(replay_config: Config) -> None:
    adapter = SolanaAdapter(replay_config.networks["solana"])
    # the USDC recipient is not an account key: its token account is, found through the owner
    assert adapter.token_accounts(USDC_RECIPIENT) == [USDC_RECIPIENT_TOKEN_ACCOUNT]
    (usdc,) = adapter.incoming(USDC_RECIPIENT, SLOT, SLOT)
    assert usdc.tx_hash == SIGNATURE
    # the SOL recipient is a lookup-table key: listed only through meta.loadedAddresses
    (sol,) = adapter.incoming(SOL_RECIPIENT, 0)
    assert sol.tx_hash == SIGNATURE and sol.transfers[2].recipient == SOL_RECIPIENT
    assert adapter.incoming(USDC_RECIPIENT, SLOT + 1) == []
    assert adapter.incoming(FEE_PAYER, 0) == []  # it paid the fee, received nothing
