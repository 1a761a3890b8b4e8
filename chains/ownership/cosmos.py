"""Cosmos ownership proof: not offered.

Cosmos wallets (Keplr's ``signArbitrary``, Leap, Cosmostation) sign arbitrary data as ADR-036: an
amino-JSON ``StdSignDoc`` with one ``sign/MsgSignData`` message, an empty chain id and zero fee,
account number and sequence, signed with secp256k1 over its SHA-256, the public key given beside
the signature. The verifiers that exist are JavaScript (``@keplr-wallet/cosmos``'s
``verifyADR36Amino``, cosmjs) and Go; no maintained Python library verifies ADR-036 (cosmpy and
the other Cosmos SDKs for Python sign transactions, not ADR-036 documents), and this project does
not write one by hand: the sign document's exact JSON (key order, escaping, the signer's bech32
prefix) is where hand-written verifiers go wrong.

So :func:`chains.ownership.supported_kinds` offers no ``signed_message`` for cosmos, and a user
proves a Cosmos deposit with the sending platform's withdrawal record instead.
"""

from __future__ import annotations

from typing import Final

from chains.ownership import OwnershipResult, not_offered_reason

FAMILY: Final = "cosmos"
METHOD: Final = None


def verify(
    *,
    address: str,
    message: str,
    signature: str,
    public_key: str | None,
    tx_signing_key: str | None,
) -> OwnershipResult:
    """Always refused: signed messages are not offered for cosmos."""
    del message, signature, public_key, tx_signing_key
    reason = not_offered_reason(FAMILY) or "signed messages are not offered for cosmos"
    return OwnershipResult(False, FAMILY, address, None, None, reason)
