"""Ownership proofs: does a signature over a challenge come from the key that sent a deposit?

One function, :func:`verify_ownership`, answers it for every chain family; the rules and services
call it with the sending address read from the chain, the challenge they issued and what the user
gave (a signature, and a public key where the family needs one). Each family's verifier lives in a
module of its own beside this one and uses the family's own, well-kept library:

============  ==================  ===============================================================
family        method              how
============  ==================  ===============================================================
evm           ``eip191``          ``personal_sign``; eth_account recovers the signing address
tron          ``tip191``          TronWeb ``signMessageV2``: keccak over ``"\\x19TRON Signed
                                  Message:\\n" + len + message``; eth_keys recovers the key, whose
                                  TRON address (``41`` + 20 bytes, Base58Check) must be the sender
xrpl          ``xrpl-keypairs``   xrpl-py ``keypairs.is_valid_message`` over the UTF-8 message
                                  (secp256k1 or ed25519); the public key the user gives must derive
                                  the account, or be the transaction's ``SigningPubKey``
stellar       ``sep53``           stellar-sdk ``Keypair.verify_message`` (SEP-53)
solana        ``ed25519``         solders: ed25519 over the UTF-8 message, the address is the key
bitcoin       ``bip137``          btclib ``ecc.bms.verify`` (BIP-137 / Electrum "Sign message") for
                                  P2PKH, P2SH-P2WPKH and P2WPKH addresses, when btclib is installed
cosmos        (none)              not offered: no maintained Python library verifies ADR-036
============  ==================  ===============================================================

Bitcoin's BIP-322 (the only way to sign with a taproot or a script address) is not offered either:
the one Python package that binds a BIP-322 verifier is a single-maintainer wrapper, not a
maintained library. Those addresses get no ``signed_message``; the user proves ownership another
way (a withdrawal record).

Contract:

- :func:`verify_ownership` never raises for what a user sent: a malformed signature or key, an
  address the family cannot read, a signature by another key, all come back as
  ``OwnershipResult(verified=False)`` whose ``reason`` is one clear sentence and whose ``field``
  names the input at fault when one is. An unknown family is a programming error (ValueError), as
  in :mod:`chains.addresses`.
- The message is checked byte for byte as UTF-8, never trimmed. Surrounding whitespace around a
  signature or a public key (a pasted line break) is removed: nothing in them is whitespace.
- Importing this package loads no chain library: each family's module, and the library it uses, is
  imported on the first verification of that family.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol, cast

import base58

from chains.network import FAMILIES

__all__ = [
    "FIELD_ADDRESS",
    "FIELD_MESSAGE",
    "FIELD_PUBLIC_KEY",
    "FIELD_SIGNATURE",
    "FIELD_TX_SIGNING_KEY",
    "SIGNED_BY_ANOTHER_KEY",
    "SIGNED_MESSAGE",
    "OwnershipResult",
    "method_for",
    "not_offered_reason",
    "supported_kinds",
    "verify_ownership",
]

#: the evidence kind this package verifies (issue 18, "Evidence kinds" 1)
SIGNED_MESSAGE: Final = "signed_message"

FIELD_ADDRESS: Final = "address"
FIELD_MESSAGE: Final = "message"
FIELD_SIGNATURE: Final = "signature"
FIELD_PUBLIC_KEY: Final = "public_key"
FIELD_TX_SIGNING_KEY: Final = "tx_signing_key"

#: longer inputs are refused before any decoding (a signature or a key is at most a few hundred
#: characters; a challenge a few hundred too)
MAX_KEY_CHARS: Final = 1024
MAX_MESSAGE_CHARS: Final = 16_384

#: phrase every "the signature is not the sender's" reason contains, for callers and tests
SIGNED_BY_ANOTHER_KEY: Final = "signed by another key"


@dataclass(frozen=True, slots=True)
class OwnershipResult:
    """The answer of :func:`verify_ownership`.

    ``recovered`` is what the signature proves: the signing address (evm, tron, bitcoin), the
    signing key itself (xrpl: the public key in hex; stellar and solana: the account, which is the
    key), or None when nothing was proven. ``reason`` is one sentence: why it was refused, or what
    was verified. ``field`` names the input at fault when the input itself was malformed
    (``address``, ``message``, ``signature``, ``public_key``), else None.
    """

    verified: bool
    family: str
    address: str
    method: str | None
    recovered: str | None
    reason: str
    field: str | None = None


# --------------------------------------------------------------------------------------------------
# The families


@dataclass(frozen=True, slots=True)
class _Family:
    module: str
    method: str | None
    #: an importable module the verifier needs beyond the project's own dependencies, if any
    requires: str | None = None
    #: why signed messages are not offered, when they are not (or when ``requires`` is missing)
    not_offered: str | None = None


_NO_BTCLIB: Final = (
    "signed messages are not offered for bitcoin: no maintained library that verifies BIP-137 "
    "(btclib) is installed here"
)

_FAMILIES: Final[Mapping[str, _Family]] = {
    "evm": _Family("chains.ownership.evm", "eip191"),
    "tron": _Family("chains.ownership.tron", "tip191"),
    "xrpl": _Family("chains.ownership.xrpl", "xrpl-keypairs"),
    "stellar": _Family("chains.ownership.stellar", "sep53"),
    "solana": _Family("chains.ownership.solana", "ed25519"),
    "bitcoin": _Family("chains.ownership.bitcoin", "bip137", requires="btclib", not_offered=_NO_BTCLIB),
    "cosmos": _Family(
        "chains.ownership.cosmos",
        None,
        not_offered=(
            "signed messages are not offered for cosmos: no maintained library verifies ADR-036 "
            "(Keplr signArbitrary) signatures here"
        ),
    ),
}


class _Verify(Protocol):
    def __call__(
        self,
        *,
        address: str,
        message: str,
        signature: str,
        public_key: str | None,
        tx_signing_key: str | None,
    ) -> OwnershipResult: ...


class _AddressCheck(Protocol):
    def __call__(self, address: str) -> str | None: ...


def _family(family: str) -> _Family:
    if family not in FAMILIES or family not in _FAMILIES:
        raise ValueError(f"unknown chain family {family!r}; expected one of {', '.join(_FAMILIES)}")
    return _FAMILIES[family]


def _available(spec: _Family) -> bool:
    if spec.method is None:
        return False
    if spec.requires is None:
        return True
    try:
        return importlib.util.find_spec(spec.requires) is not None
    except (ImportError, ValueError):  # pragma: no cover - a broken installation
        return False


def _address_problem(family: str, address: str) -> str | None:
    """Why this family's verifier cannot take signed messages for this address, if it cannot."""
    module = importlib.import_module(_FAMILIES[family].module)
    check = cast("_AddressCheck | None", getattr(module, "address_not_offered", None))
    return None if check is None else check(address)


