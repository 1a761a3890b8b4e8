"""XRP Ledger ownership proof: a signature by the account's key, checked with xrpl-py's keypairs.

An XRPL signature does not carry its key, so the user gives the public key (33 bytes in hex:
``ED`` + 32 bytes for ed25519, ``02``/``03`` + 32 bytes for secp256k1). The proof holds when

1. the signature verifies with that key over the challenge: xrpl-py's
   ``keypairs.is_valid_message(message_bytes, signature_bytes, public_key)``, the message being the
   challenge's UTF-8 bytes (what ``keypairs.sign(message.encode().hex(), private_key)`` signs), the
   signature hex (DER for secp256k1, 64 bytes for ed25519); and
2. the key is the account's: it derives the sending account
   (``keypairs.derive_classic_address``), or it is the ``SigningPubKey`` of the deposit transaction
   (``tx_signing_key``), which is how an account signing with a regular key proves itself. A
   ``tx_signing_key`` that is absent, empty (a multi-signed transaction) or not a public key
   counts for nothing: then only a key deriving the account proves it.

xrpl-py is imported on the first verification.
"""

from __future__ import annotations

from typing import Final

from chains.base import InvalidChainInput
from chains.ownership import (
    FIELD_ADDRESS,
    FIELD_PUBLIC_KEY,
    FIELD_SIGNATURE,
    FIELD_TX_SIGNING_KEY,
    SIGNED_BY_ANOTHER_KEY,
    Malformed,
    OwnershipResult,
    accepted,
    hex_bytes,
    refused,
    sized,
)

FAMILY: Final = "xrpl"
METHOD: Final = "xrpl-keypairs"
KEY_WHAT: Final = (
    "the signing account's public key: 66 hex characters, ED… for an ed25519 key or 02…/03… for a secp256k1 key"
)
ED25519_SIGNATURE_WHAT: Final = "an ed25519 signature: 128 hex characters"
SECP256K1_SIGNATURE_WHAT: Final = "a DER-encoded secp256k1 signature in hex (about 140 characters, starting 30)"


def account_of(address: str) -> str:
    """The classic ``r…`` account of the sender, or Malformed(address)."""
    from chains.addresses import normalize_address

    try:
        return normalize_address(FAMILY, address, field=FIELD_ADDRESS)
    except InvalidChainInput as exc:
        try:  # a testnet X-address reduces to its account the same way
            return normalize_address(FAMILY, address, field=FIELD_ADDRESS, testnet=True)
        except InvalidChainInput:
            raise Malformed(FIELD_ADDRESS, exc.message) from None


def public_key_hex(public_key: str | None) -> str:
    """The public key in canonical uppercase hex, checked, or Malformed(public_key)."""
    if not public_key:
        raise Malformed(
            FIELD_PUBLIC_KEY,
            "is required on the XRP Ledger: give the public key of the key that signed (the account's "
            "master key, or the regular key that signed the deposit)",
        )
    raw = sized(hex_bytes(public_key, FIELD_PUBLIC_KEY, KEY_WHAT, allow_0x=False), 33, FIELD_PUBLIC_KEY, KEY_WHAT)
    if raw[0] == 0xED:
        return raw.hex().upper()
    if raw[0] not in (0x02, 0x03):
        raise Malformed(FIELD_PUBLIC_KEY, f"starts with {raw[:1].hex().upper()}; expected {KEY_WHAT}")
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), raw)
    except ValueError:
        raise Malformed(
            FIELD_PUBLIC_KEY, "is not a point of the secp256k1 curve; a character is probably mistyped"
        ) from None
    return raw.hex().upper()


def transaction_key(tx_signing_key: str | None) -> str | None:
    """The deposit transaction's ``SigningPubKey`` in canonical uppercase hex, or None when there
    is none to compare with: absent, empty (a multi-signed transaction: its signers are listed
    apart, and only a key deriving the account proves it) or of any other form than a public key.
    Comes from the chain, not from the user: a bad one never refuses a proof by the master key,
    and never proves anything itself."""
    if not tx_signing_key:
        return None
    try:
        raw = hex_bytes(tx_signing_key, FIELD_TX_SIGNING_KEY, KEY_WHAT, allow_0x=False)
    except Malformed:
        return None
    if len(raw) != 33 or raw[0] not in (0xED, 0x02, 0x03):
        return None
    return raw.hex().upper()


def signature_bytes(signature: str, key: str) -> bytes:
    """The signature bytes in the encoding ``key``'s algorithm uses, or Malformed(signature)."""
    if key.startswith("ED"):
        raw = hex_bytes(signature, FIELD_SIGNATURE, ED25519_SIGNATURE_WHAT, allow_0x=False)
        return sized(raw, 64, FIELD_SIGNATURE, ED25519_SIGNATURE_WHAT)
    raw = hex_bytes(signature, FIELD_SIGNATURE, SECP256K1_SIGNATURE_WHAT, allow_0x=False)
    # DER: 0x30, total length, then two INTEGERs (r and s) of 1 to 33 bytes each
    if not 8 <= len(raw) <= 72 or raw[0] != 0x30 or raw[1] != len(raw) - 2:
        raise Malformed(FIELD_SIGNATURE, f"is not DER; expected {SECP256K1_SIGNATURE_WHAT}")
    return raw


def verify(
    *,
    address: str,
    message: str,
    signature: str,
    public_key: str | None,
    tx_signing_key: str | None,
) -> OwnershipResult:
    """See :func:`chains.ownership.verify_ownership`."""
    from xrpl.core import keypairs

    account = account_of(address)
    key = public_key_hex(public_key)
    raw = signature_bytes(signature, key)
    if not keypairs.is_valid_message(message.encode("utf-8"), raw, key):
        return refused(
            FAMILY,
            address,
            METHOD,
            f"bad signature: it does not verify with the given public key over this challenge "
            f"({SIGNED_BY_ANOTHER_KEY}, or over another message)",
        )
    derived = str(keypairs.derive_classic_address(key))
    if derived == account:
        return accepted(FAMILY, address, METHOD, key, f"signature verified: signed by the master key of {account}")
    if key == transaction_key(tx_signing_key):
        return accepted(
            FAMILY,
            address,
            METHOD,
            key,
            f"signature verified: signed by the key that signed the deposit transaction from {account} "
            "(its SigningPubKey)",
        )
    return refused(
        FAMILY,
        address,
        METHOD,
        f"{SIGNED_BY_ANOTHER_KEY}: the public key belongs to {derived}, not to the sending account "
        f"{account}, and it is not the key that signed the deposit transaction",
        recovered=key,
    )
