"""DynamoDB's size of an item, as it counts it against its 400 KB item limit.

Alternator does not enforce that limit (ScyllaDB's test/alternator/test_item.py: "Alternator
currently does *not* have these limitations"), so an item written to Alternator after a
cutover can be one DynamoDB refuses; the way back must know before it sends it. No library
counts this (boto3 and botocore do not), hence our own.

The count (AWS developer guide, "DynamoDB item sizes and formats",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html,
and "Constraints", .../developerguide/Constraints.html: "The maximum item size in DynamoDB is
400 KB, which includes both attribute name binary length (UTF-8 length) and attribute value
lengths", its example of 23 bytes, and 1 KB = 1024 bytes):

- an attribute is its name's UTF-8 bytes plus its value's size;
- S: UTF-8 bytes; B: raw bytes (not base64); BOOL and NULL: 1 byte;
- SS, NS, BS: the sum of their members' sizes;
- L and M: 3 bytes, plus per element 1 byte ("Each List or Map element also requires 1 byte
  of overhead") and its size (for M, with its name's bytes);
- N: the guide says "approximately 1 byte per two significant digits + 1 byte". DynamoDB
  Local counts exactly what base-100 storage takes: the pairs of digits, aligned at the
  decimal point, from the first significant one to the last, plus 1 byte, plus 1 more for a
  negative number ("1.5" is 3 bytes, "15" is 2, "-1" is 3). That is what is counted here,
  checked at the limit's edge against DynamoDB Local (tests/items/test_item_size.py).

An item's DynamoDB JSON text is never shorter than this size (every name is quoted and
every value tagged; base64 is longer than its bytes; a number's text is at least as long
as its size less 2, which its quotes and tag outweigh), so a row whose text fits needs no
count: only the rare long ones are walked.
"""
from __future__ import annotations

import decimal
from typing import Mapping, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from transforms.items.arrow_codec import batch_to_items
from transforms.settings import MAX_ITEM_BYTES

__all__ = ["MAX_ITEM_BYTES", "item_size", "number_size", "oversized_rows", "oversized_puts"]



def number_size(text: str) -> int:
    """The bytes DynamoDB counts for a number (see the module docstring)."""
    sign, digits, exponent = decimal.Decimal(text).as_tuple()
    count = len(digits)  # Decimal keeps no leading zeros, but trailing ones (1.50): not stored
    while count and digits[count - 1] == 0:
        count -= 1
        exponent += 1
    if count == 0:
        return 1  # zero
    highest = exponent + count - 1  # the powers of ten of the first and last significant digits
    return highest // 2 - exponent // 2 + 1 + 1 + sign


def _binary_size(value) -> int:
    """Raw bytes of a B value: bytes (botocore's form) or base64 text (DynamoDB JSON)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return len(value.rstrip("=")) * 3 // 4


def _value_size(value: Mapping) -> int:
    (tag, inner), = value.items()
    if tag == "S":
        return len(inner.encode("utf-8"))
    if tag == "N":
        return number_size(inner)
    if tag == "B":
        return _binary_size(inner)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(member.encode("utf-8")) for member in inner)
    if tag == "NS":
        return sum(number_size(member) for member in inner)
    if tag == "BS":
        return sum(_binary_size(member) for member in inner)
    if tag == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    if tag == "M":
        return 3 + sum(1 + len(name.encode("utf-8")) + _value_size(element) for name, element in inner.items())
    raise ValueError(f"not a DynamoDB type tag: {tag!r}")


def item_size(item: Mapping[str, Mapping]) -> int:
    """The bytes DynamoDB counts for an item (botocore's form, or DynamoDB JSON with B as base64)."""
    return sum(len(name.encode("utf-8")) + _value_size(value) for name, value in item.items())


def _lengths(array: pa.Array) -> np.ndarray:
    return pc.binary_length(array).fill_null(0).to_numpy()


def _bound(batch: pa.RecordBatch) -> np.ndarray:
    """Per row, at least the item's size: every column's name, and per type child its value's
    bytes with room to spare (S, B: their bytes + 3; N: its text + 3; M, L: their JSON text
    + 3, see the module docstring; BOOL, NULL: 1; a set: its members' bytes + 2 each). A
    row without the attribute gets the spare bytes too: a bound, not a size."""
    bound = np.zeros(batch.num_rows, np.int64)
    for name, column in zip(batch.schema.names, batch.columns):
        bound += len(name.encode("utf-8"))
        for field in column.type:
            child = column.field(field.name)
            if pa.types.is_boolean(field.type):
                bound += 1
            elif pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
                members = np.concatenate(([0], np.cumsum(_lengths(child.values) + 2)))
                offsets = child.offsets.to_numpy()  # into the unsliced values, as `members` is
                bound += members[offsets[1:]] - members[offsets[:-1]]
            else:
                bound += _lengths(child) + 3
    return bound


def oversized_rows(batch: pa.RecordBatch, limit: int = MAX_ITEM_BYTES) -> list[int]:
    """Rows of a page (the `arrow_codec` layout) whose item DynamoDB would count over `limit`.

    A bound per row from the columns' byte lengths (`_bound`) finds the few candidates; only
    those are decoded and counted exactly, so a page of ordinary items costs a few Arrow
    kernels a column.
    """
    if batch.num_rows == 0 or batch.num_columns == 0:
        return []
    candidates = np.flatnonzero(_bound(batch) > limit)
    if not len(candidates):
        return []
    items = batch_to_items(batch.take(pa.array(candidates)))
    return [int(row) for row, item in zip(candidates, items) if item_size(item) > limit]


def oversized_puts(rows: Sequence[bytes], limit: int = MAX_ITEM_BYTES) -> dict[int, int]:
    """Of request texts ({"PutRequest": {"Item": ...}} or a delete), the puts over `limit`: {index: size}."""
    sizes = {}
    for i, row in enumerate(rows):
        if len(row) > limit and row.startswith(b'{"PutRequest"'):
            size = item_size(orjson.loads(row)["PutRequest"]["Item"])
            if size > limit:
                sizes[i] = size
    return sizes
