"""Tests for chains.ownership: signed-message ownership proofs, one verifier per chain family.

No chain data is written by hand: every key, address and signature is made in the test with the
family's own library (eth_account and eth_keys, xrpl-py keypairs, stellar-sdk, solders, btclib), and
the published vectors are quoted with their source:

- EVM: eth_account's documentation of ``Account.sign_message`` / ``Account.recover_message``.
- TRON: Trust Wallet Core, ``tests/chains/Tron/TronMessageSignerTests.cpp`` (its signer follows
  TronWeb's ``signMessageV2``).
- XRP Ledger: xrpl-py, ``tests/unit/core/keypairs/test_main.py`` (``test_is_valid_message_*``).
- Stellar: SEP-53 ("Sign and Verify Messages"), section "Test cases".
- Solana: RFC 8032, section 7.1, TEST 2 (Solana signs messages with plain ed25519).
- Bitcoin: Bitcoin Core, ``src/test/util_tests.cpp``, test case ``message_verify``.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.util
import json
import secrets
import subprocess
import sys
from dataclasses import FrozenInstanceError
from types import ModuleType
from typing import Any

import base58
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.datatypes import PrivateKey
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair as SolanaKeypair
from solders.pubkey import Pubkey
from stellar_sdk import Keypair as StellarKeypair
from stellar_sdk import MuxedAccount
from xrpl.constants import CryptoAlgorithm
from xrpl.core import keypairs

from chains.addresses import evm_to_tron, is_address, normalize_address, tron_to_evm
from chains.network import FAMILIES
from chains.ownership import (
    SIGNED_MESSAGE,
    OwnershipResult,
    method_for,
    not_offered_reason,
    supported_kinds,
    verify_ownership,
)

#: a challenge as the API issues it; the ♥ makes its UTF-8 length differ from its length in characters
CHALLENGE = (
    "Deposit recovery: I sent the deposit of case RC-2026-0042 in transaction 7f3a…c01.\n"
    "Nonce: 9b1de2a4c07f. Expires: 2026-12-07T12:00:00Z. ♥"
)
OTHER_CHALLENGE = CHALLENGE.replace("9b1de2a4c07f", "000000000000")


def refused(result: OwnershipResult, *, field: str | None = None, says: str = "") -> None:
    assert isinstance(result, OwnershipResult)
    assert result.verified is False
    assert result.reason, "a refusal says why"
    assert result.field == field, result.reason
    if field is not None:
        assert result.reason.startswith(f"{field}: "), result.reason
    assert says in result.reason, result.reason


# --------------------------------------------------------------------------------------------------
# The function and its table


def test_every_family_has_an_answer_and_an_unknown_family_is_a_programming_error() -> None:
    for family in FAMILIES:
        kinds = supported_kinds(family)
        assert kinds in ((), (SIGNED_MESSAGE,))
        assert (method_for(family) is None) == (kinds == ())
        assert (not_offered_reason(family) is None) == (kinds == (SIGNED_MESSAGE,))
    with pytest.raises(ValueError, match="unknown chain family"):
        verify_ownership("dogecoin", address="D", message=CHALLENGE, signature="00")
    with pytest.raises(ValueError, match="unknown chain family"):
        supported_kinds("dogecoin")


def test_the_methods_offered() -> None:
    assert method_for("evm") == "eip191"
    assert method_for("tron") == "tip191"
    assert method_for("xrpl") == "xrpl-keypairs"
    assert method_for("stellar") == "sep53"
    assert method_for("solana") == "ed25519"
    assert method_for("cosmos") is None


def test_a_result_is_frozen() -> None:
    account = Account.create()
    result = verify_ownership("evm", address=account.address, message=CHALLENGE, signature="00")
    with pytest.raises(FrozenInstanceError):
        result.verified = True  # type: ignore[misc]


def test_importing_the_verifiers_loads_no_chain_library() -> None:
    probe = (
        "import json, sys\n"
        "import chains.ownership\n"
        "for family in ('evm', 'tron', 'xrpl', 'stellar', 'solana', 'bitcoin', 'cosmos'):\n"
        "    __import__('chains.ownership.' + family)\n"
        "chains.ownership.supported_kinds('bitcoin', address='bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4')\n"
        "heavy = ('web3', 'eth_account', 'eth_keys', 'eth_utils', 'xrpl', 'stellar_sdk', 'solders', 'btclib')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(done.stdout) == []


def test_a_bad_common_input_is_refused_naming_it() -> None:
    account = Account.create()
    sig = evm_sign(account.key)
    refused(verify_ownership("evm", address="", message=CHALLENGE, signature=sig), field="address")
    refused(verify_ownership("evm", address=account.address, message="", signature=sig), field="message")
    refused(verify_ownership("evm", address=account.address, message="\ud800", signature=sig), field="message")
    refused(verify_ownership("evm", address=account.address, message=CHALLENGE, signature=""), field="signature")
    refused(verify_ownership("evm", address=account.address, message=CHALLENGE, signature="  "), field="signature")
    refused(
        verify_ownership("evm", address=account.address, message=CHALLENGE, signature="ab" * 5000), field="signature"
    )
    wrong_types: Any = {"message": b"bytes", "signature": 12}
    refused(
        verify_ownership("evm", address=account.address, message=wrong_types["message"], signature=sig),
        field="message",
    )
    refused(
        verify_ownership("evm", address=account.address, message=CHALLENGE, signature=wrong_types["signature"]),
        field="signature",
    )


# --------------------------------------------------------------------------------------------------
# EVM: EIP-191 personal_sign


def evm_sign(key: Any, message: str = CHALLENGE) -> str:
    """The personal_sign signature as wallets give it: 0x and 130 hex characters."""
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), key).signature).hex()


def test_evm_a_signature_by_the_sender_verifies_whatever_the_address_case() -> None:
    sender = Account.create()
    signature = evm_sign(sender.key)
    for spelling in (sender.address, sender.address.lower(), "0x" + sender.address[2:].upper()):
        result = verify_ownership("evm", address=spelling, message=CHALLENGE, signature=signature)
        assert result.verified, result.reason
        assert result.method == "eip191"
        assert result.recovered == sender.address
        assert result.address == spelling
    # without 0x, and with a 0/1 recovery byte as some hardware wallets give it
    assert verify_ownership("evm", address=sender.address, message=CHALLENGE, signature=signature[2:]).verified
    raw = bytes.fromhex(signature[2:])
    low_v = (raw[:64] + bytes([raw[64] - 27])).hex()
    assert verify_ownership("evm", address=sender.address, message=CHALLENGE, signature=low_v).verified


def test_evm_a_signature_by_another_key_or_over_another_message_is_refused() -> None:
    sender, other = Account.create(), Account.create()
    result = verify_ownership("evm", address=sender.address, message=CHALLENGE, signature=evm_sign(other.key))
    refused(result, says="signed by another key")
    assert result.recovered == other.address
    result = verify_ownership(
        "evm", address=sender.address, message=CHALLENGE, signature=evm_sign(sender.key, OTHER_CHALLENGE)
    )
    refused(result, says="over another message")
    assert result.recovered != sender.address


@pytest.mark.parametrize(
    "signature",
    [
        "0xzz",
        "0x1234",
        "abc",
        "00" * 65,  # recovery byte 0 but r = s = 0
        "11" * 64 + "05",  # recovery byte 5
        "11" * 64 + "25",  # an EIP-155 transaction v (37), not a message signature
        "ff" * 64 + "1b",  # r and s beyond the curve order
    ],
)
def test_evm_a_malformed_signature_is_refused_naming_the_field(signature: str) -> None:
    sender = Account.create()
    refused(verify_ownership("evm", address=sender.address, message=CHALLENGE, signature=signature), field="signature")


def test_evm_a_malformed_address_is_refused_naming_the_field() -> None:
    sender = Account.create()
    signature = evm_sign(sender.key)
    for address in ("0x1234", sender.address[2:], "T" + sender.address[2:]):
        refused(verify_ownership("evm", address=address, message=CHALLENGE, signature=signature), field="address")


def test_evm_published_vector_from_eth_account_docs() -> None:
    # eth_account, Account.sign_message docstring: key 0xb25c…b364 signs "I♥SF" (EIP-191), and
    # Account.recover_message docstring: that signature recovers 0x5ce9…B12E.
    key = "0xb25c7db31feed9122727bf0939dc769a96564b2de4c4726d035b36ecf1e5b364"
    signature = (
        "0xe6ca9bba58c88611fad66a6ce8f996908195593807c4b38bd528d2cff09d4eb3"
        "3e5bfbbf4d3e39b1a2fd816a7680c19ebebaf3a141b239934ad43cb33fcec8ce1c"
    )
    address = "0x5ce9454909639D2D17A3F753ce7d93fa0b9aB12E"
    assert Account.from_key(key).address == address
    result = verify_ownership("evm", address=address, message="I♥SF", signature=signature)
    assert result.verified, result.reason
    refused(verify_ownership("evm", address=address, message="I♥SF!", signature=signature), says="another key")


# --------------------------------------------------------------------------------------------------
# TRON: TIP-191 (TronWeb signMessageV2)


def tip191_sign(key: PrivateKey, message: str = CHALLENGE) -> str:
    """Sign as TronWeb's signMessageV2 does, written from its documentation, not from the module."""
    body = message.encode("utf-8")
    digest = keccak(b"\x19TRON Signed Message:\n" + str(len(body)).encode() + body)
    raw = key.sign_msg_hash(digest).to_bytes()
    return "0x" + (raw[:64] + bytes([raw[64] + 27])).hex()


