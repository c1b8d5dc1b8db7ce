"""Item digests and attribute-level diffs.

Content follows DynamoDB's idea of equality: numbers compare by value (`1`, `1.0`,
`1E0` are equal; exact decimals, never floats), SS/NS/BS as sets, M as maps, L in order,
B byte for byte, and a type change (S "1" vs N "1") is a difference. Two items are equal
exactly when their content digests are equal (up to a 128-bit hash collision).

The canonical form hashed: per attribute, sorted by name, its length-prefixed name and
value; a value is its type tag and its bytes, numbers normalised, set members sorted. An
M or L value is its canonical JSON text (the `arrow_codec` layout's: keys sorted, nested
B as standard base64) with every nested number normalised; one holding a set is taken
apart member by member instead. Equal values have equal texts, and a text never looks
like the taken-apart form (which starts with a digit, the text with '=').

Keys are identities, not values: Alternator does not normalise numbers in keys, so
`N "1"` and `N "1.0"` are two items there. A key digest is over the exact type tag and
text (or bytes) as stored.

`page_digests` gives the same digests for every row of an Arrow batch without decoding
it into items: each column's canonical parts are built by Arrow kernels, one type tag
at a time (numbers in their canonical spelling and nested values without sets or odd
numbers need no Python), and Python only hashes one byte string per row. Validation
digests every item of both tables, so this is its cost per item.
"""
from __future__ import annotations

import base64
import hashlib
import re
from typing import Callable, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from transforms.items.arrow_codec import canonical_json
from transforms.items.numbers import canonical_number

__all__ = ["content_digest", "key_digest", "attribute_diff", "page_digests", "key_texts", "distinct_keys",
           "text_digest"]

_SEPARATOR = b"\x1f"
# Number spellings that are their own canonical form (see numbers.canonical_number): no
# sign but "-", no leading or trailing zeros, no exponent, not so small that Decimal
# writes an exponent (at most 5 zeros after "0."), and at most 59 digits (Decimal keeps 60).
_CANONICAL_NUMBER = (r"(0|-?[1-9]([0-9]{0,57}[1-9])?|-?[1-9][0-9]{0,28}\.[0-9]{0,28}[1-9]"
                     r"|-?0\.0{0,5}[1-9]([0-9]{0,50}[1-9])?)")
_SET_IN_TEXT = r'"(SS|NS|BS)":'
_set_in_text = re.compile(_SET_IN_TEXT)
_number_in_text = re.compile(r'"N":"([^"]*)"')


def _nested(tag: str, text: str) -> bytes:
    """The canonical bytes of an M or L value from its canonical JSON text (see the module docstring)."""
    if _set_in_text.search(text):
        return _canonical({tag: orjson.loads(text)}, base64.b64decode, taken_apart=True)
    text = _number_in_text.sub(lambda m: '"N":"' + canonical_number(m.group(1)) + '"', text)
    return tag.encode("ascii") + b":=" + text.encode("utf-8")


def _canonical(value: dict, blob: Callable[[object], bytes] = bytes, taken_apart: bool = False) -> bytes:
    """The canonical bytes of a typed value; `blob` reads a B payload (base64.b64decode for
    values parsed from DynamoDB JSON, where B is base64 text)."""
    (tag, inner), = value.items()
    if tag == "S":
        body = inner.encode("utf-8")
    elif tag == "N":
        body = canonical_number(inner).encode("ascii")
    elif tag == "B":
        body = blob(inner)
    elif tag in ("BOOL", "NULL"):
        body = b"1" if inner else b"0"
    elif tag == "SS":
        body = _join(sorted(_escaped(s.encode("utf-8")) for s in inner))
    elif tag == "NS":
        body = _join(sorted(canonical_number(n).encode("ascii") for n in inner))
    elif tag == "BS":
        body = _join(sorted(_escaped(blob(b)) for b in inner))
    elif tag in ("M", "L") and not taken_apart:
        return _nested(tag, canonical_json(inner))  # B bytes are written as base64, as in the layout
    elif tag == "M":
        body = _join(_escaped(k.encode("utf-8")) + b"=" + _escaped(_canonical(v, blob))
                     for k, v in sorted(inner.items()))
    elif tag == "L":
        body = _join(_escaped(_canonical(v, blob)) for v in inner)
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


def text_digest(text: bytes) -> bytes:
    """The digest of a `key_texts` entry: equal to `key_digest` of that key."""
    return _hash(text)


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


# --------------------------------------------------------------------------
# Whole batches (the arrow_codec layout), column by column
# --------------------------------------------------------------------------

_BINARY = pa.binary()


def _bytes(arr: pa.Array) -> pa.Array:
    """A string or binary array viewed as binary (no copy)."""
    if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type):
        return arr.cast(pa.large_binary())
    return arr.cast(_BINARY)


def _lengths(body: pa.Array, extra: int) -> pa.Array:
    """The decimal text of each value's length plus `extra`."""
    return pc.cast(pc.cast(pc.add(pc.binary_length(body), extra), pa.string()), _BINARY)


def _part(label: bytes, tag: str, body: pa.Array) -> pa.Array:
    """label + _escaped(tag:body) for every value (null where the row has no such value)."""
    prefix = tag.encode("ascii") + b":"
    return pc.binary_join_element_wise(label, _lengths(body, len(prefix)), b"#" + prefix, _bytes(body), b"")


