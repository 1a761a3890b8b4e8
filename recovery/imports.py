"""CSV imports of deposit addresses and credited deposits: every row valid, or nothing imported.

Each bad row is reported as ``line N: field: problem``. Rows identical to what the database
already holds are counted as unchanged (re-running an import is safe); a row that contradicts a
stored one (same address, another owner) is an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import Session, select

from chains import addresses
from chains.base import InvalidChainInput
from recovery import audit
from recovery.config import Config
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import FieldError
from recovery.intake import USER_ID, parse_positive_decimal
from recovery.models import CreditedDeposit, DepositAddress

Row = TypeVar("Row", DepositAddress, CreditedDeposit)

ADDRESS_COLUMNS = ("user_id", "network", "address", "memo", "kind")
CREDIT_COLUMNS = ("network", "tx_hash", "user_id", "asset", "amount")
ADDRESS_KINDS = ("eoa", "contract", "wallet")
#: an address of the exchange's own (hot, cold, withdrawal wallet): held by no user (empty user_id)
WALLET_KIND = "wallet"
MAX_ROWS = 1_000_000


class ImportFailed(Exception):
    """The file was refused as a whole; ``problems`` lists each bad line and field."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = problems[:50]
        more = f"\n  … and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            f"{path}: nothing imported, {len(problems)} problem(s):\n"
            + "\n".join(f"  {p}" for p in shown) + more
        )