def tron_address(key: PrivateKey) -> str:
    return evm_to_tron(key.public_key.to_checksum_address())


def test_tron_a_signature_by_the_sender_verifies() -> None:
    key = PrivateKey(secrets.token_bytes(32))
    sender = tron_address(key)
    signature = tip191_sign(key)
    result = verify_ownership("tron", address=sender, message=CHALLENGE, signature=signature)
    assert result.verified, result.reason
    assert result.method == "tip191"
    assert result.recovered == sender
    # the address derived from the recovered key is a TRON address by chains.addresses' rules, with
    # the 20 bytes of the key's EVM address
    assert is_address("tron", result.recovered)
    assert normalize_address("tron", result.recovered) == result.recovered
    assert tron_to_evm(result.recovered) == key.public_key.to_checksum_address()
    # the hex spelling of the address, and a signature without 0x, are read too
    hex_address = base58.b58decode_check(sender).hex()
    assert verify_ownership("tron", address=hex_address, message=CHALLENGE, signature=signature[2:]).verified


def test_tron_a_signature_by_another_key_or_over_another_message_is_refused() -> None:
    key, other = PrivateKey(secrets.token_bytes(32)), PrivateKey(secrets.token_bytes(32))
    sender = tron_address(key)
    result = verify_ownership("tron", address=sender, message=CHALLENGE, signature=tip191_sign(other))
    refused(result, says="signed by another key")
    assert result.recovered == tron_address(other)
    refused(
        verify_ownership("tron", address=sender, message=CHALLENGE, signature=tip191_sign(key, OTHER_CHALLENGE)),
        says="over another message",
    )
    # an EIP-191 signature by the same key is not a TIP-191 one
    evm_style = evm_sign(key.to_bytes())
    refused(verify_ownership("tron", address=sender, message=CHALLENGE, signature=evm_style))


