"""Money is Decimal with two places in INR; never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CURRENCY = "INR"
CENT = Decimal("0.01")


def to_money(value: Decimal | int | str) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