@dataclass
class ImportResult:
    rows: int = 0
    inserted: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ImportFailed(str(path), ["file not found"]) from None
    except UnicodeDecodeError as exc:
        raise ImportFailed(str(path), [f"not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    problems: list[str] = []
    missing = [c for c in columns if c not in header]
    unknown = [c for c in header if c not in columns]
    if missing:
        problems.append(f"line 1: header: missing column(s) {', '.join(missing)} (expected {','.join(columns)})")
    if unknown:
        problems.append(f"line 1: header: unknown column(s) {', '.join(unknown)} (expected {','.join(columns)})")
    if problems:
        raise ImportFailed(str(path), problems)
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for record in reader:
            line = reader.line_num
            if None in record:
                problems.append(f"line {line}: row has more fields than the header")
                continue
            if any(v is None for v in record.values()):
                problems.append(f"line {line}: row has fewer fields than the header")
                continue
            if all(not (v or "").strip() for v in record.values()):
                continue  # blank line
            rows.append((line, {k: v for k, v in record.items() if k is not None}))
            if len(rows) > MAX_ROWS:
                raise ImportFailed(str(path), [f"more than {MAX_ROWS} rows: split the file"])
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: not valid CSV: {exc}")
    if problems:
        raise ImportFailed(str(path), problems)
    if not rows:
        raise ImportFailed(str(path), ["no rows after the header"])
    return rows


def _network(config: Config, raw: str, line: int, problems: list[str]) -> Any:
    network = config.networks.get(raw.strip().lower())
    if network is None:
        problems.append(f"line {line}: network: unknown network {raw.strip()[:40]!r}")
    return network


def import_addresses(db: Database, config: Config, path: Path, *, actor: str = "import",
                     actor_role: str = "admin") -> ImportResult:
    """Deposit addresses from a CSV file, all or nothing; the import is an audit event (file digest,
    rows, who) in the same transaction."""
    rows = _read_rows(path, ADDRESS_COLUMNS)
    problems: list[str] = []
    parsed: list[DepositAddress] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, row in rows:
        user_id = row["user_id"].strip()
        kind = row["kind"].strip().lower()
        if kind not in ADDRESS_KINDS:
            problems.append(f"line {line}: kind: must be eoa or contract (or wallet, with an empty user_id), "
                            f"not {row['kind'].strip()[:20]!r}")
        elif kind == WALLET_KIND:
            if user_id:
                problems.append(f"line {line}: user_id: must be empty for a wallet of the exchange (kind wallet)")
        elif not USER_ID.match(user_id):
            problems.append(f"line {line}: user_id: must be 1-128 letters, digits or _ . : @ -")
        network = _network(config, row["network"], line, problems)
        if network is None:
            continue
        try:
            address = addresses.normalize_address(network.family, row["address"].strip(), field="address")
        except InvalidChainInput as exc:
            problems.append(f"line {line}: address: {exc.message}")
            continue
        memo_raw = row["memo"]
        memo = ""
        if network.memo_required:
            if not memo_raw:
                problems.append(f"line {line}: memo: {network.name} deposits are told apart by memo: one is required")
                continue
            try:
                memo = addresses.validate_memo(network.memo_format, memo_raw, field="memo") or ""
            except InvalidChainInput as exc:
                problems.append(f"line {line}: memo: {exc.message}")
                continue
        elif memo_raw.strip():
            problems.append(f"line {line}: memo: {network.name} does not use memos; leave it empty")
            continue
        key = (network.name, address, memo)
        if key in seen:
            problems.append(f"line {line}: address: duplicate of line {seen[key]}")
            continue
        seen[key] = line
        parsed.append(DepositAddress(user_id=user_id, network=network.name, address=address, memo=memo, kind=kind))
    if problems:
        raise ImportFailed(str(path), problems)

    def same(stored: DepositAddress, new: DepositAddress) -> bool:
        return stored.user_id == new.user_id and stored.kind == new.kind

    def lookup(session: Session, new: DepositAddress) -> DepositAddress | None:
        return session.exec(
            select(DepositAddress).where(
                DepositAddress.network == new.network,
                DepositAddress.address == new.address,
                DepositAddress.memo == new.memo,
            )
        ).first()

    def describe(stored: DepositAddress) -> str:
        return f"address: already held by user {stored.user_id} as {stored.kind}"

    return _store(db, path, parsed, [line for line, _ in rows], lookup, same, describe,
                  audit_as=(actor, actor_role, "addresses_imported"))


def import_credits(db: Database, config: Config, path: Path, *, actor: str = "import",
                   actor_role: str = "admin") -> ImportResult:
    """Credited deposits from the exchange's ledger export, all or nothing; audited like addresses."""
    rows = _read_rows(path, CREDIT_COLUMNS)
    problems: list[str] = []
    parsed: list[CreditedDeposit] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for line, row in rows:
        user_id = row["user_id"].strip()
        if not USER_ID.match(user_id):
            problems.append(f"line {line}: user_id: must be 1-128 letters, digits or _ . : @ -")
        errors: list[FieldError] = []
        amount = parse_positive_decimal(row["amount"], "amount", errors)
        if row["amount"].strip() == "":
            problems.append(f"line {line}: amount: is required")
        problems.extend(f"line {line}: {e}" for e in errors)
        network = _network(config, row["network"], line, problems)
        if network is None:
            continue
        try:
            tx_hash = addresses.normalize_tx_hash(network.family, row["tx_hash"].strip())
        except InvalidChainInput as exc:
            problems.append(f"line {line}: tx_hash: {exc.message}")
            continue
        asset_raw = row["asset"].strip()
        listed = config.asset_by_symbol(network.name, asset_raw)
        if listed is not None:
            asset = listed.symbol
        elif addresses.is_address(network.family, asset_raw):
            asset = addresses.normalize_address(network.family, asset_raw, field="asset")
        else:
            problems.append(
                f"line {line}: asset: {asset_raw[:40]!r} is not listed on {network.name} and not a contract"
            )
            continue
        if amount is None:
            continue
        key = (network.name, tx_hash, user_id, asset)
        if key in seen:
            problems.append(f"line {line}: tx_hash: duplicate of line {seen[key]}")
            continue
        seen[key] = line
        parsed.append(CreditedDeposit(network=network.name, tx_hash=tx_hash, user_id=user_id, asset=asset,
                                      amount=amount))
    if problems:
        raise ImportFailed(str(path), problems)

    def same(stored: CreditedDeposit, new: CreditedDeposit) -> bool:
        return stored.amount == new.amount

    def lookup(session: Session, new: CreditedDeposit) -> CreditedDeposit | None:
        return session.exec(
            select(CreditedDeposit).where(
                CreditedDeposit.network == new.network,
                CreditedDeposit.tx_hash == new.tx_hash,
                CreditedDeposit.user_id == new.user_id,
                CreditedDeposit.asset == new.asset,
            )
        ).first()

    def describe(stored: CreditedDeposit) -> str:
        return f"amount: already recorded as credited with amount {stored.amount}"

    return _store(db, path, parsed, [line for line, _ in rows], lookup, same, describe,
                  audit_as=(actor, actor_role, "credits_imported"))


def _store(
    db: Database,
    path: Path,
    parsed: list[Row],
    lines: Iterable[int],
    lookup: Callable[[Session, Row], Row | None],
    same: Callable[[Row, Row], bool],
    describe: Callable[[Row], str],
    *,
    audit_as: tuple[str, str, str],
) -> ImportResult:
    """Insert all rows in one transaction; any contradiction with stored data rolls everything back.
    The import leaves an audit event (file name and SHA-256, row counts, who) in the same transaction."""
    result = ImportResult(rows=len(parsed))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    problems: list[str] = []
    with db.write() as session:
        for line, row in zip(lines, parsed, strict=True):
            stored = lookup(session, row)
            if stored is None:
                session.add(row)
                result.inserted += 1
            elif same(stored, row):
                result.unchanged += 1
            else:
                problems.append(f"line {line}: {describe(stored)}")
        if problems:
            raise ImportFailed(str(path), problems)  # rolls the transaction back
        session.flush()
        actor, role, action = audit_as
        audit.append_event(session, case_id=None, actor=actor, actor_role=role, action=action, from_status=None,
                           to_status=None, now=utcnow(),
                           details={"file": path.name, "sha256": digest, "rows": result.rows,
                                    "inserted": result.inserted, "unchanged": result.unchanged})
    return result