def test_tron_malformed_inputs_are_refused_naming_the_field() -> None:
    key = PrivateKey(secrets.token_bytes(32))
    sender, signature = tron_address(key), tip191_sign(key)
    for bad in ("0x", "xyz", "00" * 64, "11" * 64 + "05", "ff" * 64 + "1c"):
        refused(verify_ownership("tron", address=sender, message=CHALLENGE, signature=bad), field="signature")
    evm_twin = tron_to_evm(sender)
    for address in (evm_twin, sender[:-1] + ("A" if sender[-1] != "A" else "B"), "T123"):
        refused(verify_ownership("tron", address=address, message=CHALLENGE, signature=signature), field="address")


def test_tron_published_vector_from_trust_wallet_core() -> None:
    # Trust Wallet Core, tests/chains/Tron/TronMessageSignerTests.cpp (TronMessageSigner follows
    # TronWeb's signMessageV2): private key 75065f…360a signs "Hello World" and a longer message.
    key = PrivateKey(bytes.fromhex("75065f100e38d3f3b4c5c4235834ba8216de62272a4f03532c44b31a5734360a"))
    sender = tron_address(key)
    vectors = {
        "Hello World": "bc0753c070cc55693097df11bc11e1a7c4bd5e1a40b9dc94c75568e59bcc9d6b"
        "50a7873ef25b469e494490a54de37327b4bc7fc825c81a377b555e34fb7261ba1c",
        "A much longer message to test the signing and verification process": (
            "93aee5f753cf889e0749c74dd0c5996cce889883ae079e09ede462e16d65d06a"
            "4f43d1ed2745e9f3c1690695628269bd58f057a4a93953cc50e66b4a05bc0f451b"
        ),
    }
    for message, signature in vectors.items():
        result = verify_ownership("tron", address=sender, message=message, signature=signature)
        assert result.verified, result.reason
        assert tip191_sign(key, message)[2:] == signature  # RFC 6979: our reading of TIP-191 signs the same bytes


# --------------------------------------------------------------------------------------------------
# XRP Ledger: xrpl-py keypairs, the public key given by the user

ALGORITHMS = [CryptoAlgorithm.SECP256K1, CryptoAlgorithm.ED25519]


def xrpl_keys(algorithm: CryptoAlgorithm) -> tuple[str, str, str]:
    """(public key, private key, classic address) made with xrpl-py."""
    public, private = keypairs.derive_keypair(keypairs.generate_seed(algorithm=algorithm))
    return public, private, keypairs.derive_classic_address(public)


