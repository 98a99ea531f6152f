"""Money: integer minor units plus an ISO 4217 currency.

Rounding rule (one for the whole system): a computed amount (a percentage discount, a tax) is
rounded to the currency's minor unit **half-up** (0.5 minor units go away from zero), once per
computed amount. Minor-unit exponents follow ISO 4217: JPY/KRW 0 decimals, BHD/KWD/JOD/OMR/TND
3, everything else here 2.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["Decimal", "apply_rate", "basis_points", "display", "exponent"]
from typing import Final

EXPONENT: Final[dict[str, int]] = {
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
SUPPORTED: Final = frozenset(
    {"EUR", "USD", "GBP", "INR", "BRL", "CHF", "SEK", "PLN", "AUD", "CAD", "SGD"} | set(EXPONENT)
)


def exponent(currency: str) -> int:
    return EXPONENT.get(currency, 2)


def apply_rate(amount_minor: int, rate: Decimal) -> int:
    """``amount * rate`` in minor units, rounded half-up (e.g. 19% of 1999 = 379.81 -> 380)."""
    return int((Decimal(amount_minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def basis_points(amount_minor: int, bp: int) -> int:
    """``amount * bp / 10000`` rounded half-up (bp: basis points, 1900 = 19 %)."""
    return apply_rate(amount_minor, Decimal(bp) / Decimal(10_000))


def display(amount_minor: int, currency: str) -> str:
    """``1999, EUR`` -> ``19.99 EUR``; ``1999, JPY`` -> ``1999 JPY``."""
    exp = exponent(currency)
    if exp == 0:
        return f"{amount_minor} {currency}"
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d} {currency}"
