"""Solana ownership proof: an ed25519 signature over the challenge, checked with solders.

A Solana address is its ed25519 public key (32 bytes, Base58). Wallets' ``signMessage`` (Phantom,
Solflare, Sign-In With Solana) sign the message's UTF-8 bytes as they are, with no prefix; solders'
``Signature.verify(pubkey, message)`` checks it. The signature is 64 bytes, in Base58 (as Solana
writes signatures) or base64.

A program-derived address (off the ed25519 curve) has no private key and cannot sign. Solana's
"off-chain message" format (``solana sign-offchain-message``, with its ``\\xffsolana offchain``
header) is not accepted: it signs other bytes.
"""

from __future__ import annotations

from typing import Final

from chains.base import InvalidChainInput
from chains.ownership import (
    FIELD_ADDRESS,
    FIELD_PUBLIC_KEY,
    FIELD_SIGNATURE,
    SIGNED_BY_ANOTHER_KEY,
    Malformed,
    OwnershipResult,
    accepted,
    base58_bytes,
    base64_bytes,
    refused,
    sized,
)

FAMILY: Final = "solana"
METHOD: Final = "ed25519"
SIGNATURE_WHAT: Final = "a 64-byte ed25519 signature in Base58 (87 or 88 characters) or base64 (88 characters)"


def signature_bytes(signature: str) -> bytes:
    """The 64 signature bytes from Base58 or base64, or Malformed(signature).

    The base64 of 64 bytes always ends with ``==`` and Base58 has no ``=``: that tells them apart.
    """
    if "=" in signature:
        raw = base64_bytes(signature, FIELD_SIGNATURE, SIGNATURE_WHAT)
    else:
        raw = base58_bytes(signature, FIELD_SIGNATURE, SIGNATURE_WHAT)
    return sized(raw, 64, FIELD_SIGNATURE, SIGNATURE_WHAT)


def verify(
    *,
    address: str,
    message: str,
    signature: str,
    public_key: str | None,
    tx_signing_key: str | None,
) -> OwnershipResult:
    """See :func:`chains.ownership.verify_ownership`; ``public_key``, if given, must be the address."""
    del tx_signing_key
    from solders.pubkey import Pubkey
    from solders.signature import Signature

    from chains.addresses import normalize_address

    try:
        sender = normalize_address(FAMILY, address, field=FIELD_ADDRESS)
    except InvalidChainInput as exc:
        raise Malformed(FIELD_ADDRESS, exc.message) from None
    if public_key and public_key != sender:
        raise Malformed(
            FIELD_PUBLIC_KEY,
            f"is not the sending address ({sender}); on Solana the address is the key that must sign "
            "(leave the public key empty)",
        )
    key = Pubkey.from_string(sender)
    if not key.is_on_curve():
        return refused(
            FAMILY,
            address,
            METHOD,
            "the sending address is a program-derived address (off the ed25519 curve): no key can sign for it",
        )
    raw = signature_bytes(signature)
    if Signature.from_bytes(raw).verify(key, message.encode("utf-8")):
        return accepted(FAMILY, address, METHOD, sender, f"ed25519 signature verified: signed by the key of {sender}")
    return refused(
        FAMILY,
        address,
        METHOD,
        f"bad signature: it does not verify with the key of {sender} over this challenge "
        f"({SIGNED_BY_ANOTHER_KEY}, or over another message)",
    )
