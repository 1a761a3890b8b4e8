"""Validation and normalization of addresses, transaction hashes and memos, for every chain family.

This is the one place that decides whether a string is an address, a transaction hash or a memo of a
given chain family, and what its canonical spelling is. Every codec comes from a maintained library:

- EVM: ``eth_utils`` (EIP-55 checksums).
- TRON, Bitcoin legacy, Solana: ``base58`` (Base58 / Base58Check).
- XRP Ledger: ``xrpl.core.addresscodec`` (classic ``r…`` addresses and ``X…`` X-addresses).
- Stellar: ``stellar_sdk`` (``StrKey`` and ``MuxedAccount``).
- Bitcoin segwit: ``bech32m`` (the BIP-350 reference code, which tells bech32 from bech32m; the
  older ``bech32`` package only knows bech32 and would accept a taproot address carrying the wrong
  checksum variant).
- Cosmos: ``bech32`` (Cosmos SDK addresses use plain bech32).

Conventions:

- ``normalize_*`` raise :class:`~chains.base.InvalidChainInput` whose ``field`` names the input and
  whose message says what is wrong; ``is_*`` answer a bool and never raise for bad input.
- Nothing is silently trimmed: surrounding whitespace makes an address, hash or memo invalid, with a
  message saying so, so that the caller (or the user) sees the mistake.
- An unknown family or memo format is a programming error and raises a plain ``ValueError``.
- Bitcoin (and XRPL X-address) testnet forms are accepted only with ``testnet=True``, and then
  mainnet forms are refused: a testnet network cannot receive at a mainnet address and vice versa.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

import base58
import bech32
import bech32m  # type: ignore[import-untyped]  # no py.typed marker in bech32m 1.0.0
from bech32m.codecs import Encoding as _Bech32Encoding  # type: ignore[import-untyped]

from chains.base import InvalidChainInput
from chains.network import FAMILIES

# eth_utils, xrpl-py and stellar-sdk take about a second to import together: each is imported by
# the codec of its family on first use, so that a process that never reads an EVM, XRP Ledger or
# Stellar address (``recovery --help``, the read-only operator commands) does not load them.

__all__ = [
    "FAMILIES",
    "FORMAT_HINTS",
    "MEMO_FORMATS",
    "address_collisions",
    "bitcoin_address_type",
    "evm_to_tron",
    "is_address",
    "is_tx_hash",
    "memo_is_wellformed",
    "normalize_address",
    "normalize_tx_hash",
    "split_muxed",
    "split_x_address",
    "tron_to_evm",
    "validate_memo",
]

ADDRESS_FIELD: Final = "deposit_address"
TX_HASH_FIELD: Final = "tx_hash"
MEMO_FIELD: Final = "memo"

MEMO_FORMATS: Final[tuple[str, ...]] = ("none", "digits", "uint32", "uint64", "text")
UINT32_MAX: Final = 2**32 - 1
UINT64_MAX: Final = 2**64 - 1
DIGITS_MAX_LENGTH: Final = 20
TEXT_MEMO_MAX_BYTES: Final = 28

_B58: Final = "1-9A-HJ-NP-Za-km-z"  # the Base58 character set (Bitcoin's and the XRP Ledger's)
_B32: Final = "02-9ac-hj-np-z"  # the bech32 data character set (lowercase)
_B58_CHARS: Final = frozenset(base58.BITCOIN_ALPHABET.decode("ascii"))
_HEX40: Final = re.compile(r"[0-9a-fA-F]{40}")
_HEX42: Final = re.compile(r"[0-9a-fA-F]{42}")
_HEX64: Final = re.compile(r"[0-9a-fA-F]{64}")

_TRON_VERSION: Final = 0x41
_BTC_VERSIONS: Final[dict[bool, dict[int, str]]] = {
    False: {0x00: "p2pkh", 0x05: "p2sh"},
    True: {0x6F: "p2pkh", 0xC4: "p2sh"},
}
#: Base58Check version bytes of other coins, to explain a wrong-chain address.
_FOREIGN_BASE58_VERSIONS: Final[dict[int, str]] = {
    0x30: "a Litecoin P2PKH address (L…)",
    0x32: "a Litecoin P2SH address (M…)",
    0x1E: "a Dogecoin address (D…)",
    0x16: "a Dogecoin P2SH address",
    0x4C: "a Dash address (X…)",
    0x10: "a Dash P2SH address",
    0x41: "a TRON address (T…)",
}

FORMAT_HINTS: Final[dict[str, dict[str, str]]] = {
    "evm": {
        "address": "0x followed by 40 hex characters; mixed case must match its EIP-55 checksum",
        "address_pattern": r"^0x[0-9a-fA-F]{40}$",
        "tx_hash": "0x followed by 64 hex characters (the 0x is required)",
        "tx_hash_pattern": r"^0x[0-9a-fA-F]{64}$",
    },
    "tron": {
        "address": "T followed by 33 Base58 characters, or 42 hex characters starting with 41",
        "address_pattern": rf"^(T[{_B58}]{{33}}|41[0-9a-fA-F]{{40}})$",
        "tx_hash": "64 hex characters (an optional 0x is removed)",
        "tx_hash_pattern": r"^(0x)?[0-9a-fA-F]{64}$",
    },
    "xrpl": {
        "address": "classic address: r followed by 24 to 34 Base58 characters; "
        "an X-address (X followed by 46 characters) is also accepted and carries the destination tag",
        "address_pattern": rf"^(r[{_B58}]{{24,34}}|X[{_B58}]{{46}})$",
        "tx_hash": "64 hex characters",
        "tx_hash_pattern": r"^[0-9a-fA-F]{64}$",
    },
    "stellar": {
        "address": "account id: G followed by 55 characters A-Z and 2-7; "
        "a muxed account (M followed by 68 such characters) is also accepted",
        "address_pattern": r"^(G[A-Z2-7]{55}|M[A-Z2-7]{68})$",
        "tx_hash": "64 hex characters",
        "tx_hash_pattern": r"^[0-9a-fA-F]{64}$",
    },
    "solana": {
        "address": "32 to 44 Base58 characters (a 32-byte public key)",
        "address_pattern": rf"^[{_B58}]{{32,44}}$",
        "tx_hash": "transaction signature: 64 to 88 Base58 characters (64 bytes)",
        "tx_hash_pattern": rf"^[{_B58}]{{64,88}}$",
    },
    "bitcoin": {
        "address": "1… or 3… (26 to 35 Base58 characters), or bc1q…/bc1p… (bech32/bech32m); "
        "testnet networks use m…, n…, 2… or tb1…",
        "address_pattern": rf"^([13][{_B58}]{{25,34}}|(bc|BC)1[{_B32}{_B32.upper()}]{{39,59}})$",
        "address_pattern_testnet": rf"^([mn2][{_B58}]{{25,34}}|(tb|TB)1[{_B32}{_B32.upper()}]{{39,59}})$",
        "tx_hash": "transaction id: 64 hex characters",
        "tx_hash_pattern": r"^[0-9a-fA-F]{64}$",
    },
    "cosmos": {
        "address": "cosmos1 (or the network's own prefix and 1) followed by 38 or 58 bech32 characters",
        "address_pattern": rf"^cosmos1([{_B32}]{{38}}|[{_B32}]{{58}})$",
        "tx_hash": "64 hex characters",
        "tx_hash_pattern": r"^[0-9a-fA-F]{64}$",
    },
}


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown chain family {family!r}; expected one of {', '.join(FAMILIES)}")


def _describe_char(char: str) -> str:
    names = {" ": "a space", "\t": "a tab", "\n": "a line break", "\r": "a line break", "\u00a0": "a no-break space"}
    if char in names:
        return names[char]
    if char.isalpha() and char.isascii():
        return f"the letter {char!r}"
    if char.isspace():
        return f"a whitespace character (U+{ord(char):04X})"
    if not char.isprintable():
        return f"an invisible character (U+{ord(char):04X})"
    return repr(char)


def _where(text: str, index: int) -> str:
    if index == 0:
        return "at the start"
    if index == len(text) - 1:
        return "at the end"
    return f"at position {index + 1}"


def _text(value: object, field: str, what: str) -> str:
    """The input as a non-empty string without surrounding whitespace, or InvalidChainInput."""
    if not isinstance(value, str):
        raise InvalidChainInput(field, f"must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidChainInput(field, f"is empty; expected {what}")
    if value != value.strip():
        raise InvalidChainInput(field, "has leading or trailing whitespace; remove it")
    if value.isprintable() and len(value.split()) == 1:  # the common case, checked in C
        return value
    for index, char in enumerate(value):
        if char.isspace() or not char.isprintable():
            raise InvalidChainInput(field, f"contains {_describe_char(char)} {_where(value, index)}")
    return value


def _not_base58(value: str) -> str | None:
    """A message naming the first character outside the Base58 alphabet, if any."""
    for index, char in enumerate(value):
        if char not in _B58_CHARS:
            return (
                f"contains {_describe_char(char)} {_where(value, index)}, which Base58 does not use "
                "(it has no 0, O, I or l)"
            )
    return None


def _b58check_payload(value: str, field: str, what: str) -> bytes:
    """Decode Base58Check (Bitcoin alphabet) and insist on the canonical spelling."""
    problem = _not_base58(value)
    if problem:
        raise InvalidChainInput(field, f"{problem}; expected {what}")
    try:
        payload = bytes(base58.b58decode_check(value))
    except ValueError:
        raise InvalidChainInput(
            field, f"checksum does not match; a character is probably mistyped (expected {what})"
        ) from None
    if base58.b58encode_check(payload).decode("ascii") != value:
        raise InvalidChainInput(field, f"is not in canonical Base58Check form; expected {what}")
    return payload


# --------------------------------------------------------------------------------------------------
# EVM


@lru_cache(maxsize=1 << 16)
def eip55_checksum(lowercase: str) -> str:
    """The EIP-55 form of a lowercase ``0x`` + 40 hex address (ValueError otherwise).

    Remembered: checksumming costs a Keccak hash (about 35 µs through eth_utils), and the same
    addresses (deposit addresses, token contracts, senders) come back in every lookup, registry
    query and decision of a batch.
    """
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(lowercase))


def _normalize_evm(address: str, field: str) -> str:
    what = "0x followed by 40 hex characters"
    value = _text(address, field, what)
    if value[:2] == "0X":
        raise InvalidChainInput(field, f"must start with a lowercase 0x; expected {what}")
    if not value.startswith("0x"):
        raise InvalidChainInput(field, f"must start with 0x; expected {what}")
    body = value[2:]
    if not _HEX40.fullmatch(body):
        if len(body) != 40:
            raise InvalidChainInput(field, f"has {len(body)} characters after 0x; expected 40 hex characters")
        bad = next(i for i, c in enumerate(body) if c not in "0123456789abcdefABCDEF")
        raise InvalidChainInput(field, f"contains {body[bad]!r}, which is not a hex character; expected {what}")
    checksummed = eip55_checksum("0x" + body.lower())
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise InvalidChainInput(
            field,
            "EIP-55 checksum does not match: a mixed-case address must have exactly the right "
            "letters in upper case, so a character is probably mistyped",
        )
    return checksummed


# --------------------------------------------------------------------------------------------------
# TRON


def _normalize_tron(address: str, field: str) -> str:
    what = "T followed by 33 Base58 characters, or 42 hex characters starting with 41"
    value = _text(address, field, what)
    if _HEX42.fullmatch(value):
        raw = bytes.fromhex(value)
        if raw[0] != _TRON_VERSION:
            raise InvalidChainInput(field, f"hex TRON addresses start with 41; expected {what}")
        return str(base58.b58encode_check(raw).decode("ascii"))
    if value.startswith("0x") and _HEX40.fullmatch(value[2:]):
        raise InvalidChainInput(field, f"is an EVM-style 0x address, not a TRON address; expected {what}")
    if not value.startswith("T"):
        raise InvalidChainInput(field, f"must start with T; expected {what}")
    payload = _b58check_payload(value, field, what)
    if len(payload) != 21 or payload[0] != _TRON_VERSION:
        raise InvalidChainInput(field, f"does not decode to a 21-byte TRON address; expected {what}")
    return value


def tron_to_evm(address: str, *, field: str = ADDRESS_FIELD) -> str:
    """The EVM address (EIP-55 checksum) holding the same 20 bytes as a TRON address.

    A TRON account and the EVM account of the same private key share these bytes.
    """
    tron = _normalize_tron(address, field)
    payload = bytes(base58.b58decode_check(tron))
    return eip55_checksum("0x" + payload[1:].hex())


def evm_to_tron(address: str, *, field: str = ADDRESS_FIELD) -> str:
    """The TRON twin (``T…``) of an EVM address: the account of the same private key on TRON."""
    evm = _normalize_evm(address, field)
    return str(base58.b58encode_check(bytes([_TRON_VERSION]) + bytes.fromhex(evm[2:])).decode("ascii"))


# --------------------------------------------------------------------------------------------------
# XRP Ledger


def _classic_xrpl(value: str, field: str) -> str:
    what = "an XRP Ledger classic address: r followed by 24 to 34 Base58 characters"
    problem = _not_base58(value)
    if problem:
        raise InvalidChainInput(field, f"{problem}; expected {what}")
    from xrpl.core import addresscodec as xrpl_codec

    try:
        account_id = xrpl_codec.decode_classic_address(value)
    except (xrpl_codec.XRPLAddressCodecException, ValueError):
        raise InvalidChainInput(
            field, f"checksum or length does not match; a character is probably mistyped (expected {what})"
        ) from None
    if xrpl_codec.encode_classic_address(account_id) != value:
        raise InvalidChainInput(field, f"is not in canonical form; expected {what}")
    return value


def _split_xrpl_x(value: str, field: str) -> tuple[str, int | None, bool]:
    what = "an XRP Ledger X-address: X (or T on test networks) followed by 46 Base58 characters"
    problem = _not_base58(value)
    if problem:
        raise InvalidChainInput(field, f"{problem}; expected {what}")
    from xrpl.core import addresscodec as xrpl_codec

    if not xrpl_codec.is_valid_xaddress(value):
        raise InvalidChainInput(
            field, f"checksum or length does not match; a character is probably mistyped (expected {what})"
        )
    classic, tag, is_test = xrpl_codec.xaddress_to_classic_address(value)
    if xrpl_codec.classic_address_to_xaddress(classic, tag, is_test) != value:
        raise InvalidChainInput(field, f"is not in canonical form; expected {what}")
    return str(classic), tag, bool(is_test)


def _normalize_xrpl(address: str, field: str, testnet: bool) -> str:
    what = "an XRP Ledger address: r… (classic) or X… (X-address)"
    value = _text(address, field, what)
    if value.startswith("r"):
        return _classic_xrpl(value, field)
    if value.startswith("X") or (value.startswith("T") and len(value) == 47):
        classic, _tag, is_test = _split_xrpl_x(value, field)
        if is_test and not testnet:
            raise InvalidChainInput(field, "is a test-network X-address (T…); this network is mainnet")
        if testnet and not is_test:
            raise InvalidChainInput(field, "is a mainnet X-address (X…); this network is a test network")
        return classic
    raise InvalidChainInput(field, f"must start with r or X; expected {what}")


def split_x_address(address: str, *, field: str = ADDRESS_FIELD) -> tuple[str, int | None]:
    """Split an X-address into its classic address and destination tag (None when it has none).

    X-addresses of the main and the test networks are both split. A classic ``r…`` address is
    accepted too and comes back as ``(address, None)``.
    """
    value = _text(address, field, "an XRP Ledger X-address")
    if value.startswith("r"):
        return _classic_xrpl(value, field), None
    classic, tag, _is_test = _split_xrpl_x(value, field)
    return classic, tag


# --------------------------------------------------------------------------------------------------
# Stellar


def _normalize_stellar(address: str, field: str) -> str:
    what = "a Stellar account id (G followed by 55 characters) or muxed account (M followed by 68)"
    value = _text(address, field, what)
    if "*" in value:
        raise InvalidChainInput(field, "is a federation address (name*domain); resolve it to a G… account id first")
    from stellar_sdk import StrKey

    if value.startswith("G"):
        if StrKey.is_valid_ed25519_public_key(value):
            return value
    elif value.startswith("M"):
        if StrKey.is_valid_med25519_public_key(value):
            return value
    else:
        raise InvalidChainInput(field, f"must start with G or M; expected {what}")
    if value != value.upper():
        raise InvalidChainInput(field, f"must be all upper case; expected {what}")
    expected = 56 if value.startswith("G") else 69
    if len(value) != expected:
        raise InvalidChainInput(field, f"has {len(value)} characters; expected {expected}")
    raise InvalidChainInput(field, "checksum does not match; a character is probably mistyped")


def split_muxed(address: str, *, field: str = ADDRESS_FIELD) -> tuple[str, int]:
    """Split a muxed Stellar account (``M…``) into its base ``G…`` account and 64-bit id."""
    value = _normalize_stellar(address, field)
    if not value.startswith("M"):
        raise InvalidChainInput(field, "is a plain account id (G…), not a muxed account (M…)")
    from stellar_sdk import MuxedAccount

    muxed = MuxedAccount.from_account(value)
    if muxed.account_muxed_id is None:  # pragma: no cover - an M… strkey always carries an id
        raise InvalidChainInput(field, "muxed account carries no id")
    return str(muxed.account_id), int(muxed.account_muxed_id)


# --------------------------------------------------------------------------------------------------
# Solana


def _normalize_solana(address: str, field: str) -> str:
    what = "32 to 44 Base58 characters encoding a 32-byte public key"
    value = _text(address, field, what)
    problem = _not_base58(value)
    if problem:
        raise InvalidChainInput(field, f"{problem}; expected {what}")
    raw = bytes(base58.b58decode(value))
    if len(raw) != 32:
        raise InvalidChainInput(field, f"decodes to {len(raw)} bytes; a Solana address is 32 bytes")
    return value


# --------------------------------------------------------------------------------------------------
# Bitcoin


def _segwit(value: str, field: str, testnet: bool) -> tuple[str, str]:
    """(canonical lowercase address, type) of a segwit address, or InvalidChainInput."""
    hrp = "tb" if testnet else "bc"
    if value != value.lower() and value != value.upper():
        raise InvalidChainInput(field, "mixes upper and lower case; bech32 addresses use one case only")
    lowered = value.lower()
    for index, char in enumerate(lowered[len(hrp) + 1 :], start=len(hrp) + 1):
        if char not in bech32.CHARSET:
            raise InvalidChainInput(
                field, f"contains {_describe_char(value[index])} {_where(value, index)}, which bech32 does not use"
            )
    try:
        got_hrp, data, spec = bech32m.codecs.bech32_decode(lowered)
    except bech32m.DecodeError:
        raise InvalidChainInput(
            field, "checksum does not match; a character is probably mistyped (or the address is too long)"
        ) from None
    if got_hrp != hrp:  # pragma: no cover - the caller dispatches on the prefix
        raise InvalidChainInput(field, f"has prefix {got_hrp}1; expected {hrp}1")
    try:
        decoded = bech32m.decode(hrp, lowered)
    except bech32m.DecodeError:
        version = data[0] if len(data) else None
        if version == 0 and spec == _Bech32Encoding.BECH32M:
            reason = "a version-0 segwit address must use the bech32 checksum, but this one uses bech32m"
        elif version is not None and 1 <= version <= 16 and spec == _Bech32Encoding.BECH32:
            name = "taproot (version-1 segwit)" if version == 1 else f"version-{version} segwit"
            reason = (
                f"a {name} address must use the bech32m checksum (BIP-350), but this one uses bech32; wallets refuse it"
            )
        else:
            reason = "does not hold a valid segwit version and program"
        raise InvalidChainInput(field, reason) from None
    version, program = int(decoded.witver), bytes(decoded.witprog)
    if version == 0:
        return lowered, "p2wpkh" if len(program) == 20 else "p2wsh"
    if version == 1 and len(program) == 32:
        return lowered, "p2tr"
    raise InvalidChainInput(
        field, f"is a segwit version-{version} address with a {len(program)}-byte program, not in use on Bitcoin"
    )


def _legacy(value: str, field: str, testnet: bool) -> tuple[str, str]:
    network = "testnet" if testnet else "mainnet"
    what = f"a Bitcoin {network} address"
    payload = _b58check_payload(value, field, what)
    if len(payload) != 21:
        raise InvalidChainInput(field, f"decodes to {len(payload)} bytes, not 21; expected {what}")
    version = payload[0]
    kind = _BTC_VERSIONS[testnet].get(version)
    if kind is not None:
        return value, kind
    if version in _BTC_VERSIONS[not testnet]:
        other = "testnet" if not testnet else "mainnet"
        raise InvalidChainInput(field, f"is a Bitcoin {other} address; this network is {network}")
    foreign = _FOREIGN_BASE58_VERSIONS.get(version)
    if foreign:
        raise InvalidChainInput(field, f"looks like {foreign}, not Bitcoin")
    raise InvalidChainInput(field, f"has version byte 0x{version:02x}, which is not a Bitcoin {network} address")


def _bitcoin(address: str, field: str, testnet: bool) -> tuple[str, str]:
    value = _text(address, field, "a Bitcoin address")
    lowered = value.lower()
    if lowered.startswith(("bitcoincash:", "bchtest:")):
        raise InvalidChainInput(field, "is a Bitcoin Cash CashAddr address, not Bitcoin")
    if lowered.startswith("ltc1"):
        raise InvalidChainInput(field, "is a Litecoin segwit address (ltc1…), not Bitcoin")
    own, other = ("tb1", "bc1") if testnet else ("bc1", "tb1")
    if lowered.startswith(own):
        return _segwit(value, field, testnet)
    if lowered.startswith(other) or lowered.startswith("bcrt1"):
        kind = "mainnet" if other == "bc1" else "testnet/regtest"
        raise InvalidChainInput(
            field, f"is a Bitcoin {kind} address; this network is {'testnet' if testnet else 'mainnet'}"
        )
    return _legacy(value, field, testnet)


def _normalize_bitcoin(address: str, field: str, testnet: bool) -> str:
    return _bitcoin(address, field, testnet)[0]


def bitcoin_address_type(address: str, *, testnet: bool | None = None, field: str = ADDRESS_FIELD) -> str:
    """``p2pkh``, ``p2sh``, ``p2wpkh``, ``p2wsh`` or ``p2tr``.

    ``testnet=None`` (the default) recognizes both mainnet and testnet forms; True or False
    restricts to one network as :func:`normalize_address` does.
    """
    if testnet is None:
        testnet = _looks_testnet(address)
    return _bitcoin(address, field, testnet)[1]


def address_collisions(address: str) -> list[str]:
    """Other chains on which the very same Bitcoin address string is also a valid address.

    Funds of those chains sent to it by mistake belong to the same key (or script) and may be
    recoverable. Returns short sentences; an empty list for segwit addresses and for anything that
    is not a Bitcoin address (mainnet or testnet).
    """
    try:
        kind = bitcoin_address_type(address)
    except InvalidChainInput:
        return []
    testnet = _looks_testnet(address)
    notes: list[str] = []
    if kind in ("p2pkh", "p2sh"):
        label = "P2PKH" if kind == "p2pkh" else "P2SH"
        net = "testnet " if testnet else ""
        notes.append(
            f"This legacy {label} address is also valid in Bitcoin Cash's {net}legacy address format "
            "(same version byte, same key or script): BCH sent here can be recovered by the holder of "
            "the key."
        )
    if kind == "p2sh" and not testnet:
        notes.append(
            "This P2SH address (3…) shares version byte 0x05 with Litecoin's old P2SH format, so it is "
            "also a valid (deprecated) Litecoin address: LTC sent here lands at the same script hash."
        )
    return notes


def _looks_testnet(address: object) -> bool:
    """Whether a Bitcoin address *claims* to be testnet by its first characters."""
    return isinstance(address, str) and (address.lower().startswith("tb1") or address[:1] in ("m", "n", "2"))


# --------------------------------------------------------------------------------------------------
# Cosmos


def _normalize_cosmos(address: str, field: str, hrp: str) -> str:
    what = f"{hrp}1 followed by bech32 characters (a 20- or 32-byte account)"
    value = _text(address, field, what)
    if value != value.lower() and value != value.upper():
        raise InvalidChainInput(field, "mixes upper and lower case; bech32 addresses use one case only")
    lowered = value.lower()
    separator = lowered.rfind("1")
    if separator < 1:
        raise InvalidChainInput(field, f"has no bech32 prefix; expected {what}")
    got_hrp = lowered[:separator]
    if got_hrp != hrp:
        if got_hrp.startswith(hrp) and got_hrp.endswith(("valoper", "valcons")):
            raise InvalidChainInput(field, f"is a validator address ({got_hrp}1…), not an account address")
        raise InvalidChainInput(field, f"has prefix {got_hrp}1; expected {hrp}1 for this network")
    for index, char in enumerate(lowered[separator + 1 :], start=separator + 1):
        if char not in bech32.CHARSET:
            raise InvalidChainInput(
                field, f"contains {_describe_char(value[index])} {_where(value, index)}, which bech32 does not use"
            )
    decoded_hrp, data = bech32.bech32_decode(lowered)
    if decoded_hrp is None or data is None:
        raise InvalidChainInput(field, "checksum does not match; a character is probably mistyped")
    program = bech32.convertbits(data, 5, 8, False)
    if program is None or len(program) not in (20, 32):
        size = "an invalid number of" if program is None else str(len(program))
        raise InvalidChainInput(field, f"holds {size} bytes; a Cosmos account is 20 or 32 bytes")
    return lowered


# --------------------------------------------------------------------------------------------------
# Addresses: public entry points


def normalize_address(
    family: str,
    address: str,
    *,
    field: str = ADDRESS_FIELD,
    testnet: bool = False,
    hrp: str = "cosmos",
) -> str:
    """The canonical spelling of ``address`` on ``family``, or InvalidChainInput(``field``).

    - evm: EIP-55 checksum form. All-lower and all-upper input is accepted; mixed case must
      already be the correct checksum.
    - tron: ``T…``; ``41…`` hex input is converted.
    - xrpl: the classic ``r…`` address. **An X-address is reduced to its classic address and its
      destination tag is dropped**: call :func:`split_x_address` first when the tag matters.
    - stellar: as given (``G…`` or muxed ``M…``); see :func:`split_muxed`.
    - solana: as given.
    - bitcoin: as given for Base58 addresses, lowercase for bech32/bech32m. ``testnet=True``
      accepts testnet forms instead of mainnet ones.
    - cosmos: lowercase; ``hrp`` is the network's bech32 prefix.
    """
    _check_family(family)
    if family == "evm":
        return _normalize_evm(address, field)
    if family == "tron":
        return _normalize_tron(address, field)
    if family == "xrpl":
        return _normalize_xrpl(address, field, testnet)
    if family == "stellar":
        return _normalize_stellar(address, field)
    if family == "solana":
        return _normalize_solana(address, field)
    if family == "bitcoin":
        return _normalize_bitcoin(address, field, testnet)
    return _normalize_cosmos(address, field, hrp)


def is_address(family: str, address: str, *, testnet: bool = False, hrp: str = "cosmos") -> bool:
    """True when :func:`normalize_address` accepts ``address``; never raises for bad input."""
    _check_family(family)
    try:
        normalize_address(family, address, testnet=testnet, hrp=hrp)
    except InvalidChainInput:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Transaction hashes


def _hex64(value: str, field: str, what: str) -> str:
    if _HEX64.fullmatch(value):
        return value
    if value[:2] in ("0x", "0X") and _HEX64.fullmatch(value[2:]):
        raise InvalidChainInput(field, f"must not start with 0x; expected {what}")
    if len(value) != 64:
        raise InvalidChainInput(field, f"has {len(value)} characters; expected {what}")
    bad = next(i for i, c in enumerate(value) if c not in "0123456789abcdefABCDEF")
    raise InvalidChainInput(field, f"contains {value[bad]!r} {_where(value, bad)}, which is not hex; expected {what}")


def _tx_evm(value: str, field: str) -> str:
    what = "0x followed by 64 hex characters"
    if _HEX64.fullmatch(value):
        raise InvalidChainInput(field, f"must start with 0x (EVM hashes are written with it); expected {what}")
    if not value.startswith("0x"):
        raise InvalidChainInput(field, f"must start with 0x; expected {what}")
    return "0x" + _hex64(value[2:], field, what).lower()


def _tx_tron(value: str, field: str) -> str:
    body = value[2:] if value[:2] in ("0x", "0X") else value
    return _hex64(body, field, "64 hex characters").lower()


def _tx_solana(value: str, field: str) -> str:
    what = "a Base58 transaction signature of 64 bytes (64 to 88 characters)"
    problem = _not_base58(value)
    if problem:
        raise InvalidChainInput(field, f"{problem}; expected {what}")
    raw = bytes(base58.b58decode(value))
    if len(raw) != 64:
        raise InvalidChainInput(field, f"decodes to {len(raw)} bytes; expected {what}")
    return value


_TX_NORMALIZERS: Final[dict[str, Callable[[str, str], str]]] = {
    "evm": _tx_evm,
    "tron": _tx_tron,
    "xrpl": lambda v, f: _hex64(v, f, "64 hex characters").upper(),
    "stellar": lambda v, f: _hex64(v, f, "64 hex characters").lower(),
    "solana": _tx_solana,
    "bitcoin": lambda v, f: _hex64(v, f, "64 hex characters (the transaction id)").lower(),
    "cosmos": lambda v, f: _hex64(v, f, "64 hex characters").upper(),
}


def normalize_tx_hash(family: str, tx_hash: str, *, field: str = TX_HASH_FIELD) -> str:
    """The canonical spelling of a transaction hash, or InvalidChainInput(``field``).

    evm: ``0x`` + 64 lowercase hex (the 0x is required); tron: 64 lowercase hex (a leading 0x is
    removed); xrpl and cosmos: 64 uppercase hex; stellar and bitcoin: 64 lowercase hex; solana: the
    Base58 signature (64 bytes) as given.
    """
    _check_family(family)
    value = _text(tx_hash, field, FORMAT_HINTS[family]["tx_hash"])
    return _TX_NORMALIZERS[family](value, field)


def is_tx_hash(family: str, tx_hash: str) -> bool:
    """True when :func:`normalize_tx_hash` accepts ``tx_hash``; never raises for bad input."""
    _check_family(family)
    try:
        normalize_tx_hash(family, tx_hash)
    except InvalidChainInput:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Memos


def _digits_problem(memo: str) -> str | None:
    for index, char in enumerate(memo):
        if char not in "0123456789":
            return f"must contain only digits (got {_describe_char(char)} {_where(memo, index)})"
    return None


def _check_memo(memo_format: str, memo: str) -> tuple[str | None, str | None]:
    """(normalized memo, problem); exactly one is None. ``memo`` is a non-empty string."""
    if memo_format == "none":
        return None, "this network does not use a memo; leave it empty"
    if memo_format == "text":
        try:
            size = len(memo.encode("utf-8"))
        except UnicodeEncodeError:
            return None, "is not valid UTF-8 text"
        if size > TEXT_MEMO_MAX_BYTES:
            return None, f"is {size} bytes in UTF-8; a text memo holds at most {TEXT_MEMO_MAX_BYTES} bytes"
        return memo, None
    problem = _digits_problem(memo)
    if problem:
        return None, problem
    if memo_format == "digits":
        if len(memo) > DIGITS_MAX_LENGTH:
            return None, f"has {len(memo)} digits; at most {DIGITS_MAX_LENGTH} are allowed"
        return memo, None
    limit = UINT32_MAX if memo_format == "uint32" else UINT64_MAX
    significant = memo.lstrip("0") or "0"
    if len(significant) > len(str(limit)) or int(significant) > limit:
        kind = "destination tag" if memo_format == "uint32" else "memo id"
        return None, f"is too large; a {kind} is a number from 0 to {limit}"
    return significant, None


def validate_memo(memo_format: str, memo: str | None, field: str = MEMO_FIELD) -> str | None:
    """Check a memo the user says they used; return it normalized, or None when there is none.

    None or "" means "no memo" and returns None for every format (whether one is *required* is
    the caller's business: ``Network.memo_required``). Otherwise:

    - ``none``: any memo is refused.
    - ``digits``: ASCII digits only, at most 20; returned as given (leading zeros kept).
    - ``uint32`` (XRP destination tag) / ``uint64`` (Stellar memo id): ASCII digits within range;
      returned in canonical decimal (leading zeros removed).
    - ``text`` (Stellar text memo): at most 28 bytes of UTF-8; returned as given.

    Whitespace is never trimmed: a memo with a space is refused with a message saying so.
    """
    if memo_format not in MEMO_FORMATS:
        raise ValueError(f"unknown memo format {memo_format!r}; expected one of {', '.join(MEMO_FORMATS)}")
    if memo is None:
        return None
    given: object = memo
    if not isinstance(given, str):
        raise InvalidChainInput(field, f"must be a string, not {type(given).__name__}")
    if memo == "":
        return None
    normalized, problem = _check_memo(memo_format, memo)
    if problem is not None:
        raise InvalidChainInput(field, problem)
    return normalized


def memo_is_wellformed(memo_format: str, memo: str | int | None) -> bool:
    """Whether a memo (typically read from the chain) fits ``memo_format``. Never raises.

    Absence (None or "") counts as well-formed: missing memos are a separate finding. An integer
    (as XRPL returns destination tags) is judged by its decimal form. An unknown format is False.
    """
    return _wellformed(memo_format, memo)


def _wellformed(memo_format: object, memo: object) -> bool:
    try:
        if isinstance(memo, bool) or memo_format not in MEMO_FORMATS:
            return False
        if isinstance(memo, int):
            memo = str(memo)
        if memo is None or memo == "":
            return True
        if not isinstance(memo, str) or not isinstance(memo_format, str):
            return False
        return _check_memo(memo_format, memo)[1] is None
    except Exception:
        return False
