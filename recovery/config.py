"""Load and validate the operator's TOML configuration into frozen, typed objects.

Files in the config directory:
- ``networks.toml``: one ``[networks.<name>]`` table per network.
- ``assets.toml``: ``[[assets]]``, one entry per asset per network (native assets have no contract).
- ``fees.toml``: ``[[fees]]``, first match wins; ``network = "*"`` matches any network.
- ``policy.toml`` (optional): approval threshold, SLA, detection settings.

Every problem is reported with the file, the entry and the key, and all problems are reported at
once. Extra keys are kept (``model_extra``) so operators can annotate entries freely.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from chains.network import FAMILIES, NETWORK_NAME, Family, MemoFormat, Network, RecoveryMode
from recovery.plain_values import EXACT
from recovery.vocabulary import Category

__all__ = [
    "FAMILIES",
    "NETWORK_NAME",
    "Asset",
    "Config",
    "ConfigError",
    "Family",
    "FeeRule",
    "MemoFormat",
    "Network",
    "Policy",
    "RecoveryMode",
    "load_config",
]

def _exact_decimal(value: Any) -> Any:
    """Accept decimal strings, integers and TOML decimals; refuse floats and booleans."""
    if isinstance(value, bool | float):
        raise ValueError("must be a decimal string such as \"1.50\", not a float or boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = Decimal(text)
        except ArithmeticError:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if not parsed.is_finite():
            raise ValueError(f"{value!r} is not a finite decimal number")
        return parsed
    return value


ExactDecimal = Annotated[Decimal, BeforeValidator(_exact_decimal)]
NonNegativeDecimal = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0)]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=True)


class Asset(_Entry):
    network: str
    symbol: str = Field(min_length=1, max_length=20)
    contract: str | None = None
    decimals: int = Field(ge=0, le=36)
    min_deposit: NonNegativeDecimal = Decimal(0)
    deposits_enabled: bool = True
    price_usd: NonNegativeDecimal | None = None
    name: str | None = None

    @property
    def is_native(self) -> bool:
        return self.contract is None

    def to_base_units(self, amount: Decimal) -> int:
        """Exact conversion; raises ValueError if the amount has more digits than the asset."""
        scaled = amount.scaleb(self.decimals, context=EXACT)  # the default context rounds past 28 digits
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{amount} has more than {self.decimals} decimals for {self.symbol}")
        return int(scaled)

    def from_base_units(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.decimals, context=EXACT)


class FeeRule(_Entry):
    category: str
    network: str = "*"
    asset: str = "*"
    flat_usd: NonNegativeDecimal = Decimal(0)
    percent: NonNegativeDecimal = Field(default=Decimal(0), le=1)
    free_below_usd: NonNegativeDecimal = Decimal(0)
    min_usd: NonNegativeDecimal = Decimal(0)
    max_usd: NonNegativeDecimal | None = None
    min_value_usd: NonNegativeDecimal = Decimal(0)
    max_age_days: int | None = Field(default=None, gt=0)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if value != "*" and value not in {c.value for c in Category}:
            raise ValueError(f"unknown category {value!r}; expected one of {', '.join(Category)} or '*'")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> FeeRule:
        if self.max_usd is not None and self.max_usd < self.min_usd:
            raise ValueError("max_usd is below min_usd")
        return self

    def matches(self, category: str, network: str, asset: str) -> bool:
        return (
            self.category in ("*", category)
            and self.network in ("*", network)
            and self.asset in ("*", asset)
        )


class Policy(_Entry):
    """Operational policy: who must approve what, how fast cases must move."""

    four_eyes_above_usd: NonNegativeDecimal = Decimal(1000)
    four_eyes_resolutions: tuple[Literal["credit", "refund"], ...] = ("refund", "credit")
    sla_hours: int = Field(default=72, gt=0)
    dust_below_usd: NonNegativeDecimal = Decimal(1)
    #: an approved payout should be paid within this many hours (its own SLA, after the decision's)
    payout_sla_hours: int = Field(default=24, gt=0)
    #: a recorded refund still not proven on chain after this many hours gets flag refund_overdue
    refund_overdue_hours: int = Field(default=6, gt=0)
    #: a question to the user (needs_info) unanswered this long gets one reminder
    info_reminder_hours: int = Field(default=72, gt=0)
    #: ... and this long closes the case (the SLA clock is paused meanwhile)
    info_close_after_hours: int = Field(default=14 * 24, gt=0)
    #: the user's answer reopens a case closed unanswered up to this long after it closed
    info_reopen_grace_hours: int = Field(default=30 * 24, gt=0)

    @model_validator(mode="after")
    def _reminder_before_close(self) -> Policy:
        if self.info_reminder_hours >= self.info_close_after_hours:
            raise ValueError("info_reminder_hours must be less than info_close_after_hours")
        return self


class InfoTemplate(BaseModel):
    """A question the appeal team often asks (``templates.toml``), offered for the categories it names."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=80)
    message: str = Field(min_length=1, max_length=4000)
    #: the categories it is offered for (empty: every category)
    categories: tuple[Category, ...] = ()

    def fits(self, category: str | None) -> bool:
        return not self.categories or category in {c.value for c in self.categories}