def xrpl_sign(private: str, message: str = CHALLENGE) -> str:
    return keypairs.sign(message.encode("utf-8").hex(), private)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_xrpl_a_signature_by_the_account_key_verifies(algorithm: CryptoAlgorithm) -> None:
    public, private, account = xrpl_keys(algorithm)
    signature = xrpl_sign(private)
    result = verify_ownership("xrpl", address=account, message=CHALLENGE, signature=signature, public_key=public)
    assert result.verified, result.reason
    assert result.method == "xrpl-keypairs"
    assert result.recovered == public
    assert "master key" in result.reason
    lower = verify_ownership(
        "xrpl", address=account, message=CHALLENGE, signature=signature.lower(), public_key=public.lower()
    )
    assert lower.verified, lower.reason


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_xrpl_a_key_that_does_not_derive_the_account_is_refused(algorithm: CryptoAlgorithm) -> None:
    _, _, account = xrpl_keys(algorithm)
    other_public, other_private, other_account = xrpl_keys(algorithm)
    result = verify_ownership(
        "xrpl", address=account, message=CHALLENGE, signature=xrpl_sign(other_private), public_key=other_public
    )
    refused(result, says="signed by another key")
    assert other_account in result.reason and account in result.reason
    # ... unless it is the key that signed the deposit (a regular key): then it proves the account
    regular = verify_ownership(
        "xrpl",
        address=account,
        message=CHALLENGE,
        signature=xrpl_sign(other_private),
        public_key=other_public,
        tx_signing_key=other_public,
    )
    assert regular.verified, regular.reason
    assert "SigningPubKey" in regular.reason
    third_public, _, _ = xrpl_keys(algorithm)
    refused(
        verify_ownership(
            "xrpl",
            address=account,
            message=CHALLENGE,
            signature=xrpl_sign(other_private),
            public_key=other_public,
            tx_signing_key=third_public,
        ),
        says="signed by another key",
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_xrpl_a_regular_key_counts_only_as_the_transactions_own_signing_key(algorithm: CryptoAlgorithm) -> None:
    """An account that signs with a regular key: the key derives another account, so it proves the
    sender only when it is the deposit's SigningPubKey, given as the adapter records it (uppercase)
    or in any case and with a pasted line break."""
    _, _, account = xrpl_keys(algorithm)
    regular, regular_private, regular_account = xrpl_keys(algorithm)
    assert regular_account != account
    signature = xrpl_sign(regular_private)

    def check(tx_signing_key: Any, public_key: str = regular) -> OwnershipResult:
        return verify_ownership("xrpl", address=account, message=CHALLENGE, signature=signature,
                                public_key=public_key, tx_signing_key=tx_signing_key)

    for same in (regular.upper(), regular.lower(), f" {regular}\n"):
        result = check(same)
        assert result.verified, result.reason
        assert result.recovered == regular.upper() and "SigningPubKey" in result.reason
    assert check(regular, public_key=regular.lower()).verified
    # the signature must still verify with the key: the transaction's key alone proves nothing
    _, stranger_private, _ = xrpl_keys(algorithm)
    refused(verify_ownership("xrpl", address=account, message=CHALLENGE, signature=xrpl_sign(stranger_private),
                             public_key=regular, tx_signing_key=regular), says="signed by another key")


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_xrpl_a_missing_empty_or_malformed_transaction_key_never_widens_acceptance(algorithm: CryptoAlgorithm) -> None:
    """A multi-signed transaction has an empty SigningPubKey: only a key deriving the account counts.
    No form of a transaction key other than the key itself accepts a key that does not derive the
    account, and none of them refuses the account's own master key."""
    master, master_private, account = xrpl_keys(algorithm)
    regular, regular_private, _ = xrpl_keys(algorithm)
    other, _, _ = xrpl_keys(algorithm)
    bad: list[Any] = [
        None, "", "   ", other,  # absent, empty (multi-signed), blank, another key
        "0x" + regular, regular[:-2], regular + "00", regular[2:],  # prefixed, short, long, headless
        "05" + regular[2:], "zz" + regular[2:], regular[:-1] + "g",  # unknown prefix, not hex
        regular + " " + other, regular * 16, "x" * 5000,  # two keys, too long
        12345, b"\x02" * 33, [regular], {"key": regular},  # not text
    ]
    for tx_signing_key in bad:
        result = verify_ownership("xrpl", address=account, message=CHALLENGE, signature=xrpl_sign(regular_private),
                                  public_key=regular, tx_signing_key=tx_signing_key)
        refused(result, says="signed by another key")
        assert "not the key that signed the deposit transaction" in result.reason
        master_proof = verify_ownership("xrpl", address=account, message=CHALLENGE,
                                        signature=xrpl_sign(master_private), public_key=master,
                                        tx_signing_key=tx_signing_key)
        assert master_proof.verified, (tx_signing_key, master_proof.reason)
        assert "master key" in master_proof.reason


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.value)
def test_xrpl_a_signature_by_another_key_or_over_another_message_is_refused(algorithm: CryptoAlgorithm) -> None:
    public, private, account = xrpl_keys(algorithm)
    _, other_private, _ = xrpl_keys(algorithm)
    refused(
        verify_ownership(
            "xrpl", address=account, message=CHALLENGE, signature=xrpl_sign(other_private), public_key=public
        ),
        says="signed by another key",
    )
    refused(
        verify_ownership(
            "xrpl", address=account, message=CHALLENGE, signature=xrpl_sign(private, OTHER_CHALLENGE), public_key=public
        ),
        says="over another message",
    )


