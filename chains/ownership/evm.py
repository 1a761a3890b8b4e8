"""EVM ownership proof: an EIP-191 ``personal_sign`` signature over the challenge.

The wallet signs ``"\\x19Ethereum Signed Message:\\n" + len(message) + message`` (the message as
UTF-8 bytes); eth_account's ``Account.recover_message(encode_defunct(text=message), ...)`` recovers
the signing address, which must be the sender (compared without regard to EIP-55 case).

The signature is the 65 bytes ``r || s || v`` in hex (``0x`` optional), ``v`` being 27 or 28 (0 or 1
from some hardware wallets). eth_account and the secp256k1 code under it are imported on the first
verification.
"""

from __future__ import annotations

import re
from typing import Final

from chains.ownership import (
    FIELD_ADDRESS,
    FIELD_SIGNATURE,
    SIGNED_BY_ANOTHER_KEY,
    Malformed,
    OwnershipResult,
    accepted,
    hex_bytes,
    refused,
    sized,
)

FAMILY: Final = "evm"
METHOD: Final = "eip191"
SIGNATURE_WHAT: Final = "a 65-byte personal_sign signature: 130 hex characters (r, s, v), 0x optional"
_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")
_RECOVERY_BYTES: Final = frozenset({0, 1, 27, 28})


def sender_address(address: str) -> str:
    """The sending address in lowercase, or Malformed(address)."""
    if not _ADDRESS.fullmatch(address):
        raise Malformed(FIELD_ADDRESS, "is not an EVM address (0x followed by 40 hex characters)")
    return address.lower()


def signature_bytes(signature: str, what: str = SIGNATURE_WHAT) -> bytes:
    """The 65 signature bytes with a signed-message recovery byte, or Malformed(signature)."""
    raw = sized(hex_bytes(signature, FIELD_SIGNATURE, what), 65, FIELD_SIGNATURE, what)
    if raw[64] not in _RECOVERY_BYTES:
        raise Malformed(
            FIELD_SIGNATURE,
            f"ends with recovery byte {raw[64]}; a signed message's is 27 or 28 (or 0 or 1)",
        )
    return raw


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
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_keys.exceptions import BadSignature
    from eth_utils.exceptions import ValidationError

    sender = sender_address(address)
    raw = signature_bytes(signature)
    try:
        recovered = str(Account.recover_message(encode_defunct(text=message), signature=raw))
    except (BadSignature, ValidationError, ValueError):
        raise Malformed(
            FIELD_SIGNATURE, "is not a valid secp256k1 signature (r or s is zero or out of range)"
        ) from None
    if recovered.lower() == sender:
        return accepted(
            FAMILY, address, METHOD, recovered, f"EIP-191 signature verified: signed by the key of {recovered}"
        )
    return refused(
        FAMILY,
        address,
        METHOD,
        f"{SIGNED_BY_ANOTHER_KEY}, or over another message: the signature recovers {recovered}, "
        f"not the sending address {address}",
        recovered=recovered,
    )