class ConfigError(Exception):
    """One or more problems in the configuration; each names file, entry and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Config:
    networks: Mapping[str, Network]
    assets: tuple[Asset, ...]
    fees: tuple[FeeRule, ...]
    policy: Policy
    digest: str = field(default="")
    #: information-request templates by name (``templates.toml``; optional)
    templates: Mapping[str, InfoTemplate] = field(default_factory=dict)

    def templates_for(self, category: str | None) -> dict[str, InfoTemplate]:
        """The templates offered for a case of this category, by name."""
        return {name: t for name, t in self.templates.items() if t.fits(category)}

    def network(self, name: str) -> Network:
        try:
            return self.networks[name]
        except KeyError:
            raise KeyError(f"unknown network {name!r}") from None

    def networks_of_family(self, family: str) -> list[Network]:
        return [n for n in self.networks.values() if n.family == family]

    def assets_on(self, network: str) -> list[Asset]:
        return [a for a in self.assets if a.network == network]

    def native_asset(self, network: str) -> Asset:
        net = self.network(network)
        for asset in self.assets:
            if asset.network == network and asset.is_native and asset.symbol == net.native_asset:
                return asset
        raise KeyError(f"network {network!r} has no native asset entry")

    def asset_by_symbol(self, network: str, symbol: str) -> Asset | None:
        wanted = symbol.upper()
        for asset in self.assets:
            if asset.network == network and asset.symbol.upper() == wanted:
                return asset
        return None

    def asset_by_contract(self, network: str, contract: str) -> Asset | None:
        wanted = contract.lower()
        for asset in self.assets:
            if asset.network == network and asset.contract is not None and asset.contract.lower() == wanted:
                return asset
        return None

    def fee_rule(self, category: str, network: str, asset: str) -> FeeRule | None:
        """The first rule that matches, in file order."""
        for rule in self.fees:
            if rule.matches(category, network, asset):
                return rule
        return None


def _format_loc(loc: Iterable[int | str]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(entry)"


def _errors(file: str, entry: str, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        key = _format_loc(err["loc"])
        problems.append(f"{file}: {entry}: {key}: {message}")
    return problems


def _read_toml(path: Path, problems: list[str], required: bool = True) -> dict[str, Any]:
    if not path.exists():
        if required:
            problems.append(f"{path.name}: file not found in {path.parent}")
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path.name}: not valid TOML: {exc}")
        return {}


def _digest(paths: Iterable[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        if path.exists():
            sha.update(path.name.encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()


def load_config(config_dir: Path) -> Config:
    """Read every file, collect every problem, and raise ConfigError if there is any."""
    problems: list[str] = []
    files = {name: config_dir / f"{name}.toml" for name in ("networks", "assets", "fees", "policy", "templates")}
    raw_networks = _read_toml(files["networks"], problems)
    raw_assets = _read_toml(files["assets"], problems)
    raw_fees = _read_toml(files["fees"], problems)
    raw_policy = _read_toml(files["policy"], problems, required=False)
    raw_templates = _read_toml(files["templates"], problems, required=False)

    networks: dict[str, Network] = {}
    tables = raw_networks.get("networks", {})
    if not isinstance(tables, dict) or (files["networks"].exists() and not tables):
        problems.append("networks.toml: expected one or more [networks.<name>] tables")
        tables = {}
    for name, table in tables.items():
        entry = f"[networks.{name}]"
        if not isinstance(table, dict):
            problems.append(f"networks.toml: {entry}: must be a table")
            continue
        try:
            networks[name] = Network.model_validate({**table, "name": name})
        except ValidationError as exc:
            problems.extend(_errors("networks.toml", entry, exc))

    assets: list[Asset] = []
    seen_symbols: dict[tuple[str, str], int] = {}
    seen_contracts: dict[tuple[str, str], int] = {}
    for position, item in enumerate(_entries(raw_assets, "assets", "assets.toml", problems), start=1):
        label = f"[[assets]] #{position}"
        if isinstance(item, dict):
            label += f" ({item.get('network', '?')}/{item.get('symbol', '?')})"
        try:
            asset = Asset.model_validate(item)
        except ValidationError as exc:
            problems.extend(_errors("assets.toml", label, exc))
            continue
        if networks and asset.network not in networks:
            problems.append(f"assets.toml: {label}: network: unknown network {asset.network!r}")
            continue
        symbol_key = (asset.network, asset.symbol.upper())
        if symbol_key in seen_symbols:
            problems.append(
                f"assets.toml: {label}: symbol: duplicate of entry #{seen_symbols[symbol_key]} "
                f"({asset.symbol} on {asset.network})"
            )
            continue
        seen_symbols[symbol_key] = position
        if asset.contract is not None:
            contract_key = (asset.network, asset.contract.lower())
            if contract_key in seen_contracts:
                problems.append(
                    f"assets.toml: {label}: contract: duplicate of entry #{seen_contracts[contract_key]}"
                )
                continue
            seen_contracts[contract_key] = position
        assets.append(asset)

    for name, network in networks.items():
        native = [a for a in assets if a.network == name and a.is_native and a.symbol == network.native_asset]
        if not native and raw_assets:
            problems.append(
                f"assets.toml: network {name}: native asset {network.native_asset} has no entry "
                "(an [[assets]] entry with no contract gives its decimals and price)"
            )

    fees: list[FeeRule] = []
    for position, item in enumerate(_entries(raw_fees, "fees", "fees.toml", problems), start=1):
        label = f"[[fees]] #{position}"
        if isinstance(item, dict):
            label += f" ({item.get('category', '?')}/{item.get('network', '*')})"
        try:
            rule = FeeRule.model_validate(item)
        except ValidationError as exc:
            problems.extend(_errors("fees.toml", label, exc))
            continue
        if rule.network != "*" and networks and rule.network not in networks:
            problems.append(f"fees.toml: {label}: network: unknown network {rule.network!r}")
            continue
        fees.append(rule)

    policy = Policy()
    try:
        policy = Policy.model_validate(raw_policy.get("policy", {}))
    except ValidationError as exc:
        problems.extend(_errors("policy.toml", "[policy]", exc))

    templates: dict[str, InfoTemplate] = {}
    table = raw_templates.get("templates", {})
    if not isinstance(table, dict):
        problems.append("templates.toml: expected [templates.<name>] tables")
        table = {}
    for name, item in table.items():
        entry = f"[templates.{name}]"
        if not re.fullmatch(r"[a-z0-9_]{1,40}", name):
            problems.append(f"templates.toml: {entry}: the name must be 1-40 lower-case letters, digits or _")
            continue
        try:
            templates[name] = InfoTemplate.model_validate(item)
        except ValidationError as exc:
            problems.extend(_errors("templates.toml", entry, exc))

    if problems:
        raise ConfigError(problems)
    return Config(
        networks=dict(networks),
        assets=tuple(assets),
        fees=tuple(fees),
        policy=policy,
        # what the rules read: the templates are no part of a decision (rules_version)
        digest=_digest(files[name] for name in ("networks", "assets", "fees", "policy")),
        templates=templates,
    )


def _entries(raw: dict[str, Any], key: str, file: str, problems: list[str]) -> list[Any]:
    items = raw.get(key, [])
    if not isinstance(items, list):
        problems.append(f"{file}: expected an array of tables [[{key}]]")
        return []
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.append(f"{file}: [[{key}]] #{position}: must be a table")
    return [item for item in items if isinstance(item, dict)]
