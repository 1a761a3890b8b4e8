"""The rules engine: classify an appeal from chain observations and the exchange's books.

``classify`` is pure: inputs in, ``Decision`` out; no clock, no database, no network. Categories
are evaluated in ``vocabulary.CATEGORY_ORDER``; the first that applies is the category, the
others are kept in ``Decision.also`` and may add flags. Money is Decimal (asset units, USD) or int
(base units), never float.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from chains import addresses
from chains.base import AssetKind, InvalidChainInput, Observation, Transfer, TxStatus
from recovery.config import Asset, Config, Network
from recovery.fees import (
    FeeBreakdown,
    compute_fee,
    dec_text,
    exact_context,
    match_rule,
    parse_dec,
    units_to_amount,
)
from recovery.registry import CreditedDeposit, DepositAddress, Registry, address_key
from recovery.vocabulary import CATEGORY_ORDER, USER_VISIBLE_FLAGS, Category, Flag, Recoverable, Resolution

#: Bump when a rule changes meaning; a decision records f"{RULES_VERSION}+{config digest[:12]}".
RULES_VERSION = "2"  # 2: a TRON transfer to the TRON twin of an EVM key we hold is wrong_network

#: Optional price overrides, keyed by (network, listed symbol or token contract), case-insensitive.
PriceMap = Mapping[tuple[str, str], Decimal]


# --------------------------------------------------------------------------- inputs and outputs


@dataclass(frozen=True)
class Appeal:
    """What the user (or a specialist) claims. ``asset`` is a listed symbol, a contract or a symbol."""

    user_id: str
    network: str
    tx_hash: str
    asset: str | None = None
    deposit_address: str | None = None
    memo: str | None = None
    claimed_amount: Decimal | None = None
    submitted_at: datetime | None = None
    #: other users who appealed the same transfer (makes the decision ``contested``)
    other_appellants: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reason:
    """One short sentence a person can read, with the evidence it relies on (JSON-safe values).

    ``internal`` reasons (they name other users or internal data) are for the appeal team only.
    """

    code: str
    text: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    internal: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "text": self.text, "evidence": dict(self.evidence), "internal": self.internal}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reason:
        return cls(
            code=data["code"],
            text=data["text"],
            evidence=dict(data.get("evidence") or {}),
            internal=bool(data.get("internal", False)),
        )


@dataclass(frozen=True)
class TransferRef:
    """A transfer a decision is about, with what the engine made of it."""

    network: str
    tx_hash: str
    index: int
    kind: str
    sender: str
    recipient: str
    contract: str | None
    #: listed symbol, else the symbol the token reports on chain (untrusted), else None
    symbol: str | None
    listed: bool
    amount_units: int
    #: in asset units; None when the token's decimals are unknown
    amount: Decimal | None
    memo: str | None
    internal: bool
    #: owner of the receiving address (or memo); None if none could be determined
    owner_user_id: str | None
    #: networks the receiving address was issued for
    issued_for: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "tx_hash": self.tx_hash,
            "index": self.index,
            "kind": self.kind,
            "sender": self.sender,
            "recipient": self.recipient,
            "contract": self.contract,
            "symbol": self.symbol,
            "listed": self.listed,
            "amount_units": str(self.amount_units),
            "amount": dec_text(self.amount),
            "memo": self.memo,
            "internal": self.internal,
            "owner_user_id": self.owner_user_id,
            "issued_for": list(self.issued_for),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TransferRef:
        return cls(
            network=data["network"],
            tx_hash=data["tx_hash"],
            index=int(data["index"]),
            kind=data["kind"],
            sender=data["sender"],
            recipient=data["recipient"],
            contract=data.get("contract"),
            symbol=data.get("symbol"),
            listed=bool(data["listed"]),
            amount_units=int(data["amount_units"]),
            amount=parse_dec(data.get("amount")),
            memo=data.get("memo"),
            internal=bool(data.get("internal", False)),
            owner_user_id=data.get("owner_user_id"),
            issued_for=tuple(data.get("issued_for", ())),
        )


@dataclass(frozen=True)
class Decision:
    """The engine's verdict on one appeal; stored as JSON (``to_json``) in the case row."""

    category: Category
    recoverable: Recoverable
    resolution: Resolution
    #: unique, in ``Flag`` declaration order
    flags: tuple[Flag, ...]
    #: the other categories that applied, in precedence order
    also: tuple[Category, ...]
    tx_hash: str
    claimed_network: str
    #: where the transaction was found (None if nowhere)
    network: str | None
    transfers: tuple[TransferRef, ...]
    #: listed symbol, else the token contract, else None
    asset: str | None
    amount: Decimal | None
    value_usd: Decimal | None
    fee: FeeBreakdown | None
    #: whose account a credit goes to: the owner of the receiving address or memo, never simply the appellant
    credited_user_id: str | None
    #: where a refund would go (the sender), when the resolution is a refund
    refund_address: str | None
    reasons: tuple[Reason, ...]
    rules_version: str
    decided_at: datetime
    #: the ownership evidence this credit needs before it can be approved (see
    #: :func:`ownership_proof_needed`): ``{"kinds", "sender", "network", "tx_hash", "transfer_indexes"}``;
    #: None when the credit follows from our own books (or there is no credit)
    ownership_proof: Mapping[str, Any] | None = None

    @property
    def fee_amount(self) -> Decimal | None:
        return self.fee.fee if self.fee is not None else None

    @property
    def net_amount(self) -> Decimal | None:
        return self.fee.net if self.fee is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category.value,
            "recoverable": self.recoverable.value,
            "resolution": self.resolution.value,
            "flags": [f.value for f in self.flags],
            "also": [c.value for c in self.also],
            "tx_hash": self.tx_hash,
            "claimed_network": self.claimed_network,
            "network": self.network,
            "transfers": [t.to_json() for t in self.transfers],
            "asset": self.asset,
            "amount": dec_text(self.amount),
            "value_usd": dec_text(self.value_usd),
            "fee": self.fee.to_json() if self.fee is not None else None,
            "credited_user_id": self.credited_user_id,
            "refund_address": self.refund_address,
            "reasons": [r.to_json() for r in self.reasons],
            "rules_version": self.rules_version,
            "decided_at": self.decided_at.isoformat(),
            **({"ownership_proof": dict(self.ownership_proof)} if self.ownership_proof is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        fee = data.get("fee")
        return cls(
            category=Category(data["category"]),
            recoverable=Recoverable(data["recoverable"]),
            resolution=Resolution(data["resolution"]),
            flags=tuple(Flag(f) for f in data.get("flags", ())),
            also=tuple(Category(c) for c in data.get("also", ())),
            tx_hash=data["tx_hash"],
            claimed_network=data["claimed_network"],
            network=data.get("network"),
            transfers=tuple(TransferRef.from_json(t) for t in data.get("transfers", ())),
            asset=data.get("asset"),
            amount=parse_dec(data.get("amount")),
            value_usd=parse_dec(data.get("value_usd")),
            fee=FeeBreakdown.from_json(fee) if fee is not None else None,
            credited_user_id=data.get("credited_user_id"),
            refund_address=data.get("refund_address"),
            reasons=tuple(Reason.from_json(r) for r in data.get("reasons", ())),
            rules_version=data["rules_version"],
            decided_at=datetime.fromisoformat(data["decided_at"]),
            ownership_proof=data.get("ownership_proof"),
        )


def rules_version(config: Config) -> str:
    return f"{RULES_VERSION}+{config.digest[:12]}"


# --------------------------------------------------------------------------- user-facing view


_USER_ID_SUFFIXES = ("user_id", "user_ids")


def public_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence a user may read: no user ids (theirs or anyone else's)."""
    return {k: v for k, v in evidence.items() if not k.endswith(_USER_ID_SUFFIXES)}


def user_reasons(decision: Decision) -> list[dict[str, Any]]:
    """The reasons a user may read: internal ones dropped, user ids removed from the evidence."""
    return [
        {"code": r.code, "text": r.text, "evidence": public_evidence(r.evidence)}
        for r in decision.reasons
        if not r.internal
    ]


def user_flags(decision: Decision) -> list[str]:
    return [f.value for f in decision.flags if f in USER_VISIBLE_FLAGS]


def user_view(decision: Decision) -> dict[str, Any]:
    """What the user-facing API shows of a decision: no other user's id, only user-visible flags."""
    fee = decision.fee
    return {
        "category": decision.category.value,
        "recoverable": decision.recoverable.value,
        "resolution": decision.resolution.value,
        "flags": user_flags(decision),
        "network": decision.network,
        "tx_hash": decision.tx_hash,
        "asset": decision.asset,
        "amount": dec_text(decision.amount),
        "value_usd": dec_text(decision.value_usd),
        "fee": dec_text(fee.fee) if fee is not None else None,
        "fee_usd": dec_text(fee.fee_value_usd) if fee is not None else None,
        "net_amount": dec_text(fee.net) if fee is not None else None,
        "reasons": user_reasons(decision),
        "rules_version": decision.rules_version,
    }


# --------------------------------------------------------------------------- memos and look-alikes

def _memo_key(memo_format: str, memo: str) -> str:
    """The comparison form of a well-formed memo: numeric ids by value (``007`` is tag 7)."""
    try:
        normalized = addresses.validate_memo(memo_format, memo)
    except (InvalidChainInput, ValueError):
        return memo
    return normalized if normalized is not None else memo


#: Letters from other scripts (and currency signs) that pass for Latin ones in a token symbol.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "\N{CYRILLIC CAPITAL LETTER A}": "A",
        "\N{CYRILLIC CAPITAL LETTER VE}": "B",
        "\N{CYRILLIC CAPITAL LETTER IE}": "E",
        "\N{CYRILLIC CAPITAL LETTER KA}": "K",
        "\N{CYRILLIC CAPITAL LETTER EM}": "M",
        "\N{CYRILLIC CAPITAL LETTER EN}": "H",
        "\N{CYRILLIC CAPITAL LETTER O}": "O",
        "\N{CYRILLIC CAPITAL LETTER ER}": "P",
        "\N{CYRILLIC CAPITAL LETTER ES}": "C",
        "\N{CYRILLIC CAPITAL LETTER TE}": "T",
        "\N{CYRILLIC CAPITAL LETTER U}": "Y",
        "\N{CYRILLIC CAPITAL LETTER HA}": "X",
        "\N{CYRILLIC CAPITAL LETTER DZE}": "S",
        "\N{CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I}": "I",
        "\N{CYRILLIC CAPITAL LETTER JE}": "J",
        "\N{CYRILLIC CAPITAL LETTER KOMI DE}": "D",
        "\N{CYRILLIC CAPITAL LETTER QA}": "Q",
        "\N{CYRILLIC CAPITAL LETTER WE}": "W",
        "\N{CYRILLIC SMALL LETTER A}": "a",
        "\N{CYRILLIC SMALL LETTER VE}": "b",
        "\N{CYRILLIC SMALL LETTER IE}": "e",
        "\N{CYRILLIC SMALL LETTER KA}": "k",
        "\N{CYRILLIC SMALL LETTER EM}": "m",
        "\N{CYRILLIC SMALL LETTER EN}": "h",
        "\N{CYRILLIC SMALL LETTER O}": "o",
        "\N{CYRILLIC SMALL LETTER ER}": "p",
        "\N{CYRILLIC SMALL LETTER ES}": "c",
        "\N{CYRILLIC SMALL LETTER TE}": "t",
        "\N{CYRILLIC SMALL LETTER U}": "y",
        "\N{CYRILLIC SMALL LETTER HA}": "x",
        "\N{CYRILLIC SMALL LETTER DZE}": "s",
        "\N{CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I}": "i",
        "\N{CYRILLIC SMALL LETTER JE}": "j",
        "\N{CYRILLIC SMALL LETTER KOMI DE}": "d",
        "\N{CYRILLIC SMALL LETTER QA}": "q",
        "\N{CYRILLIC SMALL LETTER WE}": "w",
        # Greek
        "\N{GREEK CAPITAL LETTER ALPHA}": "A",
        "\N{GREEK CAPITAL LETTER BETA}": "B",
        "\N{GREEK CAPITAL LETTER EPSILON}": "E",
        "\N{GREEK CAPITAL LETTER ZETA}": "Z",
        "\N{GREEK CAPITAL LETTER ETA}": "H",
        "\N{GREEK CAPITAL LETTER IOTA}": "I",
        "\N{GREEK CAPITAL LETTER KAPPA}": "K",
        "\N{GREEK CAPITAL LETTER MU}": "M",
        "\N{GREEK CAPITAL LETTER NU}": "N",
        "\N{GREEK CAPITAL LETTER OMICRON}": "O",
        "\N{GREEK CAPITAL LETTER RHO}": "P",
        "\N{GREEK CAPITAL LETTER TAU}": "T",
        "\N{GREEK CAPITAL LETTER UPSILON}": "Y",
        "\N{GREEK CAPITAL LETTER CHI}": "X",
        "\N{GREEK SMALL LETTER OMICRON}": "o",
        "\N{GREEK SMALL LETTER NU}": "v",
        "\N{GREEK SMALL LETTER TAU}": "t",
        "\N{GREEK SMALL LETTER UPSILON}": "u",
        "\N{GREEK SMALL LETTER RHO}": "p",
        "\N{GREEK SMALL LETTER IOTA}": "i",
        "\N{GREEK SMALL LETTER KAPPA}": "k",
        # Currency signs used as letters (Tether's own symbol is USD + TUGRIK SIGN)
        "\N{TUGRIK SIGN}": "T",
        "\N{EURO SIGN}": "E",
        "\N{CENT SIGN}": "c",
        "\N{BITCOIN SIGN}": "B",
    }
)


