"""Amounts wider than Python's default decimal precision (28 digits) are stored, read and written as
text exactly: a large-supply token with 18 decimals has 30 significant digits, and ``canonical_decimal``
used to round it (and refuse an integer of 29 digits or more) in the default context."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel import select

from recovery.db import Database
from recovery.dbtypes import jsonable
from recovery.models import CreditedDeposit
from recovery.plain_values import canonical_decimal, decimal_text

WIDE = [
    "1234567890123.123456789012345678",  # 1.2 trillion of an 18-decimal token: 31 digits
    "0.123456789012345678901234567891",  # 30 decimals, the column's scale
    "123456789012345678901234567890123",  # a 33-digit integer (base units)
    "10000000000000000000000000000",  # 1E+28 written whole
]


@pytest.mark.parametrize("text", WIDE)
def test_an_amount_wider_than_28_digits_is_stored_and_read_back_exactly(database: Database, text: str) -> None:
    amount = Decimal(text)
    with database.write() as session:
        session.add(CreditedDeposit(network="ethereum", tx_hash="0x" + "ab" * 32, user_id="u1", asset="SHIB",
                                    amount=amount))
    with database.read() as session:
        stored = session.exec(select(CreditedDeposit)).one().amount
    assert stored == amount and str(stored) == text


@pytest.mark.parametrize("text", WIDE)
def test_an_amount_wider_than_28_digits_is_written_whole(text: str) -> None:
    assert canonical_decimal(Decimal(text)) == Decimal(text)
    assert decimal_text(Decimal(text)) == text
    assert jsonable({"amount": Decimal(text)}) == {"amount": text}
    if "." in text:
        assert decimal_text(Decimal(text + "000")) == text  # trailing zeros dropped, nothing else
    assert decimal_text(Decimal("1E+28")) == "1" + "0" * 28
