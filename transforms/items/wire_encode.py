"""BatchWriteItem request bodies, written straight from Arrow batches or request dicts.

A body is built from per-request JSON texts (`rows`), so a writer can route, chunk and
re-chunk requests (a batch split to isolate an invalid item, UnprocessedItems sent
again) without encoding anything twice:

* `put_rows(batch)`: one `{"PutRequest":{"Item":{...}}}` text per row of a batch in
  the `arrow_codec` layout, assembled by Arrow compute kernels, one column and type
  tag at a time. No Python code touches a value, except strings that need JSON
  escaping beyond their quotes (`"`, `\\`, control characters: orjson escapes just
  those) and B/BS values (base64, per value with `binascii`, in C). M/L texts are
  canonical DynamoDB JSON already and are put in as they are.
* `request_row(request)`: the text of one request dict in botocore's form (B as
  bytes), by `orjson` in one C call: stream windows and repairs, which come as dicts.

Both write compact UTF-8 JSON; botocore sends ASCII with `\\uXXXX` escapes and
spaces. The two parse to the same request (tests/items/test_wire_codec.py), which is
all the DynamoDB API reads. `request_of(row)` turns a text back into botocore's form,
for dead letters.

A pyarrow 25 bug shapes `_members`: `binary_join_element_wise(...,
null_handling="skip")` drops rows whose inputs are all null (its output is shorter
than its input), which would merge an item without attributes into its neighbour.
"""
from __future__ import annotations

import base64
import binascii
from typing import Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from transforms.items.ddb_json import decode_item

__all__ = ["put_rows", "item_texts", "request_row", "batch_write_body", "request_of"]

_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what JSON must escape in a string, besides nothing else (RE2)
_join = pc.binary_join_element_wise


def _as_text(arr: pa.Array) -> pa.Array:
    return arr.view(pa.large_string() if pa.types.is_large_binary(arr.type) else pa.string())


def _base64(blobs: pa.Array) -> pa.Array:
    """Standard padded base64 of each binary value (null stays null)."""
    b2a = binascii.b2a_base64
    return _as_text(pa.array([None if v is None else b2a(v, newline=False) for v in blobs.to_pylist()],
                             pa.binary()))


def _quoted(strings: pa.Array) -> pa.Array:
    """The JSON string literal of each value, escaped as orjson escapes it; null stays null."""
    quoted = _join('"', strings, '"', "")
    needs = pc.match_substring_regex(strings, _NEEDS_ESCAPE)
    if needs.null_count:
        needs = needs.fill_null(False)
    if pc.any(needs).as_py():
        escaped = [orjson.dumps(s) for s in strings.filter(needs).to_pylist()]
        quoted = pc.replace_with_mask(quoted, needs, _as_text(pa.array(escaped, pa.binary())))
    return quoted


def _map_elements(lists: pa.Array, fn) -> pa.Array:
    """Apply an array -> array function to the elements of a (possibly sliced, nullable) list array."""
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    offsets = pa.array(np.concatenate(([0], np.cumsum(lengths))).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, fn(pc.list_flatten(lists)),
                                    mask=lists.is_null() if lists.null_count else None)


def _set_text(lists: pa.Array, element_text) -> pa.Array:
    """'["a","b"]' per list ('[]' for an empty one); null stays null."""
    return _join("[", pc.binary_join(_map_elements(lists, element_text), ","), "]", "")


def _value_text(tag: str, child: pa.Array) -> pa.Array:
    """The JSON text of each payload of one type tag's child."""
    if tag == "S" or tag == "N":
        return _quoted(child)
    if tag == "B":
        return _join('"', _base64(child), '"', "")
    if tag == "BOOL" or tag == "NULL":
        return pc.if_else(child, "true", "false")
    if tag == "SS" or tag == "NS":
        return _set_text(child, _quoted)
    if tag == "BS":
        return _set_text(child, lambda blobs: _join('"', _base64(blobs), '"', ""))
    if tag == "M" or tag == "L":
        return child
    raise ValueError(f"unknown type tag {tag!r}")


def _members(batch: pa.RecordBatch) -> pa.Array:
    """'"a":{"S":"x"},"b":{...}' per row: every attribute the row holds."""
    texts = []
    for name, column in zip(batch.schema.names, batch.columns):
        prefix = "," + orjson.dumps(name).decode() + ':{"'
        parts = []
        for index, child in enumerate(column.flatten()):  # flatten folds the struct's nulls in
            if child.null_count == len(child):
                continue
            tag = column.type.field(index).name
            parts.append(_join(prefix + tag + '":', _value_text(tag, child), "}", ""))
        if parts:
            texts.append(parts[0] if len(parts) == 1 else pc.coalesce(*parts))
    if not texts:
        return pa.array([""] * batch.num_rows, pa.string())
    # Each member starts with ','; an absent one is ''; then the first ',' goes.
    joined = _join(*texts, "", null_handling="replace", null_replacement="")
    return pc.utf8_slice_codeunits(joined, 1)


def item_texts(batch: pa.RecordBatch) -> pa.Array:
    """The DynamoDB JSON text of every row's item, as a string array (B as base64, N as its digits)."""
    return _join("{", _members(batch), "}", "")


def put_rows(batch: pa.RecordBatch) -> list[bytes]:
    """The PutRequest text of every row of a batch (the `arrow_codec` layout)."""
    puts = _join('{"PutRequest":{"Item":{', _members(batch), "}}}", "")
    return puts.cast(pa.large_binary() if pa.types.is_large_string(puts.type) else pa.binary()).to_pylist()


def _base64_default(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write a {type(value).__name__} in a request")


def request_row(request: dict) -> bytes:
    """The text of a request dict in botocore's form: {"PutRequest": {"Item": ...}} or
    {"DeleteRequest": {"Key": ...}}, B values as bytes."""
    return orjson.dumps(request, default=_base64_default)


def batch_write_body(table: str, rows: Sequence[bytes]) -> bytes:
    """A BatchWriteItem body writing `rows` (request texts) to `table`."""
    return b'{"RequestItems":{' + orjson.dumps(table) + b":[" + b",".join(rows) + b"]}}"


def request_of(row: bytes | dict) -> dict:
    """A request text (or a request parsed from the wire) in botocore's form, B as bytes."""
    request = orjson.loads(row) if isinstance(row, (bytes, str)) else row
    if "PutRequest" in request:
        return {"PutRequest": {"Item": decode_item(request["PutRequest"]["Item"])}}
    return {"DeleteRequest": {"Key": decode_item(request["DeleteRequest"]["Key"])}}