def test_xrpl_malformed_inputs_are_refused_naming_the_field() -> None:
    public, private, account = xrpl_keys(CryptoAlgorithm.SECP256K1)
    ed_public, ed_private, ed_account = xrpl_keys(CryptoAlgorithm.ED25519)
    signature = xrpl_sign(private)

    def check(field: str, **overrides: str | None) -> None:
        given: dict[str, Any] = {"address": account, "signature": signature, "public_key": public, **overrides}
        refused(verify_ownership("xrpl", message=CHALLENGE, **given), field=field)

    check("public_key", public_key=None)
    check("public_key", public_key="")
    check("public_key", public_key="zz" + public[2:])
    check("public_key", public_key=public[:-2])
    check("public_key", public_key="05" + public[2:])
    check("public_key", public_key="02" + "00" * 32)  # not a point of secp256k1
    check("signature", signature="not hex")
    check("signature", signature=signature[:-2] + "0")
    check("signature", signature="31" + signature[2:])  # not DER
    check("signature", signature="0x" + signature)
    check("signature", address=ed_account, public_key=ed_public, signature=xrpl_sign(ed_private)[:-2])
    check("address", address="rNotAnAccount")
    check("address", address=account[:-1] + ("a" if account[-1] != "a" else "b"))


def test_xrpl_published_vectors_from_xrpl_py() -> None:
    # xrpl-py tests/unit/core/keypairs/test_main.py: test_is_valid_message_secp256k1 /
    # test_is_valid_message_ed25519 ("test message"), test_derive_classic_address_*.
    vectors = [
        (
            "030D58EB48B4420B1F7B9DF55087E0E29FEF0E8468F9A6825B01CA2C361042D435",
            "rU6K7V3Po4snVhBBaU29sesqs2qTQJWDw1",
            "30440220583A91C95E54E6A651C47BEC22744E0B101E2C4060E7B08F6341657DAD9BC3EE"
            "02207D1489C7395DB0188D3A56A977ECBA54B36FA9371B40319655B1B4429E33EF2D",
        ),
        (
            "ED01FA53FA5A7E77798F882ECE20B1ABC00BB358A9E55A202D0D0676BD0CE37A63",
            "rLUEXYuLiQptky37CqLcm9USQpPiz5rkpD",
            "CB199E1BFD4E3DAA105E4832EEDFA36413E1F44205E4EFB9E27E826044C21E3E"
            "2E848BBC8195E8959BADF887599B7310AD1B7047EF11B682E0D068F73749750E",
        ),
    ]
    for public, account, signature in vectors:
        result = verify_ownership(
            "xrpl", address=account, message="test message", signature=signature, public_key=public
        )
        assert result.verified, result.reason
        refused(
            verify_ownership("xrpl", address=account, message="test messages", signature=signature, public_key=public)
        )


# --------------------------------------------------------------------------------------------------
# Stellar: SEP-53


def test_stellar_a_signature_by_the_sender_verifies_in_base64_and_hex_and_for_a_muxed_sender() -> None:
    keypair = StellarKeypair.random()
    raw = keypair.sign_message(CHALLENGE)
    for signature in (base64.b64encode(raw).decode(), raw.hex(), raw.hex().upper()):
        result = verify_ownership("stellar", address=keypair.public_key, message=CHALLENGE, signature=signature)
        assert result.verified, result.reason
        assert result.method == "sep53"
        assert result.recovered == keypair.public_key
    muxed = MuxedAccount(keypair.public_key, 42).account_muxed
    assert muxed is not None and muxed.startswith("M")
    result = verify_ownership("stellar", address=muxed, message=CHALLENGE, signature=raw.hex())
    assert result.verified, result.reason
    assert result.recovered == keypair.public_key
    same_key = verify_ownership(
        "stellar", address=keypair.public_key, message=CHALLENGE, signature=raw.hex(), public_key=keypair.public_key
    )
    assert same_key.verified, same_key.reason