def _lookalike_forms(text: str) -> set[str]:
    """Comparable forms of a symbol: NFKC, confusables folded, case and punctuation ignored.

    ``$`` is tried both dropped ("$USDT") and as an S ("U$DT").
    """
    folded = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)
    forms = set()
    for variant in (folded.replace("$", ""), folded.replace("$", "S")):
        key = "".join(ch for ch in variant.casefold() if ch.isalnum())
        if key:
            forms.add(key)
    return forms


def imitated_asset(symbol: str | None, name: str | None, listed: Sequence[Asset]) -> Asset | None:
    """The listed asset whose symbol (or name) a token's symbol or name imitates, if any."""
    token_forms: set[str] = set()
    for text in (symbol, name):
        if text:
            token_forms |= _lookalike_forms(text)
    if not token_forms:
        return None
    for asset in listed:
        asset_forms = _lookalike_forms(asset.symbol)
        if asset.name:
            asset_forms |= _lookalike_forms(asset.name)
        if token_forms & asset_forms:
            return asset
    return None


# --------------------------------------------------------------------------- the engine


def _fmt(value: Decimal | None) -> str:
    """A readable amount: exact, no exponent, no trailing zeros."""
    if value is None:
        return "an unknown amount"
    with localcontext(exact_context()):
        if value == value.to_integral_value():
            return format(value.quantize(Decimal(1)), "f")
        return format(value.normalize(), "f")


