"""Item keys: the attributes that identify an item, as a hashable value.

A key is its exact type tag and text (or bytes): Alternator does not normalise numbers
in keys, so `N "1"` and `N "1.0"` are two different items there and must stay two
everywhere we match keys (batch dedupe, point reads, stream collapse, validation).
"""
from __future__ import annotations

from typing import Sequence


def key_of(item: dict, key_names: Sequence[str]) -> tuple:
    """Hashable primary key of a low-level item, for deduping batch writes and matching reads.

    Returns ((tag, value), ...) in key_names order, with the exact text of S and N
    and the bytes of B. Raises ValueError if a key attribute is missing or not S/N/B.
    """
    out = []
    for name in key_names:
        tv = item.get(name)
        if tv is None:
            raise ValueError(f"item has no key attribute {name!r}")
        if type(tv) is not dict or len(tv) != 1:
            raise ValueError(f"key attribute {name!r}: {tv!r:.80} is not a single-tag dict")
        ((tag, v),) = tv.items()
        if tag in ("S", "N"):
            if type(v) is not str:
                raise ValueError(f"key attribute {name!r}: {tag} value {v!r:.80} is not a string")
            out.append((tag, v))
        elif tag == "B":
            out.append(("B", bytes(v)))
        else:
            raise ValueError(f"key attribute {name!r} has type {tag!r}; keys must be S, N or B")
    return tuple(out)