def test_stellar_a_signature_by_another_key_or_over_another_message_is_refused() -> None:
    keypair, other = StellarKeypair.random(), StellarKeypair.random()
    by_other = base64.b64encode(other.sign_message(CHALLENGE)).decode()
    refused(
        verify_ownership("stellar", address=keypair.public_key, message=CHALLENGE, signature=by_other),
        says="signed by another key",
    )
    refused(
        verify_ownership(
            "stellar", address=keypair.public_key, message=CHALLENGE, signature=by_other, public_key=other.public_key
        ),
        field="public_key",
    )
    over_other = base64.b64encode(keypair.sign_message(OTHER_CHALLENGE)).decode()
    refused(
        verify_ownership("stellar", address=keypair.public_key, message=CHALLENGE, signature=over_other),
        says="over another message",
    )
    # a plain ed25519 signature of the message (no SEP-53 prefix) is not a SEP-53 one
    plain = base64.b64encode(keypair.sign(CHALLENGE.encode())).decode()
    refused(verify_ownership("stellar", address=keypair.public_key, message=CHALLENGE, signature=plain))


def test_stellar_malformed_inputs_are_refused_naming_the_field() -> None:
    keypair = StellarKeypair.random()
    raw = keypair.sign_message(CHALLENGE)
    good = base64.b64encode(raw).decode()
    for bad in ("not base64!", good[:-4], base64.b64encode(raw + b"\x00").decode(), good.rstrip("="), raw.hex()[:-2]):
        refused(
            verify_ownership("stellar", address=keypair.public_key, message=CHALLENGE, signature=bad),
            field="signature",
        )
    for address in (keypair.public_key[:-1], "G" + "A" * 55, StellarKeypair.random().secret):
        refused(verify_ownership("stellar", address=address, message=CHALLENGE, signature=good), field="address")


def test_stellar_published_vectors_from_sep_53() -> None:
    # SEP-53 "Sign and Verify Messages", section "Test cases" 1 (ASCII) and 2 (Japanese).
    seed = "SAKICEVQLYWGSOJS4WW7HZJWAHZVEEBS527LHK5V4MLJALYKICQCJXMW"
    address = "GBXFXNDLV4LSWA4VB7YIL5GBD7BVNR22SGBTDKMO2SBZZHDXSKZYCP7L"
    assert StellarKeypair.from_secret(seed).public_key == address
    vectors = {
        "Hello, World!": "fO5dbYhXUhBMhe6kId/cuVq/AfEnHRHEvsP8vXh03M1uLpi5e46yO2Q8rEBzu3feXQewcQE5GArp88u6ePK6BA==",
        # "こんにちは、世界" and a fullwidth exclamation mark
        "\u3053\u3093\u306b\u3061\u306f\u3001\u4e16\u754c\uff01": (
            "CDU265Xs8y3OWbB/56H9jPgUss5G9A0qFuTqH2zs2YDgTm+++dIfmAEceFqB7bhfN3am59lCtDXrCtwH2k1GBA=="
        ),
    }
    for message, signature in vectors.items():
        result = verify_ownership("stellar", address=address, message=message, signature=signature)
        assert result.verified, result.reason
    hex_vector = (
        "7cee5d6d885752104c85eea421dfdcb95abf01f1271d11c4bec3fcbd7874dccd"
        "6e2e98b97b8eb23b643cac4073bb77de5d07b0710139180ae9f3cbba78f2ba04"
    )
    assert verify_ownership("stellar", address=address, message="Hello, World!", signature=hex_vector).verified


# --------------------------------------------------------------------------------------------------
# Solana: ed25519 over the message


def test_solana_a_signature_by_the_sender_verifies_in_base58_and_base64() -> None:
    keypair = SolanaKeypair()
    signature = keypair.sign_message(CHALLENGE.encode("utf-8"))
    address = str(keypair.pubkey())
    for spelling in (str(signature), base64.b64encode(bytes(signature)).decode()):
        result = verify_ownership("solana", address=address, message=CHALLENGE, signature=spelling)
        assert result.verified, result.reason
        assert result.method == "ed25519"
        assert result.recovered == address
    assert verify_ownership(
        "solana", address=address, message=CHALLENGE, signature=str(signature), public_key=address
    ).verified


