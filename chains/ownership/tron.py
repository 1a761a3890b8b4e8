"""TRON ownership proof: a TIP-191 signed message, as TronWeb's ``signMessageV2`` makes it.

TronWeb (``src/utils/message``: ``hashMessage``, ``signMessage``, ``verifyMessage``) hashes
``"\\x19TRON Signed Message:\\n" + str(len(message)) + message`` with keccak-256, the message being
its UTF-8 bytes and the length counted in bytes, and signs the hash with secp256k1 (65 bytes
``r || s || v``, ``v`` 27 or 28, in hex). TronLink's ``tronWeb.trx.signMessageV2`` is the same.

Verification recovers the public key with eth_keys (the secp256k1 code under eth_account), and the
TRON address of that key is Base58Check(``0x41`` + the last 20 bytes of keccak(public key)): the
same 20 bytes as the key's EVM address. It must be the sender.

The legacy ``trx.sign`` / ``signMessage`` (v1) of a hex string is not accepted: it signs another
digest and wallets have moved to V2.
"""

from __future__ import annotations

from typing import Final

import base58

from chains.base import InvalidChainInput
from chains.ownership import (
    FIELD_ADDRESS,
    FIELD_SIGNATURE,
    SIGNED_BY_ANOTHER_KEY,
    Malformed,
    OwnershipResult,
    accepted,
    refused,
)
from chains.ownership.evm import signature_bytes

FAMILY: Final = "tron"
METHOD: Final = "tip191"
#: TronWeb's ``TRON_MESSAGE_PREFIX``
MESSAGE_PREFIX: Final = b"\x19TRON Signed Message:\n"
TRON_ADDRESS_VERSION: Final = 0x41
SIGNATURE_WHAT: Final = "a 65-byte signMessageV2 signature: 130 hex characters (r, s, v), 0x optional"


def message_hash(message: str) -> bytes:
    """TronWeb's ``hashMessage`` of a text message: keccak-256 of prefix + byte length + bytes."""
    from eth_utils.crypto import keccak

    body = message.encode("utf-8")
    return bytes(keccak(MESSAGE_PREFIX + str(len(body)).encode("ascii") + body))


def tron_address_of(canonical_evm_address: bytes) -> str:
    """The ``T…`` address holding a key's 20 address bytes."""
    return str(base58.b58encode_check(bytes([TRON_ADDRESS_VERSION]) + canonical_evm_address).decode("ascii"))


def verify(
    *,
    address: str,
    message: str,
    signature: str,
    public_key: str | None,
    tx_signing_key: str | None,
) -> OwnershipResult:
    """See :func:`chains.ownership.verify_ownership`; ``public_key`` and ``tx_signing_key`` are not used."""
    del public_key, tx_signing_key  # the signature carries the key
    from eth_keys.datatypes import Signature
    from eth_keys.exceptions import BadSignature
    from eth_utils.exceptions import ValidationError

    from chains.addresses import normalize_address

    try:
        sender = normalize_address(FAMILY, address, field=FIELD_ADDRESS)
    except InvalidChainInput as exc:
        raise Malformed(FIELD_ADDRESS, exc.message) from None
    raw = signature_bytes(signature, SIGNATURE_WHAT)
    v = raw[64] - 27 if raw[64] >= 27 else raw[64]
    try:
        key = Signature(signature_bytes=raw[:64] + bytes([v])).recover_public_key_from_msg_hash(message_hash(message))
    except (BadSignature, ValidationError, ValueError):
        raise Malformed(
            FIELD_SIGNATURE, "is not a valid secp256k1 signature (r or s is zero or out of range)"
        ) from None
    recovered = tron_address_of(key.to_canonical_address())
    if recovered == sender:
        return accepted(
            FAMILY, address, METHOD, recovered, f"TIP-191 signature verified: signed by the key of {recovered}"
        )
    return refused(
        FAMILY,
        address,
        METHOD,
        f"{SIGNED_BY_ANOTHER_KEY}, or over another message: the signature recovers {recovered}, "
        f"not the sending address {sender}",
        recovered=recovered,
    )
