"""Stellar ownership proof: a SEP-53 signed message, checked with stellar-sdk.

SEP-53 ("Sign and Verify Messages"): the wallet signs sha256(``"Stellar Signed Message:\\n"`` +
message bytes) with the account's ed25519 key; stellar-sdk's ``Keypair.verify_message`` checks it.
The account id (``G…``) is the public key; a muxed sender (``M…``) is reduced to its ``G…``
account. The signature is 64 bytes, in base64 as wallets (Freighter) give it, or in hex.

SEP-53 proves control of the account's own (master) key: an account whose master key is disabled
in favour of other signers cannot prove itself this way (the SEP's "Limitations").
"""

from __future__ import annotations

import re
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
    base64_bytes,
    refused,
    sized,
)

FAMILY: Final = "stellar"
METHOD: Final = "sep53"
SIGNATURE_WHAT: Final = "a 64-byte ed25519 signature in base64 (88 characters) or hex (128 characters)"
_HEX128: Final = re.compile(r"[0-9a-fA-F]{128}")


def account_of(address: str) -> str:
    """The ``G…`` account id of the sender, or Malformed(address)."""
    from chains.addresses import normalize_address, split_muxed

    try:
        value = normalize_address(FAMILY, address, field=FIELD_ADDRESS)
        return split_muxed(value, field=FIELD_ADDRESS)[0] if value.startswith("M") else value
    except InvalidChainInput as exc:
        raise Malformed(FIELD_ADDRESS, exc.message) from None


def signature_bytes(signature: str) -> bytes:
    if _HEX128.fullmatch(signature):
        return bytes.fromhex(signature)
    return sized(base64_bytes(signature, FIELD_SIGNATURE, SIGNATURE_WHAT), 64, FIELD_SIGNATURE, SIGNATURE_WHAT)


def verify(
    *,
    address: str,
    message: str,
    signature: str,
    public_key: str | None,
    tx_signing_key: str | None,
) -> OwnershipResult:
    """See :func:`chains.ownership.verify_ownership`; ``public_key``, if given, must be the account id."""
    del tx_signing_key
    from stellar_sdk import Keypair
    from stellar_sdk.exceptions import BadSignatureError

    account = account_of(address)
    if public_key and public_key != account:
        raise Malformed(
            FIELD_PUBLIC_KEY,
            f"is not the sending account's key ({account}); a SEP-53 signature must be made with the "
            "account's own key (leave the public key empty)",
        )
    raw = signature_bytes(signature)
    try:
        Keypair.from_public_key(account).verify_message(message, raw)
    except BadSignatureError:
        return refused(
            FAMILY,
            address,
            METHOD,
            f"bad signature: it does not verify with the key of {account} over this challenge "
            f"({SIGNED_BY_ANOTHER_KEY}, or over another message)",
        )
    return accepted(FAMILY, address, METHOD, account, f"SEP-53 signature verified: signed by the key of {account}")
