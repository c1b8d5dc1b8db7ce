"""DynamoDB numbers by value: one spelling per value, exact for all 38 digits."""
from __future__ import annotations

import decimal

# Wide enough that normalising a 38-digit DynamoDB number never rounds it.
_CONTEXT = decimal.Context(prec=60)


def canonical_number(text: str) -> str:
    """'1.0', '1E0' and '01' all give '1'; a value that is not a finite number is an error."""
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if value.is_zero():
        return "0"
    return str(_CONTEXT.normalize(value))