def _numbers(numbers: pa.Array) -> pa.Array:
    """canonical_number of every value; the spellings that are canonical already stay as they are."""
    plain = pc.match_substring_regex(numbers, "^" + _CANONICAL_NUMBER + "$").fill_null(True)
    if pc.all(plain).as_py():
        return numbers
    others = pc.invert(plain)
    normalised = [canonical_number(n) for n in numbers.filter(others).to_pylist()]
    return pc.replace_with_mask(numbers, others, pa.array(normalised, numbers.type))


def _nested_parts(label: bytes, tag: str, texts: pa.Array) -> pa.Array:
    """The parts of M or L values: their text as it is, unless it holds a set or a number
    that is not in its canonical spelling (those rows go through `_nested`)."""
    numbers = pc.count_substring(texts, '"N":"')
    canonical_numbers = pc.count_substring_regex(texts, '"N":"' + _CANONICAL_NUMBER + '"')
    odd = pc.or_(pc.match_substring_regex(texts, _SET_IN_TEXT),
                 pc.not_equal(numbers, canonical_numbers)).fill_null(False)
    parts = _part(label, tag, pc.binary_join_element_wise(b"=", _bytes(texts), b""))
    if not pc.any(odd).as_py():
        return parts
    fixed = [None if text is None else label + _escaped(_nested(tag, text))
             for text in texts.filter(odd).to_pylist()]
    return pc.replace_with_mask(parts, odd, pa.array(fixed, parts.type))


def _column_parts(name: str, column: pa.StructArray, exact: bool) -> pa.Array:
    """Per row: separator + escaped name + '=' + escaped canonical value; null where absent.
    `exact`: the key form instead (separator + escaped type tag and text or bytes as stored)."""
    label = _SEPARATOR if exact else _SEPARATOR + _escaped(name.encode("utf-8")) + b"="
    parts = []
    for index, child in enumerate(column.flatten()):
        if child.null_count == len(child):
            continue
        tag = column.type.field(index).name
        if exact and tag not in ("S", "N", "B"):
            raise ValueError(f"key attribute {name!r} has type {tag!r}; keys must be S, N or B")
        if tag in ("S", "B") or exact:
            parts.append(_part(label, tag, child))
        elif tag == "N":
            parts.append(_part(label, tag, _numbers(child)))
        elif tag in ("BOOL", "NULL"):
            yes, no = (label + _escaped(tag.encode("ascii") + b":" + flag) for flag in (b"1", b"0"))
            parts.append(pc.if_else(child, pa.scalar(yes, _BINARY), pa.scalar(no, _BINARY)))
        elif tag in ("M", "L"):
            parts.append(_nested_parts(label, tag, child))
        else:  # sets: members sorted, in Python
            parts.append(pa.array([None if v is None else label + _escaped(_canonical({tag: v}))
                                   for v in child.to_pylist()], _BINARY))
    if not parts:
        return pa.nulls(len(column), _BINARY)
    return parts[0] if len(parts) == 1 else pc.coalesce(*parts)


def _joined(parts: list[pa.Array], n: int) -> pa.Array:
    """Per row, its parts joined; each part, so each row, starts with the separator."""
    if not parts:
        return pa.array([_SEPARATOR] * n, _BINARY)
    # Not null_handling="skip": in pyarrow 25 it drops rows whose parts are all null.
    return pc.binary_join_element_wise(*parts, b"", null_handling="replace", null_replacement=b"")


def _unprefixed(joined: pa.Array) -> list[bytes]:
    return [row[1:] for row in joined.to_pylist()]  # (pc.binary_slice fails on some inputs in pyarrow 25)


def _keys_joined(batch: pa.RecordBatch, key_names: Sequence[str]) -> pa.Array:
    columns = dict(zip(batch.schema.names, batch.columns))
    parts = []
    for name in key_names:
        column = columns.get(name)
        if column is None or column.null_count:
            raise ValueError(f"an item has no key attribute {name!r}")
        parts.append(_column_parts(name, column, exact=True))
    return _joined(parts, batch.num_rows)


def key_texts(batch: pa.RecordBatch, key_names: Sequence[str]) -> list[bytes]:
    """Per row, the exact text of its key (what `key_digest` hashes): equal texts, same key."""
    return _unprefixed(_keys_joined(batch, key_names)) if batch.num_rows else []


def distinct_keys(batch: pa.RecordBatch, key_names: Sequence[str]) -> int:
    """How many different keys the rows hold (counted in C)."""
    return pc.count_distinct(_keys_joined(batch, key_names)).as_py() if batch.num_rows else 0


def page_digests(batch: pa.RecordBatch, key_names: Sequence[str]) -> tuple[list[bytes], list[bytes]]:
    """(key digests, content digests) of every row: `key_digest` and `content_digest` of its item."""
    names = batch.schema.names
    order = sorted(range(len(names)), key=names.__getitem__)
    contents = _unprefixed(_joined([_column_parts(names[i], batch.column(i), exact=False) for i in order],
                                   batch.num_rows))
    return [_hash(t) for t in key_texts(batch, key_names)], [_hash(c) for c in contents]
