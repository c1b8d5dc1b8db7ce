"""Item digests and attribute-level diffs.

Content follows DynamoDB's idea of equality: numbers compare by value (`1`, `1.0`,
`1E0` are equal; exact decimals, never floats), SS/NS/BS as sets, M as maps, L in order,
B byte for byte, and a type change (S "1" vs N "1") is a difference. Two items are equal
exactly when their content digests are equal (up to a 128-bit hash collision).

Keys are identities, not values: Alternator does not normalise numbers in keys, so
`N "1"` and `N "1.0"` are two items there. A key digest is over the exact type tag and
text (or bytes) as stored.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

from transforms.items.numbers import canonical_number

_SEPARATOR = b"\x1f"


def _canonical(value: dict) -> bytes:
    (tag, inner), = value.items()
    if tag == "S":
        body = inner.encode("utf-8")
    elif tag == "N":
        body = canonical_number(inner).encode("ascii")
    elif tag == "B":
        body = bytes(inner)
    elif tag in ("BOOL", "NULL"):
        body = b"1" if inner else b"0"
    elif tag == "SS":
        body = _join(sorted(_escaped(s.encode("utf-8")) for s in inner))
    elif tag == "NS":
        body = _join(sorted(canonical_number(n).encode("ascii") for n in inner))
    elif tag == "BS":
        body = _join(sorted(_escaped(bytes(b)) for b in inner))
    elif tag == "M":
        body = _join(_escaped(k.encode("utf-8")) + b"=" + _escaped(_canonical(v)) for k, v in sorted(inner.items()))
    elif tag == "L":
        body = _join(_escaped(_canonical(v)) for v in inner)
    else:
        raise ValueError(f"unknown DynamoDB type tag {tag!r}")
    return tag.encode("ascii") + b":" + body


def _escaped(raw: bytes) -> bytes:
    """Length-prefixed, so no member's bytes can fake a separator."""
    return str(len(raw)).encode("ascii") + b"#" + raw


def _join(parts) -> bytes:
    return _SEPARATOR.join(parts)


def _hash(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


def content_digest(item: dict) -> bytes:
    return _hash(_join(_escaped(name.encode("utf-8")) + b"=" + _escaped(_canonical(value))
                       for name, value in sorted(item.items())))


def _exact(value: dict) -> bytes:
    (tag, inner), = value.items()
    return tag.encode("ascii") + b":" + (bytes(inner) if tag == "B" else inner.encode("utf-8"))


def key_digest(key: dict, key_names: Sequence[str]) -> bytes:
    """A digest of the key exactly as stored (see the module docstring)."""
    return _hash(_join(_escaped(_exact(key[name])) for name in key_names))


def attribute_diff(source: dict, target: dict, prefix: str = "") -> list[dict]:
    """Where two items differ, per attribute path ('address.city', 'tags', 'list[2]').

    Each entry: {"path": ..., "source": <value or None>, "target": <value or None>}; a
    None side means the attribute is absent there.
    """
    diffs = []
    for name in sorted(set(source) | set(target)):
        path = f"{prefix}.{name}" if prefix else name
        diffs.extend(_value_diff(source.get(name), target.get(name), path))
    return diffs


def _value_diff(a: dict | None, b: dict | None, path: str) -> list[dict]:
    if a is not None and b is not None:
        (tag_a, inner_a), = a.items()
        (tag_b, inner_b), = b.items()
        if tag_a == tag_b == "M":
            return attribute_diff(inner_a, inner_b, path)
        if tag_a == tag_b == "L" and len(inner_a) == len(inner_b):
            return [d for i, (x, y) in enumerate(zip(inner_a, inner_b)) for d in _value_diff(x, y, f"{path}[{i}]")]
        if _canonical(a) == _canonical(b):
            return []
    elif a is None and b is None:
        return []
    return [{"path": path, "source": a, "target": b}]
