"""Validation of an appeal as a user (API) or a specialist (workbench intake) submits it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from chains import addresses
from chains.base import InvalidChainInput
from recovery.config import Config
from recovery.errors import FieldError, ValidationFailed

SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,19}$")
USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")
MAX_FRACTION_DIGITS = 36


@dataclass(frozen=True)
class AppealDraft:
    """A validated appeal, normalized for its network (checksummed address, canonical hash)."""

    user_id: str
    network: str
    asset: str
    tx_hash: str
    deposit_address: str
    memo: str | None
    claimed_amount: Decimal | None


def parse_positive_decimal(raw: Any, field: str, errors: list[FieldError]) -> Decimal | None:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if isinstance(raw, bool | float):
        errors.append(FieldError(field, "must be a decimal string such as \"12.5\", not a float"))
        return None
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        errors.append(FieldError(field, f"{str(raw)[:40]!r} is not a decimal number"))
        return None
    if not value.is_finite() or value <= 0:
        errors.append(FieldError(field, "must be a positive decimal number"))
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_FRACTION_DIGITS:
        errors.append(FieldError(field, f"has more than {MAX_FRACTION_DIGITS} decimal places"))
        return None
    if value.adjusted() > 40:
        errors.append(FieldError(field, "is implausibly large"))
        return None
    return value


def _text(raw: Mapping[str, Any], field: str, errors: list[FieldError], required: bool = True) -> str | None:
    value = raw.get(field)
    if value is None or (isinstance(value, str) and value == ""):
        if required:
            errors.append(FieldError(field, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, "must be a string"))
        return None
    return value


def validate_appeal(config: Config, raw: Mapping[str, Any], user_id: str) -> AppealDraft:
    """Check every field for the claimed network and return the normalized draft.

    Raises ValidationFailed naming each bad field; nothing is stored by this function.
    """
    errors: list[FieldError] = []
    if not USER_ID.match(user_id or ""):
        errors.append(FieldError("user_id", "must be 1-128 letters, digits or _ . : @ -"))

    network_name = _text(raw, "network", errors)
    network = None
    if network_name is not None:
        network = config.networks.get(network_name.strip().lower())
        if network is None:
            errors.append(FieldError("network", f"unknown network {network_name[:40]!r}"))

    asset_raw = _text(raw, "asset", errors)
    tx_raw = _text(raw, "tx_hash", errors)
    address_raw = _text(raw, "deposit_address", errors)
    memo_raw = _text(raw, "memo", errors, required=False)
    amount = parse_positive_decimal(raw.get("amount"), "amount", errors)

    asset = tx_hash = address = memo = None
    if network is not None:
        family = network.family
        if tx_raw is not None:
            try:
                tx_hash = addresses.normalize_tx_hash(family, tx_raw.strip())
            except InvalidChainInput as exc:
                errors.append(FieldError("tx_hash", exc.message))
        if address_raw is not None:
            try:
                address = addresses.normalize_address(family, address_raw.strip(), field="deposit_address")
            except InvalidChainInput as exc:
                errors.append(FieldError("deposit_address", exc.message))
        if asset_raw is not None:
            asset = _normalize_asset(config, network.name, family, asset_raw.strip(), errors)
        try:
            memo = addresses.validate_memo(network.memo_format, memo_raw, field="memo")
        except InvalidChainInput as exc:
            errors.append(FieldError("memo", exc.message))

    if errors:
        raise ValidationFailed(errors)
    assert network is not None and asset is not None and tx_hash is not None and address is not None
    return AppealDraft(
        user_id=user_id,
        network=network.name,
        asset=asset,
        tx_hash=tx_hash,
        deposit_address=address,
        memo=memo,
        claimed_amount=amount,
    )


def _normalize_asset(config: Config, network: str, family: str, raw: str, errors: list[FieldError]) -> str | None:
    """A listed symbol (canonical case), an unlisted symbol, or a token contract in the chain's form."""
    listed = config.asset_by_symbol(network, raw)
    if listed is not None:
        return listed.symbol
    if addresses.is_address(family, raw):
        contract = addresses.normalize_address(family, raw, field="asset")
        known = config.asset_by_contract(network, contract)
        return known.symbol if known is not None else contract
    chain_token_id = (family in ("stellar", "xrpl") and ":" in raw) or (family == "cosmos" and raw.startswith("ibc/"))
    if chain_token_id and len(raw) <= 128 and raw.isprintable():
        return raw
    if SYMBOL.match(raw):
        return raw.upper()
    errors.append(
        FieldError("asset", "must be a listed symbol, a token symbol (letters and digits) or a token contract address")
    )
    return None