def method_for(family: str) -> str | None:
    """The signature scheme verified for ``family`` (``eip191``, ``tip191``, ``xrpl-keypairs``,
    ``sep53``, ``ed25519``, ``bip137``), or None where signed messages are not offered."""
    spec = _family(family)
    return spec.method if _available(spec) else None


def not_offered_reason(family: str, *, address: str | None = None) -> str | None:
    """The sentence for the API when ``signed_message`` is not offered, else None.

    With ``address``, also answers for that sending address (bitcoin: taproot and script addresses
    cannot sign a BIP-137 message).
    """
    spec = _family(family)
    if not _available(spec):
        return spec.not_offered or f"signed messages are not offered for {family}"
    if address is not None:
        return _address_problem(family, address)
    return None


def supported_kinds(family: str, *, address: str | None = None) -> tuple[str, ...]:
    """The evidence kinds this chain layer can verify for ``family`` (and ``address``, if given).

    ``("signed_message",)`` or ``()``; :func:`not_offered_reason` says why not. Documents
    (``withdrawal_record``) are reviewed by people and offered everywhere: not chain knowledge.
    """
    return () if not_offered_reason(family, address=address) else (SIGNED_MESSAGE,)


# --------------------------------------------------------------------------------------------------
# The entry point


def verify_ownership(
    family: str,
    *,
    address: str,
    message: str,
    signature: str,
    public_key: str | None = None,
    tx_signing_key: str | None = None,
) -> OwnershipResult:
    """Whether ``signature`` over ``message`` was made by the key of ``address`` on ``family``.

    - ``address``: the sending address, as read from the chain.
    - ``message``: the challenge, exactly as issued (signed as its UTF-8 bytes).
    - ``signature``: as the wallet gives it: hex for evm, tron and xrpl; base64 (or hex) for
      stellar; base58 or base64 for solana; base64 for bitcoin.
    - ``public_key``: required for xrpl (hex, ``ED…`` or ``02``/``03…``); optional for stellar and
      solana, where it must then be the account's own key; not used for evm, tron and bitcoin,
      whose signatures carry it.
    - ``tx_signing_key``: xrpl only: the deposit transaction's ``SigningPubKey`` as the chain
      adapter recorded it; a public key equal to it proves control of the account even when it is a
      regular key. Absent, empty (a multi-signed transaction) or not a public key, it counts for
      nothing: only a key deriving the account proves it then (never a refusal for that alone).

    Never raises for bad input (see the module docstring); ValueError for an unknown family.
    """
    spec = _family(family)
    shown = address if isinstance(address, str) else repr(address)
    method = spec.method if _available(spec) else None
    if method is None:
        reason = spec.not_offered or f"signed messages are not offered for {family}"
        return OwnershipResult(False, family, shown, None, None, reason)
    try:
        _check_common(address, message, signature, public_key)
        module = importlib.import_module(spec.module)
        verify = cast("_Verify", module.verify)
        return verify(
            address=address,
            message=message,
            signature=signature.strip(),
            public_key=public_key.strip() if public_key is not None else None,
            tx_signing_key=_chain_key(tx_signing_key),
        )
    except Malformed as exc:
        return OwnershipResult(False, family, shown, method, None, f"{exc.field}: {exc.message}", exc.field)
    except Exception as exc:  # a library refusing odd input in a way we did not foresee: never accepted
        return OwnershipResult(
            False,
            family,
            shown,
            method,
            None,
            f"signature: could not be checked ({type(exc).__name__}); the signature or key is not one "
            f"this {family} verifier can read",
            FIELD_SIGNATURE,
        )