def test_solana_a_signature_by_another_key_or_over_another_message_is_refused() -> None:
    keypair, other = SolanaKeypair(), SolanaKeypair()
    address = str(keypair.pubkey())
    by_other = str(other.sign_message(CHALLENGE.encode()))
    refused(
        verify_ownership("solana", address=address, message=CHALLENGE, signature=by_other),
        says="signed by another key",
    )
    refused(
        verify_ownership(
            "solana", address=address, message=CHALLENGE, signature=by_other, public_key=str(other.pubkey())
        ),
        field="public_key",
    )
    refused(
        verify_ownership(
            "solana", address=address, message=CHALLENGE, signature=str(keypair.sign_message(OTHER_CHALLENGE.encode()))
        ),
        says="over another message",
    )


def test_solana_malformed_inputs_are_refused_naming_the_field() -> None:
    keypair = SolanaKeypair()
    address = str(keypair.pubkey())
    signature = keypair.sign_message(CHALLENGE.encode())
    raw = bytes(signature)
    for bad in (
        "0OIl",
        base58.b58encode(raw[:63]).decode(),
        base64.b64encode(raw[:63]).decode(),
        base64.b64encode(raw).decode()[:-2] + "=",
    ):
        refused(verify_ownership("solana", address=address, message=CHALLENGE, signature=bad), field="signature")
    for bad_address in ("0x" + "ab" * 20, address[:10]):
        refused(
            verify_ownership("solana", address=bad_address, message=CHALLENGE, signature=str(signature)),
            field="address",
        )
    # a program-derived address is off the curve: no key can sign for it
    pda, _ = Pubkey.find_program_address([b"deposit"], keypair.pubkey())
    refused(
        verify_ownership("solana", address=str(pda), message=CHALLENGE, signature=str(signature)),
        says="program-derived",
    )


def test_solana_published_vector_rfc_8032_test_2() -> None:
    # RFC 8032, section 7.1, TEST 2: the one-byte message 0x72 ("r"), signed with ed25519 as Solana
    # wallets sign messages. Its secret key gives the public key with solders.
    secret = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
    public = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    signature = bytes.fromhex(
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    )
    assert bytes(SolanaKeypair.from_seed(secret).pubkey()) == public
    address = base58.b58encode(public).decode()
    result = verify_ownership("solana", address=address, message="r", signature=base58.b58encode(signature).decode())
    assert result.verified, result.reason
    refused(verify_ownership("solana", address=address, message="R", signature=base58.b58encode(signature).decode()))


# --------------------------------------------------------------------------------------------------
# Bitcoin: BIP-137 with btclib (a dependency of the project); BIP-322 addresses are not offered


def btclib(name: str) -> ModuleType:
    return importlib.import_module(f"btclib.{name}")


def bitcoin_keys() -> tuple[Any, dict[str, str]]:
    """A private key made with btclib, and its P2PKH, P2SH-P2WPKH and P2WPKH addresses."""
    bms, b58, b32 = btclib("ecc.bms"), btclib("b58"), btclib("b32")
    wif, p2pkh = bms.gen_keys()
    key = b58.prv_key_data_from_wif(wif)
    return key, {"p2pkh": p2pkh, "p2wpkh-p2sh": b58.p2wpkh_p2sh(key.pub), "p2wpkh": b32.p2wpkh(key.pub)}


def bip137_sign(key: Any, address: str | None, message: str = CHALLENGE) -> str:
    return str(btclib("ecc.bms").sign(message.encode("utf-8"), key, address).b64encode())


def test_bitcoin_a_signature_by_the_sender_verifies_for_every_single_key_address_type() -> None:
    key, addresses = bitcoin_keys()
    for kind, address in addresses.items():
        assert supported_kinds("bitcoin", address=address) == (SIGNED_MESSAGE,), kind
        for signature in (bip137_sign(key, address), bip137_sign(key, None)):  # BIP-137 and Electrum headers
            result = verify_ownership("bitcoin", address=address, message=CHALLENGE, signature=signature)
            assert result.verified, (kind, result.reason)
            assert result.method == "bip137"
            assert result.recovered == address


def test_bitcoin_a_signature_by_another_key_or_over_another_message_is_refused() -> None:
    key, addresses = bitcoin_keys()
    other, _ = bitcoin_keys()
    for address in addresses.values():
        refused(
            verify_ownership("bitcoin", address=address, message=CHALLENGE, signature=bip137_sign(other, None)),
            says="signed by another key",
        )
        refused(
            verify_ownership(
                "bitcoin", address=address, message=CHALLENGE, signature=bip137_sign(key, address, OTHER_CHALLENGE)
            ),
            says="over another message",
        )