def _money(value: Decimal | None) -> str | None:
    return dec_text(value)


def _norm_id(text: str) -> str:
    return address_key(text).casefold()


@dataclass
class _View:
    """One transfer enriched with what the books and the config say about it."""

    transfer: Transfer
    network: str
    rows_here: list[DepositAddress]
    rows_elsewhere: list[DepositAddress]
    listed: Asset | None
    decimals: int | None
    memo: str | None

    @property
    def ours(self) -> bool:
        return bool(self.rows_here or self.rows_elsewhere)

    @property
    def symbol(self) -> str | None:
        return self.listed.symbol if self.listed is not None else self.transfer.symbol

    @property
    def asset_id(self) -> str | None:
        """Listed symbol, else contract."""
        if self.listed is not None:
            return self.listed.symbol
        return self.transfer.contract

    def ids(self) -> set[str]:
        """Every identifier an appeal or a credit may use for this transfer's asset."""
        found = set()
        if self.listed is not None:
            found.add(self.listed.symbol.casefold())
        if self.transfer.contract:
            found.add(_norm_id(self.transfer.contract))
        return found

    def group_key(self) -> tuple[str, str, str]:
        contract = _norm_id(self.transfer.contract) if self.transfer.contract else "native"
        return (address_key(self.transfer.recipient), contract, self.memo or "")

    def label(self) -> str:
        if self.listed is not None:
            return self.listed.symbol
        if self.transfer.contract is None:
            return "the native coin"
        shown = f'"{self.transfer.symbol}" ' if self.transfer.symbol else ""
        return f"token {shown}({self.transfer.contract})"


@dataclass
class _Work:
    """Mutable state while one decision is built."""

    appeal: Appeal
    config: Config
    registry: Registry
    now: datetime
    prices: dict[tuple[str, str], Decimal]
    reasons: list[Reason] = field(default_factory=list)
    flags: set[Flag] = field(default_factory=set)
    applies: list[Category] = field(default_factory=list)
    #: the wrong_network sentence without its verdict (see _wrong_network)
    wrong_network_fact: str | None = None
    #: the owner of the memo the deposit carries, when that is not the appellant (see _owner_and_memo)
    memo_owner: str | None = None

    def say(self, code: str, text: str, **evidence: Any) -> None:
        """A reason anyone (the user included) may read."""
        self.reasons.append(Reason(code, _sentence(text), evidence, internal=False))

    def say_internal(self, code: str, text: str, **evidence: Any) -> None:
        """A reason for the appeal team only (names other users or internal books)."""
        self.reasons.append(Reason(code, _sentence(text), evidence, internal=True))

    def apply(self, category: Category) -> None:
        if category not in self.applies:
            self.applies.append(category)


def _sentence(text: str) -> str:
    """Reasons start with a capital letter, whatever phrase they were built from."""
    return text[:1].upper() + text[1:]


