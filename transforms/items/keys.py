"""Item keys: the attributes that identify an item, as a hashable value."""
from __future__ import annotations

from typing import Sequence

from transforms.items.numbers import canonical_number


def key_of(item: dict, key_names: Sequence[str]) -> tuple:
    """Hashable primary key of a low-level item, for deduping batch writes and matching reads.

    Returns ((tag, value), ...) in key_names order. N values are compared by
    numeric value (DynamoDB treats "1.0" and "1" as the same key), B as bytes.
    Raises ValueError if a key attribute is missing or not S/N/B.
    """
    out = []
    for name in key_names:
        tv = item.get(name)
        if tv is None:
            raise ValueError(f"item has no key attribute {name!r}")
        if type(tv) is not dict or len(tv) != 1:
            raise ValueError(f"key attribute {name!r}: {tv!r:.80} is not a single-tag dict")
        ((tag, v),) = tv.items()
        if tag == "S":
            out.append(("S", v))
        elif tag == "N":
            try:
                out.append(("N", canonical_number(v)))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"key attribute {name!r}: {exc}") from None
        elif tag == "B":
            out.append(("B", bytes(v)))
        else:
            raise ValueError(f"key attribute {name!r} has type {tag!r}; keys must be S, N or B")
    return tuple(out)
