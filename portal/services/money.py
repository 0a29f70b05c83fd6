"""Money: Decimal only, with one documented rounding point per use.

Precision
    The ledger keeps every currency to 6 decimal places (1/10,000 of a cent): USD cashback
    can be a fraction of a cent ($0.50 × 7 % = $0.035) and must add up exactly.
Rounding points
    * ``cashback_amount`` — once, when an order's cashback is computed: half-even to the
      ledger precision.
    * ``payable`` — when money leaves us (a payout): down to the currency's minor unit
      (cents, kopecks), so we never send more than the customer holds.
    * ``convert`` — currency conversion at a stored rate: half-even to the ledger precision.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

LEDGER_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True)
class Currency:
    code: str
    #: Digits of the smallest unit that can actually be paid (cents: 2).
    minor_digits: int
    symbol: str

    @property
    def minor_quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.minor_digits)


CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", 2, "$"),
        Currency("RUB", 2, "₽"),
        Currency("EUR", 2, "€"),
    )
}


class MoneyError(ValueError):
    """A value that is not valid money (float, garbage, unknown currency, too precise)."""


def currency(code: str) -> Currency:
    try:
        return CURRENCIES[code]
    except KeyError:
        raise MoneyError(f"unknown currency {code!r}") from None


def to_decimal(value: object) -> Decimal:
    """Parse money from str/int/Decimal.  Floats are refused: they are not exact."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError(f"money must not be a {type(value).__name__}: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise MoneyError(f"not an amount: {value!r}") from None
    else:
        raise MoneyError(f"not an amount: {value!r}")
    if not result.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return result


def is_ledger_exact(amount: Decimal) -> bool:
    """True when the amount needs no more than the ledger's 6 decimal places."""
    return amount == amount.quantize(LEDGER_QUANTUM, rounding=ROUND_DOWN)


def quantize_ledger(amount: Decimal) -> Decimal:
    return amount.quantize(LEDGER_QUANTUM, rounding=ROUND_HALF_EVEN)


def cashback_amount(paid: Decimal, rate_percent: Decimal) -> Decimal:
    """The customer's cashback for ``paid`` at ``rate_percent`` (rounded once, here)."""
    return quantize_ledger(paid * rate_percent / Decimal(100))


def payable(amount: Decimal, code: str) -> Decimal:
    """What can actually be sent: rounded down to the currency's minor unit."""
    return amount.quantize(currency(code).minor_quantum, rounding=ROUND_DOWN)


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """``amount`` × ``rate`` at ledger precision (e.g. USD → RUB at the day's rate)."""
    return quantize_ledger(amount * rate)