def classify(
    appeal: Appeal,
    observations: Mapping[str, Observation],
    registry: Registry,
    config: Config,
    now: datetime,
    *,
    prices: PriceMap | None = None,
) -> Decision:
    """Classify one appeal.

    ``observations`` maps network name to what that network said about ``appeal.tx_hash``: the
    claimed network and, where the hash is not there, the other networks of the same family.
    ``prices`` overrides the configured USD prices (e.g. from a price feed, or a specialist's
    manual valuation of an unlisted token). ``now`` must be timezone-aware.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    claimed = config.network(appeal.network)
    work = _Work(
        appeal=appeal,
        config=config,
        registry=registry,
        now=now,
        prices={(n, _norm_id(a)): p for (n, a), p in (prices or {}).items()},
    )
    contested = sorted(appeal.other_appellants - {appeal.user_id})
    if contested:
        work.flags.add(Flag.CONTESTED)
        work.say_internal(
            "contested",
            f"{len(contested)} other user(s) appealed the same transaction.",
            other_user_ids=contested,
        )

    family = [n.name for n in config.networks_of_family(claimed.family)]
    order = [claimed.name, *[n for n in family if n != claimed.name]]
    checked = [n for n in order if n in observations]
    found = [observations[n] for n in checked if observations[n].found]
    if not found:
        return _not_found(work, claimed, checked, [n for n in order if n not in observations])

    obs = _choose_observation(work, found, claimed, family)
    return _decide_found(work, obs, claimed, family)


def _not_found(work: _Work, claimed: Network, checked: list[str], unchecked: list[str]) -> Decision:
    where = ", ".join(checked) if checked else "no network"
    work.say(
        "tx_not_found",
        f"The transaction {work.appeal.tx_hash} was not found on {where}.",
        networks_checked=checked,
    )
    if unchecked:
        work.say(
            "not_checked",
            f"Not checked: {', '.join(unchecked)}; the verdict covers only the networks checked.",
            networks_not_checked=unchecked,
        )
    work.apply(Category.TX_NOT_FOUND)
    return _finish(work, claimed, None, None, [], None)


def _choose_observation(
    work: _Work, found: list[Observation], claimed: Network, family: list[str]
) -> Observation:
    if len(found) > 1:
        work.say(
            "found_on_several",
            f"The hash exists on {len(found)} networks: {', '.join(o.network for o in found)}.",
            networks=[o.network for o in found],
        )
    for obs in found:
        if obs.network == claimed.name:
            return obs
    for obs in found:
        if any(_lookup(work, obs.network, t.recipient, family)[0:2] != ([], []) for t in obs.transfers):
            return obs
    return found[0]


def _lookup(
    work: _Work, network: str, recipient: str, family: list[str]
) -> tuple[list[DepositAddress], list[DepositAddress]]:
    """Rows for the recipient on the landing network, else on the other networks of the family."""
    here = list(work.registry.addresses_at(network, recipient))
    if here:
        return here, []
    elsewhere: list[DepositAddress] = []
    for other in family:
        if other != network:
            elsewhere.extend(work.registry.addresses_at(other, recipient))
    if not elsewhere:
        elsewhere = _evm_twin_rows(work, network, recipient)
    return here, elsewhere


def _evm_twin_rows(work: _Work, network: str, recipient: str) -> list[DepositAddress]:
    """The EVM deposit-address rows whose key also receives at ``recipient`` on a TRON network.

    TRON addresses share the 20 bytes of EVM addresses: an EVM deposit address's TRON twin is ours
    when the address is a key we hold (``eoa``); a contract exists only on the EVM network where it
    was deployed, so its twin is nobody's. Asked only when the family itself has no row.
    """
    landing = work.config.networks.get(network)
    if landing is None or landing.family != "tron":
        return []
    try:
        evm = addresses.tron_to_evm(recipient)
    except InvalidChainInput:
        return []
    rows: list[DepositAddress] = []
    for other in work.config.networks_of_family("evm"):
        rows.extend(r for r in work.registry.addresses_at(other.name, evm) if r.kind == "eoa")
    return rows


def _view(work: _Work, obs: Observation, transfer: Transfer, family: list[str]) -> _View:
    here, elsewhere = _lookup(work, obs.network, transfer.recipient, family)
    listed: Asset | None
    if transfer.kind is AssetKind.NATIVE or transfer.contract is None:
        try:
            listed = work.config.native_asset(obs.network)
        except KeyError:
            listed = None
    else:
        listed = work.config.asset_by_contract(obs.network, transfer.contract)
    decimals = listed.decimals if listed is not None else transfer.decimals
    memo = transfer.memo if transfer.memo is not None else obs.memo
    return _View(transfer, obs.network, here, elsewhere, listed, decimals, memo or None)


def _decide_found(work: _Work, obs: Observation, claimed: Network, family: list[str]) -> Decision:
    appeal = work.appeal
    landing = work.config.network(obs.network)
    where = {"network": obs.network, "block": obs.block_number, "block_hash": obs.block_hash}
    if obs.network != claimed.name:
        work.say(
            "found_elsewhere",
            f"The transaction is on {obs.network}, not on {claimed.name} as the appeal says.",
            claimed_network=claimed.name,
            **where,
        )
    else:
        block = f" in block {obs.block_number}" if obs.block_number is not None else ""
        work.say("found", f"The transaction was found on {obs.network}{block}.", **where)

    if obs.status is TxStatus.UNCLEAR:
        _unrecognised(work, obs)
    if obs.status is TxStatus.PENDING or obs.confirmations < landing.confirmations:
        if obs.details.get("replaceable") is True and obs.status is not TxStatus.SUCCESS:
            work.flags.add(Flag.REPLACEABLE)
            work.say(
                "replaceable",
                "The sender can still replace this unconfirmed transaction (replace-by-fee); "
                "nothing is credited before it confirms.",
            )
        work.apply(Category.AWAITING_CONFIRMATIONS)
        work.say(
            "awaiting_confirmations",
            f"It has {obs.confirmations} of the {landing.confirmations} confirmations {obs.network} requires; "
            "check again later.",
            confirmations=obs.confirmations,
            required=landing.confirmations,
            status=obs.status.value,
        )
    if obs.status is TxStatus.FAILED:
        work.apply(Category.TX_FAILED)
        work.say(
            "tx_failed",
            "The transaction failed on chain: nothing left the sender (only the network fee was paid).",
            status=obs.status.value,
            **where,
        )
        return _finish(work, claimed, obs, None, [], None)

    views = [_view(work, obs, t, family) for t in obs.transfers]
    ours = [v for v in views if v.ours]
    if not ours:
        if obs.status is TxStatus.PENDING and not obs.transfers:
            return _finish(work, claimed, obs, None, [], None)
        return _none_of_yours(work, claimed, obs, views, where)

    mine = [v for v in ours if appeal.user_id in _owner_hint(v)]
    group = _select(work, mine or ours)
    others = _other_users_plain_address(work, landing, group[0])
    if others and not mine:
        # Another customer's deposit address: the appellant is told exactly what an address that
        # is not ours gets (issue 18: whether an address is another customer's is never revealed);
        # the owner is credited through their own case, never through this one.
        work.flags.add(Flag.OTHER_USERS_ADDRESS)
        work.say_internal(
            "other_users_address",
            f"The receiving address {group[0].transfer.recipient} is the deposit address of "
            f"{', '.join(others)}, not the appellant's: this appeal gets nothing and reads to the appellant "
            "like an address that is not ours. The owner is credited through their own case (their appeal, "
            "or the case `recovery scan` opens).",
            recipient=group[0].transfer.recipient,
            owner_user_ids=others,
        )
        return _none_of_yours(work, claimed, obs, views, where)
    return _judge(work, claimed, landing, obs, group, ours)


def _none_of_yours(
    work: _Work, claimed: Network, obs: Observation, views: list[_View], where: Mapping[str, Any]
) -> Decision:
    """No transfer of the transaction reached a deposit address of the appellant's: the same words
    whether the addresses are nobody's at this exchange or another customer's."""
    appeal = work.appeal
    work.apply(Category.NOT_OUR_ADDRESS)
    recipients = sorted({v.transfer.recipient for v in views})
    if not views:
        text = "The transaction moved no value that the node reports (no transfer in it)."
    else:
        text = f"No transfer in it went to a deposit address of your account; it paid {', '.join(recipients)}."
    work.say("not_our_address", text, recipients=recipients, **where)
    if appeal.deposit_address and address_key(appeal.deposit_address) not in {
        address_key(r) for r in recipients
    }:
        work.say(
            "address_claim_differs",
            f"The appeal names {appeal.deposit_address}, which this transaction did not pay.",
            claimed_address=appeal.deposit_address,
        )
    return _finish(work, claimed, obs, None, [], None)


def _plain_address_users(work: _Work, landing: Network, view: _View) -> list[str] | None:
    """The users of the plain (memo-less, not shared) deposit address ``view`` paid, sorted (that
    address on another network when it is not ours on this one); None where another rule decides:
    an exchange wallet (``unattributed_deposit``) or a shared address (the memo rules)."""
    if not view.rows_here:
        return sorted({r.user_id for r in view.rows_elsewhere if r.user_id})
    if all(not r.user_id for r in view.rows_here):
        return None
    if work.registry.is_shared(landing.name, view.transfer.recipient) or any(r.memo for r in view.rows_here):
        return None
    return sorted({r.user_id for r in view.rows_here})


def _other_users_plain_address(work: _Work, landing: Network, view: _View) -> list[str]:
    """The customers whose own (memo-less, not shared) deposit address ``view`` paid, when the
    appellant (a real user, not the placeholder of a held case) is not one of them; else []."""
    appellant = work.appeal.user_id
    if _placeholder(appellant):
        return []
    users = [u for u in _plain_address_users(work, landing, view) or [] if u]
    return [] if not users or appellant in users else users


def _unrecognised(work: _Work, obs: Observation) -> None:
    """The adapter could not read part of the network's answer: a person reads it (the raw answer
    is kept with the observation); nothing is paid on what was read."""
    work.flags.add(Flag.UNRECOGNISED_CHAIN_DATA)
    work.say(
        "unrecognised_chain_data",
        "Part of what the network answered about this transaction could not be read with certainty; "
        "a specialist reads it before anything is paid.",
    )
    unread = [str(r) for r in obs.details.get("unrecognised", ())] or ["(the adapter gave no reason)"]
    work.say_internal(
        "unrecognised_chain_data_detail",
        "Not read with certainty: " + "; ".join(unread) + ". The raw answer is kept with the observation.",
        unrecognised=unread,
    )


def _owner_hint(view: _View) -> set[str]:
    return {r.user_id for r in view.rows_here or view.rows_elsewhere}


def _select(work: _Work, ours: list[_View]) -> list[_View]:
    """The transfer(s) the decision is about: the appellant's address and asset first.

    The asset named by the appeal matches a listed symbol or a contract before it matches the
    symbol a token reports about itself (anyone can deploy a token calling itself "USDT").
    """
    appeal = work.appeal
    wanted_address = address_key(appeal.deposit_address) if appeal.deposit_address else None
    wanted_asset = _norm_id(appeal.asset) if appeal.asset else None

    def rank(view: _View) -> tuple[bool, bool, int, int]:
        address_hit = wanted_address is not None and address_key(view.transfer.recipient) == wanted_address
        owner_hit = appeal.user_id in _owner_hint(view)
        asset_miss = 2
        if wanted_asset is not None and wanted_asset in view.ids():
            asset_miss = 0
        elif wanted_asset is not None and view.transfer.symbol is not None and (
            view.transfer.symbol.casefold() == wanted_asset
        ):
            asset_miss = 1
        return (not address_hit, not owner_hit, asset_miss, view.transfer.index)

    best = min(ours, key=rank)
    group = [v for v in ours if v.group_key() == best.group_key()]
    return sorted(group, key=lambda v: v.transfer.index)


def _judge(
    work: _Work, claimed: Network, landing: Network, obs: Observation, group: list[_View], ours: list[_View]
) -> Decision:
    head = group[0]
    t = head.transfer
    units = sum(v.transfer.amount for v in group)
    amount = units_to_amount(units, head.decimals) if head.decimals is not None else None
    indexes = [v.transfer.index for v in group]
    where = {"network": obs.network, "block": obs.block_number, "transfer_indexes": indexes}

    internal_word = " by a contract call" if any(v.transfer.internal for v in group) else ""
    work.say(
        "transfer",
        f"{_fmt(amount)} {head.label()} went from {t.sender} to {t.recipient}{internal_word}.",
        sender=t.sender,
        recipient=t.recipient,
        contract=t.contract,
        amount_units=str(units),
        amount=_money(amount),
        **where,
    )
    others = [v for v in ours if v not in group]
    if others:
        work.say(
            "other_transfers",
            f"The transaction also pays {len(others)} other transfer(s) to our addresses; "
            "each needs its own appeal.",
            other_transfer_indexes=[v.transfer.index for v in others],
        )

    owner = _owner_and_memo(work, landing, head)
    _already_credited(work, obs, group, ours, amount, owner)
    counterfeit = _counterfeit(work, landing, head)
    recoverable_wn = _wrong_network(work, landing, head)
    if head.listed is None and head.transfer.contract is not None:
        work.apply(Category.UNLISTED_TOKEN)
        if not counterfeit:
            work.say(
                "unlisted_token",
                f"The token {head.transfer.contract} is not listed on {landing.name}: it can only be "
                "returned by a manual recovery.",
                contract=head.transfer.contract,
                token_symbol=head.transfer.symbol,
                token_name=head.transfer.token_name,
            )
    _suspended(work, landing, head)
    _below_minimum(work, head, amount)
    if any(v.transfer.internal for v in group):
        work.apply(Category.INTERNAL_TRANSFER)
        work.say(
            "internal_transfer",
            "The coins arrived through a contract call (an internal transaction found by tracing), "
            "which the deposit scanner does not see.",
            **where,
        )
    _claims(work, head, amount, obs)
    if not work.applies:
        work.apply(Category.UNCREDITED_VALID)
        if Flag.OTHER_USERS_ADDRESS in work.flags:
            text = (
                "The deposit is valid and was not credited: it is credited, with no fee, to the account "
                "that owns the receiving address."
            )
        else:
            text = "Everything about this deposit is right and it was not credited: credit it, with no fee."
        work.say("uncredited_valid", text)
    refs = [_ref(obs, v, owner) for v in group]
    return _finish(work, claimed, obs, head, refs, amount, owner=owner, wn_recoverable=recoverable_wn)


def _owner_and_memo(work: _Work, landing: Network, view: _View) -> str | None:
    """Who owns the receiving address (or memo); applies the memo categories on shared addresses."""
    appeal = work.appeal
    t = view.transfer
    users = _plain_address_users(work, landing, view)
    if users is not None:
        owner = users[0] if len(users) == 1 else None
        if view.rows_here and len(users) > 1:
            work.say_internal(
                "owner_ambiguous",
                f"The address {t.recipient} is recorded for {len(users)} users without memos; check the books.",
                owner_user_ids=users,
            )
        _other_users_address(work, owner, t.recipient)
        return owner
    if all(not r.user_id for r in view.rows_here):
        # an exchange wallet (hot, cold, withdrawal): imported with kind wallet and no user
        work.apply(Category.UNATTRIBUTED_DEPOSIT)
        if _placeholder(appeal.user_id):
            text = ("It was sent to an address of the exchange that is no account's deposit address; "
                    "it is returned to the sender unless the sender appeals and proves they sent it.")
        else:
            text = ("It was sent to an address of the exchange that is no account's deposit address; "
                    "it can be credited once the sender proves ownership, otherwise it is returned to the sender.")
        work.say("unattributed_deposit", text, recipient=t.recipient)
        return None
    memo = view.memo
    fmt = landing.memo_format
    if memo is None:
        work.apply(Category.MISSING_MEMO)
        work.say(
            "missing_memo",
            f"It was sent to our shared {landing.name} address without the memo that identifies the account; "
            "it can be credited once the sender proves ownership.",
            recipient=t.recipient,
        )
        return None
    if not addresses.memo_is_wellformed(fmt, memo):
        work.apply(Category.WRONG_MEMO)
        work.say(
            "memo_malformed",
            f"The memo {memo!r} is malformed for {landing.name} (expected {fmt}); it identifies no account.",
            memo=memo,
            memo_format=fmt,
        )
        return None
    key = _memo_key(fmt, memo)
    matches = [r for r in view.rows_here if r.memo is not None and _memo_key(fmt, r.memo) == key]
    # the user is never told whether a memo is someone else's (issue 18): a memo that names nobody
    # and one that names another account read the same to the appellant (code and sentence); the
    # difference is for the appeal team only
    if not matches:
        work.apply(Category.WRONG_MEMO)
        work.say("wrong_memo", _not_your_memo(memo), memo=memo)
        work.say_internal(
            "memo_unmatched",
            f"The memo {memo!r} belongs to no account; it can be credited once the sender proves ownership.",
            memo=memo,
        )
        return None
    owner = matches[0].user_id
    if owner != appeal.user_id and not _placeholder(appeal.user_id):
        # Another account's memo reads to the appellant exactly as a memo that names nobody: the
        # same category, sentences, fee and proof request (issue 18). By the books the deposit is
        # the memo owner's (their own appeal is credited without proof); the appellant is credited
        # only once they prove they sent it, and, where it was credited to the owner, once that
        # amount is frozen on the owner's account (a person's step: domain.md, wrong memo).
        work.apply(Category.WRONG_MEMO)
        work.memo_owner = owner
        work.say("wrong_memo", _not_your_memo(memo), memo=memo)
        work.say_internal(
            "memo_other_user",
            f"The memo {memo!r} is another account's: the appellant is credited only once they prove they "
            "sent it (and once any credit to the memo's owner is frozen); the owner's own appeal needs no proof.",
            memo=memo,
        )
        work.say_internal("memo_owner", f"Memo {memo!r} is user {owner}'s.", memo_owner_user_id=owner)
        return None
    return owner


def _not_your_memo(memo: str) -> str:
    return f"The memo {memo!r} does not identify your account."


def _other_users_address(work: _Work, owner: str | None, recipient: str) -> None:
    """The owner is not the case's holder: only a held case's placeholder gets here (a real
    appellant at another customer's address is answered as at an address that is not ours)."""
    if owner is not None and owner != work.appeal.user_id:
        work.flags.add(Flag.OTHER_USERS_ADDRESS)
        work.say_internal(
            "other_users_address",
            f"The receiving address {recipient} is not a deposit address of the case's holder.",
            recipient=recipient,
        )
        work.say_internal(
            "address_owner",
            f"The receiving address belongs to user {owner}; any credit goes to that user.",
            owner_user_id=owner,
        )


def _already_credited(
    work: _Work, obs: Observation, group: list[_View], ours: list[_View], amount: Decimal | None, owner: str | None
) -> None:
    """Applies when a credit for this transaction and asset exists for the owner, or when this is
    the only transfer of that asset to our addresses in the transaction (any credit is then its)."""
    ids = group[0].ids()
    credits = [c for c in work.registry.credited(obs.network, obs.tx_hash) if _norm_id(c.asset) in ids]
    if not credits:
        return
    mine = [c for c in credits if owner is not None and c.user_id == owner]
    same_asset_groups = {v.group_key() for v in ours if v.ids() & ids}
    if not mine and len(same_asset_groups) > 1:
        return
    chosen: list[CreditedDeposit] = mine or credits
    with localcontext(exact_context()):  # the default context rounds past 28 digits
        total = sum((c.amount for c in chosen), Decimal(0))
    if work.memo_owner is not None and any(c.user_id != work.appeal.user_id for c in chosen):
        # credited to the memo's owner: to the appellant this stays a wrong memo that needs proof
        work.flags.add(Flag.CREDITED_TO_OTHER_USER)
        work.say_internal(
            "credited_to_other_user",
            f"It was credited ({_fmt(total)} {group[0].label()}) to {', '.join(sorted({c.user_id for c in chosen}))}, "
            "whose memo it carries: freeze that amount on their account before crediting the appellant.",
            credited_amount=_money(total),
            credited_user_ids=sorted({c.user_id for c in chosen}),
        )
        return
    work.apply(Category.ALREADY_CREDITED)
    work.say(
        "already_credited",
        f"This deposit was already credited ({_fmt(total)} {group[0].label()}); "
        "nothing more is due for it.",
        network=obs.network,
        tx_hash=obs.tx_hash,
        credited_amount=_money(total),
        credited_user_ids=sorted({c.user_id for c in chosen}),
    )
    if any(c.user_id != work.appeal.user_id for c in chosen):
        work.flags.add(Flag.CREDITED_TO_OTHER_USER)
        work.say_internal(
            "credited_to_other_user",
            "It was credited to another account than the appellant's.",
            credited_user_ids=sorted({c.user_id for c in chosen}),
        )
    if amount is not None and total != amount:
        work.say_internal(
            "credit_amount_differs",
            f"The credit ({_fmt(total)}) differs from what arrived ({_fmt(amount)}); check the ledger.",
            credited_amount=_money(total),
            arrived_amount=_money(amount),
        )


def _counterfeit(work: _Work, landing: Network, view: _View) -> bool:
    t = view.transfer
    if view.listed is not None or t.contract is None:
        return False
    target = imitated_asset(t.symbol, t.token_name, work.config.assets_on(landing.name))
    if target is None:
        return False
    work.apply(Category.COUNTERFEIT_TOKEN)
    work.flags.add(Flag.COUNTERFEIT)
    real = f" (the real one is {target.contract})" if target.contract else " (the real one is the native coin)"
    work.say(
        "counterfeit_token",
        f"Warning: the token at {t.contract} calls itself {t.symbol or t.token_name!r} but is not the listed "
        f"{target.symbol} on {landing.name}{real}. Fake look-alike tokens are a known scam: it has no value "
        "and is not credited.",
        contract=t.contract,
        token_symbol=t.symbol,
        token_name=t.token_name,
        imitates=target.symbol,
        listed_contract=target.contract,
    )
    return True


def _wrong_network(work: _Work, landing: Network, view: _View) -> Recoverable | None:
    if view.rows_here or not view.rows_elsewhere:
        return None
    work.apply(Category.WRONG_NETWORK)
    issued = sorted({r.network for r in view.rows_elsewhere})
    kinds = {r.kind for r in view.rows_elsewhere}
    recipient = view.transfer.recipient
    evidence = {"landed_on": landing.name, "issued_for": issued, "recipient": recipient,
                "kind": "eoa" if "eoa" in kinds else "contract", "recovery": landing.recovery}
    twin = sorted({r.address for r in view.rows_elsewhere if address_key(r.address) != address_key(recipient)})
    if twin:  # the TRON twin of an EVM key (see _evm_twin_rows)
        evidence["evm_address"] = twin[0]
        base = (f"It landed on {landing.name}, at {recipient}: the {landing.name} form of {twin[0]}, "
                f"which was issued for {', '.join(issued)}")
    else:
        base = f"It landed on {landing.name}, but {recipient} was issued for {', '.join(issued)}"
    if "eoa" not in kinds:
        work.say(
            "wrong_network",
            f"{base}. That address is a contract that exists only where it was deployed, so nobody "
            f"controls it on {landing.name}: not recoverable.",
            **evidence,
        )
        return Recoverable.NO
    if landing.recovery == "none":
        work.say("wrong_network", f"{base}. Recovery from {landing.name} is not offered.", **evidence)
        return Recoverable.NO
    # The sentence says what the wrong network alone allows; _finish drops that verdict where
    # another category or the economics decide otherwise (a fake token, an expired deposit...).
    work.wrong_network_fact = f"{base}. We hold the same key on {landing.name}."
    if landing.recovery == "conditional":
        work.say(
            "wrong_network",
            f"{base}. We hold the same key on {landing.name}, where recovery is possible under conditions.",
            **evidence,
        )
        return Recoverable.CONDITIONAL
    work.say(
        "wrong_network",
        f"{base}. We hold the same key on {landing.name}, so the funds can be recovered.",
        **evidence,
    )
    return Recoverable.YES


def _suspended(work: _Work, landing: Network, view: _View) -> None:
    if not landing.deposits_enabled:
        work.apply(Category.DEPOSIT_SUSPENDED)
        work.say(
            "deposit_suspended",
            f"Deposits on {landing.name} are suspended; credit once they reopen, or refund.",
            network=landing.name,
        )
    elif view.listed is not None and not view.listed.deposits_enabled:
        work.apply(Category.DEPOSIT_SUSPENDED)
        work.say(
            "deposit_suspended",
            f"Deposits of {view.listed.symbol} on {landing.name} are suspended; credit once they reopen, or refund.",
            network=landing.name,
            asset=view.listed.symbol,
        )


def _below_minimum(work: _Work, view: _View, amount: Decimal | None) -> None:
    if view.listed is None or amount is None or view.rows_elsewhere:
        return
    if amount < view.listed.min_deposit:
        work.apply(Category.BELOW_MINIMUM)
        work.say(
            "below_minimum",
            f"{_fmt(amount)} {view.listed.symbol} is under the minimum deposit of "
            f"{_fmt(view.listed.min_deposit)} {view.listed.symbol}.",
            amount=_money(amount),
            min_deposit=_money(view.listed.min_deposit),
        )


def _claims(work: _Work, view: _View, amount: Decimal | None, obs: Observation) -> None:
    """Compare what the appeal says with what arrived; flag partial payments."""
    appeal = work.appeal
    if appeal.claimed_amount is not None and amount is not None and appeal.claimed_amount != amount:
        work.flags.add(Flag.AMOUNT_MISMATCH)
        work.say(
            "amount_mismatch",
            f"The appeal claims {_fmt(appeal.claimed_amount)} {view.label()}, but {_fmt(amount)} "
            f"{view.label()} arrived; only what arrived counts.",
            claimed_amount=_money(appeal.claimed_amount),
            arrived_amount=_money(amount),
        )
    if obs.details.get("partial_payment"):
        work.flags.add(Flag.PARTIAL_PAYMENT)
        work.say(
            "partial_payment",
            "This is a partial payment: less was delivered than the transaction's stated amount; "
            "only the delivered amount counts.",
            delivered_units=str(sum(t.amount for t in obs.transfers if t.index == view.transfer.index)),
            stated_amount=str(obs.details.get("stated_amount", "")) or None,
        )
    if appeal.asset and _norm_id(appeal.asset) not in view.ids() and not (
        view.transfer.symbol and view.transfer.symbol.casefold() == _norm_id(appeal.asset)
    ):
        work.say(
            "asset_claim_differs",
            f"The appeal names {appeal.asset}, but the transfer carries {view.label()}.",
            claimed_asset=appeal.asset,
        )
    if appeal.deposit_address and address_key(appeal.deposit_address) != address_key(view.transfer.recipient):
        work.say(
            "address_claim_differs",
            f"The appeal names {appeal.deposit_address}, but the transfer went to {view.transfer.recipient}.",
            claimed_address=appeal.deposit_address,
        )


def _ref(obs: Observation, view: _View, owner: str | None) -> TransferRef:
    t = view.transfer
    amount = units_to_amount(t.amount, view.decimals) if view.decimals is not None else None
    issued = sorted({r.network for r in (view.rows_here or view.rows_elsewhere)})
    return TransferRef(
        network=obs.network,
        tx_hash=obs.tx_hash,
        index=t.index,
        kind=t.kind.value,
        sender=t.sender,
        recipient=t.recipient,
        contract=t.contract,
        symbol=view.symbol,
        listed=view.listed is not None,
        amount_units=t.amount,
        amount=amount,
        memo=view.memo,
        internal=t.internal,
        owner_user_id=owner,
        issued_for=tuple(issued),
    )


# --------------------------------------------------------------------------- outcome


_BASE_OUTCOME: dict[Category, tuple[Recoverable, Resolution]] = {
    Category.TX_NOT_FOUND: (Recoverable.NO, Resolution.NONE),
    Category.AWAITING_CONFIRMATIONS: (Recoverable.CONDITIONAL, Resolution.NONE),
    Category.TX_FAILED: (Recoverable.NO, Resolution.NONE),
    Category.NOT_OUR_ADDRESS: (Recoverable.NO, Resolution.NONE),
    Category.ALREADY_CREDITED: (Recoverable.NO, Resolution.NONE),
    Category.COUNTERFEIT_TOKEN: (Recoverable.NO, Resolution.NONE),
    Category.WRONG_NETWORK: (Recoverable.YES, Resolution.CREDIT),
    Category.UNLISTED_TOKEN: (Recoverable.YES, Resolution.REFUND),
    Category.MISSING_MEMO: (Recoverable.CONDITIONAL, Resolution.CREDIT),
    Category.WRONG_MEMO: (Recoverable.CONDITIONAL, Resolution.CREDIT),
    Category.UNATTRIBUTED_DEPOSIT: (Recoverable.CONDITIONAL, Resolution.CREDIT),
    Category.DEPOSIT_SUSPENDED: (Recoverable.CONDITIONAL, Resolution.CREDIT),
    Category.BELOW_MINIMUM: (Recoverable.YES, Resolution.CREDIT),
    Category.INTERNAL_TRANSFER: (Recoverable.YES, Resolution.CREDIT),
    Category.UNCREDITED_VALID: (Recoverable.YES, Resolution.CREDIT),
}

_RANK = {Recoverable.YES: 2, Recoverable.CONDITIONAL: 1, Recoverable.NO: 0}


def _at_most(current: Recoverable, cap: Recoverable) -> Recoverable:
    return current if _RANK[current] <= _RANK[cap] else cap


def _price(work: _Work, network: str, view: _View) -> Decimal | None:
    for ident in sorted(view.ids()):
        override = work.prices.get((network, ident))
        if override is not None:
            return override
    if view.listed is not None:
        return view.listed.price_usd
    return None


def _finish(
    work: _Work,
    claimed: Network,
    obs: Observation | None,
    head: _View | None,
    refs: list[TransferRef],
    amount: Decimal | None,
    *,
    owner: str | None = None,
    wn_recoverable: Recoverable | None = None,
) -> Decision:
    ordered = [c for c in CATEGORY_ORDER if c in work.applies]
    category = ordered[0]
    recoverable, resolution = _BASE_OUTCOME[category]
    if category is Category.WRONG_NETWORK and wn_recoverable is not None:
        recoverable = wn_recoverable
    if Category.UNLISTED_TOKEN in ordered and category in (Category.WRONG_NETWORK, Category.UNLISTED_TOKEN):
        resolution = Resolution.REFUND
    if category is Category.UNATTRIBUTED_DEPOSIT and _placeholder(work.appeal.user_id):
        resolution = Resolution.REFUND  # nobody appealed it: back to the sender

    fee: FeeBreakdown | None = None
    value_usd: Decimal | None = None
    if obs is not None and head is not None:
        if amount is None:
            work.say(
                "decimals_unknown",
                "The token's decimals could not be read on chain, so its amount needs a manual valuation.",
                contract=head.transfer.contract,
            )
            recoverable = _at_most(recoverable, Recoverable.CONDITIONAL)
        else:
            fee, recoverable = _fee(work, category, obs, head, amount, recoverable)
            value_usd = fee.value_usd

    if Flag.UNRECOGNISED_CHAIN_DATA in work.flags:
        # never an automatic payout on data the adapter could not read: a person decides
        recoverable = _at_most(recoverable, Recoverable.CONDITIONAL)
        resolution = Resolution.NONE
    if recoverable is Recoverable.NO:
        resolution = Resolution.NONE
    _settle_reasons(work, category, recoverable, wn_recoverable)
    credited_user: str | None = None
    if resolution is Resolution.CREDIT:
        if owner is not None:
            credited_user = owner
        elif category in (Category.MISSING_MEMO, Category.WRONG_MEMO, Category.UNATTRIBUTED_DEPOSIT):
            credited_user = work.appeal.user_id
    refund_address = None
    if resolution is Resolution.REFUND and head is not None:
        refund_address = head.transfer.sender
    proof: dict[str, Any] | None = None
    if obs is not None and head is not None and ownership_proof_needed(resolution, owner, credited_user):
        proof = _ask_for_proof(work, obs, head, refs)

    return Decision(
        category=category,
        recoverable=recoverable,
        resolution=resolution,
        flags=tuple(f for f in Flag if f in work.flags),
        also=tuple(ordered[1:]),
        tx_hash=obs.tx_hash if obs is not None else work.appeal.tx_hash,
        claimed_network=claimed.name,
        network=obs.network if obs is not None else None,
        transfers=tuple(refs),
        asset=head.asset_id if head is not None else None,
        amount=amount,
        value_usd=value_usd,
        fee=fee,
        credited_user_id=credited_user,
        refund_address=refund_address,
        reasons=tuple(work.reasons),
        rules_version=rules_version(work.config),
        decided_at=work.now,
        ownership_proof=proof,
    )


def _placeholder(user_id: str) -> bool:
    """The placeholder owner of a detected case (``shared:…``, see recovery.services): no appellant."""
    return user_id.startswith("shared:")


#: the evidence kind people review (a document); signed messages are chain knowledge (chains.ownership)
WITHDRAWAL_RECORD = "withdrawal_record"


def ownership_proof_needed(resolution: Resolution | str | None, owner: str | None, credited_user: str | None) -> bool:
    """A credit needs ownership evidence when it does not follow from our own books: it goes to an
    account (the appellant) that is not the owner of the receiving address or memo (issue 18).

    At a user's own deposit address (or memo) the owner is credited and needs no proof, whoever
    else appealed; a memo-less or unmatched-memo deposit at a shared address, a deposit to an
    exchange wallet, a claimed detected case, and any contested credit of that kind need it.
    """
    return (str(resolution) == Resolution.CREDIT.value and credited_user is not None
            and not _placeholder(credited_user) and credited_user != owner)


def evidence_kinds(family: str, sender: str | None) -> list[str]:
    """The evidence kinds offered for a deposit sent from ``sender`` on ``family``: a signed message
    where the family's verifier can check one for that address, and always a withdrawal record."""
    from chains.ownership import supported_kinds

    kinds = list(supported_kinds(family, address=sender)) if sender else []
    return [*kinds, WITHDRAWAL_RECORD]


def _input_addresses(obs: Observation) -> set[str]:
    """The distinct addresses that paid into a UTXO transaction (Bitcoin: its inputs)."""
    inputs = obs.details.get("inputs")
    if not isinstance(inputs, list):
        return set()
    return {str(i.get("address") or "") for i in inputs if isinstance(i, Mapping)}


def _ask_for_proof(work: _Work, obs: Observation, head: _View, refs: list[TransferRef]) -> dict[str, Any]:
    landing = work.config.network(obs.network)
    sender = head.transfer.sender
    kinds = evidence_kinds(landing.family, sender)
    if landing.family == "bitcoin" and len(_input_addresses(obs)) != 1:
        # several inputs from several addresses (a CoinJoin, a PayJoin, a batched send), or one not
        # read: the key of one input (the "sender" is the first) proves nothing about who paid
        kinds = [k for k in kinds if k != "signed_message"]
        not_offered: str | None = ("the deposit was paid from several addresses: a signature by one of them "
                                   "does not prove who sent it")
    else:
        not_offered = None
    if "signed_message" in kinds:
        how = (f"sign the challenge we give you with the key of the sending address {sender}, "
               "or send the withdrawal record of the platform you sent it from")
    else:
        how = "send the withdrawal record of the platform you sent it from (PDF, PNG or JPEG)"
    work.say("ownership_proof", f"Prove that you sent this deposit: {how}.", kinds=kinds, sender=sender)
    return {
        "kinds": kinds, "sender": sender, "network": obs.network, "tx_hash": obs.tx_hash,
        "transfer_indexes": [r.index for r in refs], **({"not_offered": not_offered} if not_offered else {}),
    }


def _settle_reasons(
    work: _Work, category: Category, recoverable: Recoverable, wn_recoverable: Recoverable | None
) -> None:
    """Keep the sentences in line with the final verdict: no sentence promises what is not given.

    The wrong-network sentence keeps its "can be recovered" only where it is the verdict; the fee
    sentence (a fee and a net amount) is dropped when nothing is recovered, unless the fee is
    what makes the recovery not economical.
    """
    revised: list[Reason] = []
    for reason in work.reasons:
        if reason.code == "wrong_network" and work.wrong_network_fact is not None and not (
            category is Category.WRONG_NETWORK and recoverable is wn_recoverable
        ):
            reason = replace(reason, text=work.wrong_network_fact)
        if reason.code == "fee" and recoverable is Recoverable.NO and Flag.NOT_ECONOMICAL not in work.flags:
            continue
        revised.append(reason)
    work.reasons = revised


def _fee(
    work: _Work, category: Category, obs: Observation, head: _View, amount: Decimal, recoverable: Recoverable
) -> tuple[FeeBreakdown, Recoverable]:
    """Compute the fee for the category and apply its economics (age, minimum value, fee vs amount)."""
    decimals = head.decimals if head.decimals is not None else 0
    ids = [head.listed.symbol] if head.listed is not None else []
    if head.transfer.contract:
        ids.append(head.transfer.contract)
    matched = match_rule(work.config.fees, category.value, obs.network, ids)
    price = _price(work, obs.network, head)
    fee = compute_fee(matched, amount, decimals, price)

    needs_value = fee.fee is None or fee.min_value_usd > 0 or category is Category.UNLISTED_TOKEN
    if fee.price_usd is None and needs_value and recoverable is not Recoverable.NO:
        work.say(
            "no_price",
            f"There is no USD price for {head.label()} on {obs.network}: it needs a manual valuation.",
            asset=head.asset_id,
        )
        recoverable = _at_most(recoverable, Recoverable.CONDITIONAL)

    if matched is None:
        work.say("fee", "No fee rule applies to this category: no fee.", rule=None)
    else:
        work.say("fee", _fee_sentence(fee, head), **_fee_evidence(fee, matched.label()))

    if fee.fee is None:
        recoverable = _at_most(recoverable, Recoverable.CONDITIONAL)

    if matched is not None and matched.rule.max_age_days is not None:
        at = work.appeal.submitted_at or work.now
        if obs.timestamp is None:
            work.say("age_unknown", "The transaction's time is unknown, so its age could not be checked.")
        elif at - obs.timestamp > timedelta(days=matched.rule.max_age_days):
            work.flags.add(Flag.EXPIRED)
            age_days = (at - obs.timestamp).days
            work.say(
                "expired",
                f"The deposit is {age_days} days old, older than the {matched.rule.max_age_days} days "
                "within which this recovery is offered.",
                age_days=age_days,
                max_age_days=matched.rule.max_age_days,
                timestamp=obs.timestamp.isoformat(),
            )
            recoverable = Recoverable.NO

    if fee.not_economical:
        work.flags.add(Flag.NOT_ECONOMICAL)
        if fee.below_min_value:
            text = (
                f"Its value ({_fmt(fee.value_usd)} USD) is under the {_fmt(fee.min_value_usd)} USD "
                "worth recovering."
            )
        else:
            text = f"The fee ({_fmt(fee.fee_usd)} USD) would take the whole amount: not worth recovering."
        work.say(
            "not_economical",
            text,
            value_usd=_money(fee.value_usd),
            min_value_usd=_money(fee.min_value_usd),
            fee_usd=_money(fee.fee_usd),
        )
        recoverable = Recoverable.NO
    return fee, recoverable


def fee_formula(fee: FeeBreakdown, number: Callable[[Decimal], str] = _fmt) -> tuple[str, bool, bool]:
    """The fee rule in words ("5% of the value above 100 USD (at least 20 USD)"), with whether it
    has terms and bounds; ``number`` writes each figure."""
    terms = []
    if fee.flat_usd:
        terms.append(f"{number(fee.flat_usd)} USD flat")
    if fee.percent:
        above = f" of the value above {number(fee.free_below_usd)} USD" if fee.free_below_usd else " of the value"
        terms.append(f"{number(fee.percent * 100)}%{above}")
    bounds = []
    if fee.min_usd:
        bounds.append(f"at least {number(fee.min_usd)} USD")
    if fee.max_usd is not None:
        bounds.append(f"at most {number(fee.max_usd)} USD")
    formula = " + ".join(terms) or "no charge"
    if bounds:
        formula += f" ({', '.join(bounds)})"
    return formula, bool(terms), bool(bounds)


def _fee_sentence(fee: FeeBreakdown, head: _View) -> str:
    symbol = head.label()
    formula, terms, bounds = fee_formula(fee)
    if fee.fee is None:
        return f"Fee: {formula}; it cannot be set without a price."
    if fee.fee == 0 and not terms and not bounds:
        return f"No fee is charged for this; net {_fmt(fee.net)} {symbol}."
    if fee.fee == 0:
        return f"Fee: {formula}, which comes to nothing here; net {_fmt(fee.net)} {symbol}."
    return (
        f"Fee: {formula} = {_fmt(fee.fee_usd)} USD, charged as {_fmt(fee.fee)} {symbol}; "
        f"net {_fmt(fee.net)} {symbol}."
    )


def _fee_evidence(fee: FeeBreakdown, label: str) -> dict[str, Any]:
    return {
        "rule": label,
        "rule_index": fee.rule_index,
        "value_usd": _money(fee.value_usd),
        "fee_usd": _money(fee.fee_usd),
        "fee": _money(fee.fee),
        "net": _money(fee.net),
    }
