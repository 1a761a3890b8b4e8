"""Bitcoin ownership proof: a BIP-137 signed message, checked with btclib.

BIP-137 is the "Sign message" of Bitcoin Core, Electrum, Sparrow and hardware wallets: ECDSA over
double-SHA256 of ``"\\x18Bitcoin Signed Message:\\n"`` + length + message, written as 65 bytes
(a header byte 27 to 42, r, s) in base64. The header says which of the candidate keys signed and
which address type it claims; btclib's ``ecc.bms.verify`` recovers the key and checks that it owns
the address. It accepts P2PKH, P2SH-P2WPKH and P2WPKH addresses (the BIP-137 headers and Electrum's
compressed-key headers alike, both of which prove the same key).

Not offered for taproot (``bc1p…``) and P2WSH (``bc1q…`` of 62 characters) addresses: those can
only sign with BIP-322, and no maintained Python library verifies BIP-322 (the one binding on PyPI
is a single-maintainer wrapper). A P2SH address (``3…``) verifies only when it wraps one P2WPKH
key, which cannot be seen from the address.

btclib is an optional dependency here: without it signed messages are not offered for bitcoin
(:func:`chains.ownership.supported_kinds`). It is imported on the first verification.
"""

from __future__ import annotations

import importlib
from typing import Final

from chains.base import InvalidChainInput
from chains.ownership import (
    FIELD_ADDRESS,
    FIELD_SIGNATURE,
    SIGNED_BY_ANOTHER_KEY,
    Malformed,
    OwnershipResult,
    accepted,
    base64_bytes,
    refused,
    sized,
)

FAMILY: Final = "bitcoin"
METHOD: Final = "bip137"
SIGNATURE_WHAT: Final = 'a BIP-137 ("Sign message") signature: 65 bytes in base64 (88 characters)'
_NEEDS_BIP322: Final = {"p2tr": "taproot", "p2wsh": "P2WSH (script)"}
#: the order of secp256k1's group: r and s of a signature lie in [1, N - 1]
_SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def address_type(address: str) -> str:
    """``p2pkh``, ``p2sh``, ``p2wpkh``, ``p2wsh`` or ``p2tr`` (mainnet or testnet), or Malformed(address)."""
    from chains.addresses import bitcoin_address_type

    try:
        return bitcoin_address_type(address, field=FIELD_ADDRESS)
    except InvalidChainInput as exc:
        raise Malformed(FIELD_ADDRESS, exc.message) from None


def address_not_offered(address: str) -> str | None:
    """Why this sending address cannot prove itself with a BIP-137 signed message, if it cannot."""
    try:
        kind = address_type(address)
    except Malformed as exc:
        return f"{exc.field}: {exc.message}"
    return _bip322_only(kind) if kind in _NEEDS_BIP322 else None


def _bip322_only(kind: str) -> str:
    return (
        f"signed messages are not offered for {_NEEDS_BIP322[kind]} addresses: they can only sign "
        "with BIP-322, and no maintained library verifies BIP-322 here"
    )


def signature_b64(signature: str) -> str:
    """The signature in canonical base64, checked to be 65 bytes with a BIP-137 header."""
    raw = base64_bytes(signature, FIELD_SIGNATURE, SIGNATURE_WHAT)
    if len(raw) > 65:
        raise Malformed(
            FIELD_SIGNATURE,
            f"decodes to {len(raw)} bytes: this looks like a BIP-322 signature, which is not verified "
            'here; sign with the wallet\'s legacy "Sign message" (BIP-137) instead',
        )
    sized(raw, 65, FIELD_SIGNATURE, SIGNATURE_WHAT)
    if not 27 <= raw[0] <= 42:
        raise Malformed(FIELD_SIGNATURE, f"starts with header byte {raw[0]}; a BIP-137 signature's is 27 to 42")
    r, s = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        raise Malformed(FIELD_SIGNATURE, "is not a valid secp256k1 signature (r or s is zero or out of range)")
    return signature


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
    kind = address_type(address)
    if kind in _NEEDS_BIP322:
        return refused(FAMILY, address, METHOD, _bip322_only(kind))
    sig = signature_b64(signature)
    bms = importlib.import_module("btclib.ecc.bms")  # typed loosely: btclib is optional
    try:
        verified = bool(bms.verify(message.encode("utf-8"), address, sig))
    except (ValueError, TypeError, RuntimeError) as exc:  # btclib's "structurally invalid"
        raise Malformed(FIELD_SIGNATURE, f"could not be read as a BIP-137 signature ({exc})") from None
    if verified:
        return accepted(FAMILY, address, METHOD, address, f"BIP-137 signature verified: signed by the key of {address}")
    hint = " (a 3… address verifies only when it wraps a single P2WPKH key)" if kind == "p2sh" else ""
    return refused(
        FAMILY,
        address,
        METHOD,
        f"bad signature: it does not come from the key of {address} over this challenge "
        f"({SIGNED_BY_ANOTHER_KEY}, or over another message){hint}",
    )