def _chain_key(tx_signing_key: object) -> str | None:
    """``tx_signing_key`` stripped, or None when it is not text of a plausible length: it comes from
    the chain, so a bad one is no key (it neither refuses nor proves anything)."""
    if not isinstance(tx_signing_key, str) or len(tx_signing_key) > MAX_KEY_CHARS:
        return None
    return tx_signing_key.strip() or None


def _check_common(address: object, message: object, signature: object, public_key: object) -> None:
    if not isinstance(address, str) or not address:
        raise Malformed(FIELD_ADDRESS, "is missing; the sending address is needed")
    if not isinstance(message, str):
        raise Malformed(FIELD_MESSAGE, f"must be a string, not {type(message).__name__}")
    if not message:
        raise Malformed(FIELD_MESSAGE, "is empty; the signed challenge is needed")
    if len(message) > MAX_MESSAGE_CHARS:
        raise Malformed(FIELD_MESSAGE, f"is longer than {MAX_MESSAGE_CHARS} characters")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        raise Malformed(FIELD_MESSAGE, "is not valid Unicode text (it cannot be written as UTF-8)") from None
    _check_text(signature, FIELD_SIGNATURE, required=True)
    _check_text(public_key, FIELD_PUBLIC_KEY, required=False)


def _check_text(value: object, field: str, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise Malformed(field, f"must be a string, not {type(value).__name__}")
    if len(value) > MAX_KEY_CHARS:
        raise Malformed(field, f"is {len(value)} characters long; no {field.replace('_', ' ')} is that long")
    if required and not value.strip():
        raise Malformed(field, "is empty")


# --------------------------------------------------------------------------------------------------
# Helpers for the family verifiers


class Malformed(ValueError):
    """An input a verifier cannot read; turned into a refused result naming ``field``."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def accepted(family: str, address: str, method: str, recovered: str, reason: str) -> OwnershipResult:
    return OwnershipResult(True, family, address, method, recovered, reason)


def refused(
    family: str, address: str, method: str, reason: str, *, recovered: str | None = None, field: str | None = None
) -> OwnershipResult:
    return OwnershipResult(False, family, address, method, recovered, reason, field)


_HEX: Final = re.compile(r"[0-9a-fA-F]*")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_B58_CHARS: Final = frozenset(base58.BITCOIN_ALPHABET.decode("ascii"))


def hex_bytes(value: str, field: str, what: str, *, allow_0x: bool = True) -> bytes:
    """``value`` (hex, optionally ``0x``-prefixed) as bytes, or Malformed(``field``)."""
    body = value[2:] if allow_0x and value[:2] in ("0x", "0X") else value
    if not body:
        raise Malformed(field, f"is empty; expected {what}")
    if not _HEX.fullmatch(body):
        bad = next(c for c in body if c not in "0123456789abcdefABCDEF")
        raise Malformed(field, f"contains {bad!r}, which is not a hex character; expected {what}")
    if len(body) % 2:
        raise Malformed(field, f"has an odd number of hex characters ({len(body)}); expected {what}")
    return bytes.fromhex(body)


def base64_bytes(value: str, field: str, what: str) -> bytes:
    """``value`` as standard base64 (padding required), or Malformed(``field``)."""
    if not _BASE64.fullmatch(value) or len(value) % 4:
        raise Malformed(field, f"is not base64; expected {what}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(field, f"is not base64; expected {what}") from None


def base58_bytes(value: str, field: str, what: str) -> bytes:
    """``value`` as Base58 (Bitcoin alphabet), or Malformed(``field``)."""
    bad = next((c for c in value if c not in _B58_CHARS), None)
    if bad is not None:
        raise Malformed(field, f"contains {bad!r}, which Base58 does not use; expected {what}")
    return bytes(base58.b58decode(value))


def sized(raw: bytes, size: int, field: str, what: str) -> bytes:
    if len(raw) != size:
        raise Malformed(field, f"decodes to {len(raw)} bytes; expected {what}")
    return raw