def test_bitcoin_malformed_inputs_are_refused_naming_the_field() -> None:
    key, addresses = bitcoin_keys()
    address = addresses["p2wpkh"]
    raw = base64.b64decode(bip137_sign(key, address))
    for bad in (
        "not base64",
        base64.b64encode(raw[:64]).decode(),
        base64.b64encode(bytes([0]) + raw[1:]).decode(),
        base64.b64encode(raw + bytes(40)).decode(),  # the size of a BIP-322 witness
        base64.b64encode(raw[:1] + b"\xff" * 64).decode(),  # r, s beyond the curve order
    ):
        refused(verify_ownership("bitcoin", address=address, message=CHALLENGE, signature=bad), field="signature")
    bip322 = verify_ownership(
        "bitcoin", address=address, message=CHALLENGE, signature=base64.b64encode(raw + bytes(40)).decode()
    )
    assert "BIP-322" in bip322.reason
    refused(
        verify_ownership("bitcoin", address=address[:-1], message=CHALLENGE, signature=bip137_sign(key, address)),
        field="address",
    )


def test_bitcoin_taproot_and_script_addresses_are_not_offered() -> None:
    key, _ = bitcoin_keys()
    b32 = btclib("b32")
    taproot = b32.p2tr(key.pub.sec[1:])  # the x-only key as the output key
    script = b32.p2wsh(b"\x51")  # OP_TRUE
    for address in (taproot, script):
        assert supported_kinds("bitcoin", address=address) == ()
        reason = not_offered_reason("bitcoin", address=address)
        assert reason is not None and "BIP-322" in reason
        refused(
            verify_ownership("bitcoin", address=address, message=CHALLENGE, signature=bip137_sign(key, None)),
            says="BIP-322",
        )


def test_bitcoin_published_vector_from_bitcoin_core() -> None:
    btclib("ecc.bms")
    # Bitcoin Core, src/test/util_tests.cpp, BOOST_AUTO_TEST_CASE(message_verify)
    address = "15CRxFdyRpGZLW9w8HnHvVduizdL5jKNbs"
    signature = "IPojfrX2dfPnH26UegfbGQQLrdK844DlHq5157/P6h57WyuS/Qsl+h/WSVGDF4MUi4rWSswW38oimDYfNNUBUOk="
    result = verify_ownership("bitcoin", address=address, message="Trust no one", signature=signature)
    assert result.verified, result.reason
    refused(verify_ownership("bitcoin", address=address, message="I never signed this", signature=signature))


def test_bitcoin_is_not_offered_without_btclib(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name == "btclib" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert supported_kinds("bitcoin") == ()
    assert method_for("bitcoin") is None
    reason = not_offered_reason("bitcoin")
    assert reason is not None and "bitcoin" in reason
    result = verify_ownership("bitcoin", address="15CRxFdyRpGZLW9w8HnHvVduizdL5jKNbs", message="m", signature="AA==")
    refused(result, says="not offered")


# --------------------------------------------------------------------------------------------------
# Cosmos: ADR-036 not offered


def test_cosmos_signed_messages_are_not_offered_and_the_reason_says_so() -> None:
    assert supported_kinds("cosmos") == ()
    assert method_for("cosmos") is None
    reason = not_offered_reason("cosmos")
    assert reason is not None and "ADR-036" in reason
    result = verify_ownership("cosmos", address="cosmos1anything", message=CHALLENGE, signature="AA==")
    refused(result, says="ADR-036")
    assert result.method is None


# --------------------------------------------------------------------------------------------------
# Never an exception for what a user sends


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(["evm", "tron", "xrpl", "stellar", "solana", "bitcoin"]),
    signature=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=80).map(lambda b: b.hex()),
        st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()),
        st.binary(min_size=1, max_size=80).map(lambda b: base58.b58encode(b).decode()),
    ),
    public_key=st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=40).map(lambda b: b.hex())),
)
def test_arbitrary_input_is_refused_not_raised(family: str, signature: str, public_key: str | None) -> None:
    result = verify_ownership(
        family, address=senders()[family], message=CHALLENGE, signature=signature, public_key=public_key
    )
    assert isinstance(result, OwnershipResult)
    assert not result.verified
    assert result.reason


@functools.cache
def senders() -> dict[str, str]:
    """One sending address per family, made with the family's library."""
    _, _, xrpl_account = xrpl_keys(CryptoAlgorithm.SECP256K1)
    return {
        "evm": Account.create().address,
        "tron": tron_address(PrivateKey(secrets.token_bytes(32))),
        "xrpl": xrpl_account,
        "stellar": StellarKeypair.random().public_key,
        "solana": str(SolanaKeypair().pubkey()),
        # Bitcoin Core's message_verify vector address (see above): works with or without btclib
        "bitcoin": "15CRxFdyRpGZLW9w8HnHvVduizdL5jKNbs",
    }
