"""Response bodies of the data plane, read straight from their wire bytes.

`decode_scan` turns a Scan body into the Arrow layout of `arrow_codec` (its module
docstring) without botocore: the batch is `.equals()` to `items_to_batch` of the items
botocore's parser would give, for every well-formed response (property-tested against
botocore in tests/items/test_wire_codec.py). `decode_get_records` gives a GetRecords
page with the items in botocore's form (B as bytes), as the SDK would.

Why not the SDK's parser: it walks every value through the service model's shapes,
which costs many times the whole decode here (docs/design.md, Data plane). How this is fast:

* `orjson.loads` parses the body in C, with the cyclic GC paused (`gc_pause`);
* a page whose items spell the same names in the same order is transposed into
  per-name, row-aligned columns by zip, in C; any other takes one Python loop over the
  values; the split by type tag is C-level (map/itemgetter) unless a column mixes tags;
* S, N (the exact digit string), BOOL, NULL, SS and NS go to Arrow as they are; B and
  BS are decoded per value with `binascii.a2b_base64`, the C function behind
  botocore's own blob parser (`base64.b64decode`), so lenient input decodes alike;
* M and L are written as canonical JSON by `orjson.dumps(OPT_SORT_KEYS)`, whose bytes
  equal the layout's `json.dumps(sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)` for every Unicode scalar value. Nested B/BS are base64 on the
  wire, which the layout keeps; a value that holds one is canonicalised (decoded as
  botocore decodes it and encoded again), so a server's non-standard base64 reads as
  the SDK would read it.

The accelerator: a page in the plain case (ASCII strings without escapes, standard
base64, no BS: what DynamoDB and Alternator send for most tables) is read by
`scan_columns.c` (built with the package where a C compiler is at hand) straight into
column buffers, with no Python object per value; it says None for any other page, which
then takes the Python path above. Both give equal batches (tests/items/test_wire_codec.py
runs every test on each); why C: docs/design.md, Data plane.
"""
from __future__ import annotations

import base64
import binascii
import re
from itertools import repeat
from operator import itemgetter
from typing import Any, Sequence

import numpy as np
import orjson
import pyarrow as pa

from transforms.items.arrow_codec import TAGS, assemble, child_array, child_type, struct_column
from transforms.items.ddb_json import decode_item
from transforms.items.gc_pause import gc_paused

try:
    from transforms.items._scan_columns import scan_columns as _scan_columns
except ImportError:  # installed without a C compiler: the Python path alone
    _scan_columns = None

__all__ = ["decode_scan", "decode_get_records", "wire_items_to_batch"]

_TAG_SET = frozenset(TAGS)
_NONE = type(None)
# Payload JSON types per tag: Arrow would take a str as a list of characters, orjson
# would write a str M payload as text.
_PAYLOAD_TYPES = {"S": {str, _NONE}, "N": {str, _NONE}, "B": {str, _NONE}, "BOOL": {bool, _NONE},
                  "NULL": {bool, _NONE}, "SS": {list, _NONE}, "NS": {list, _NONE}, "BS": {list, _NONE},
                  "M": {dict, _NONE}, "L": {list, _NONE}}
_SORTED = orjson.OPT_SORT_KEYS
_a2b = binascii.a2b_base64  # what base64.b64decode (botocore's blob parser) calls for a str
# Only a body that spells a "B"/"BS" key, or escapes characters (\uXXXX could spell one), can hold binary.
_MAY_HOLD_BINARY = re.compile(rb'"BS?"\s*:|\\u')


def _split_tags(cells: Sequence, n_none: int) -> dict[str, list]:
    """One attribute's cells (typed-value dicts, None where a row lacks it; `n_none` of them
    None) -> {tag: payloads}.

    Usual case, every cell has one same tag: the payloads come from a C-level
    map(itemgetter(tag)), and sum(map(len)) checks each cell has exactly one key.
    Raises ValueError for a cell that is not exactly one known tag.
    """
    present = [c for c in cells if c is not None] if n_none else cells
    first = present[0]
    if type(first) is dict and len(first) == 1:
        (tag,) = first
        if tag in _TAG_SET:
            try:
                values = list(map(itemgetter(tag), present))
            except (KeyError, TypeError):
                values = None
            if values is not None and sum(map(len, present)) == len(present):
                if n_none:
                    values = [None if c is None else c[tag] for c in cells]
                return {tag: values}
    if any(type(c) is not dict or len(c) != 1 for c in present):
        raise ValueError('a value is not a single-tag object like {"S": "x"}')
    tags = set().union(*present)
    if not tags <= _TAG_SET:
        raise ValueError(f"unknown type tag(s) {sorted(tags - _TAG_SET)}")
    return {tag: [None if c is None else c.get(tag) for c in cells] for tag in tags}


def _canonical_nested(value: Any) -> Any:
    """A nested typed value with its B/BS decoded as botocore decodes them and encoded again."""
    (tag, inner), = value.items()
    if tag == "B":
        return {"B": base64.b64encode(base64.b64decode(inner)).decode("ascii")}
    if tag == "BS":
        return {"BS": [base64.b64encode(base64.b64decode(b)).decode("ascii") for b in inner]}
    if tag == "M":
        return {"M": {k: _canonical_nested(v) for k, v in inner.items()}}
    if tag == "L":
        return {"L": [_canonical_nested(v) for v in inner]}
    return value


def _holds_binary(text: bytes) -> bool:
    return b'"B":' in text or b'"BS":' in text


def _json_child(tag: str, payloads: list) -> pa.Array:
    """M or L payloads -> their canonical JSON text (see the module docstring).

    orjson gets its option positionally: passed by keyword, it cost more than the call's own
    work (0.44 vs 0.20 us for the bench's 3-member map), and a map column costs a call a row."""
    if None in payloads:
        texts = [None if v is None else orjson.dumps(v, None, _SORTED) for v in payloads]
    else:  # one C-level map: the usual page, where every row holds the attribute
        texts = list(map(orjson.dumps, payloads, repeat(None), repeat(_SORTED)))
    if _holds_binary(b"".join(filter(None, texts))):  # texts are objects or arrays: no match across two
        texts = [text if text is None or not _holds_binary(text)
                 else orjson.dumps(_canonical_nested({tag: v})[tag], None, _SORTED) for text, v in zip(texts, payloads)]
    arr = child_array("B", texts)  # orjson writes valid UTF-8: view the bytes as text, no re-check
    return arr.view(pa.large_string() if arr.type == pa.large_binary() else pa.string())


def _child(tag: str, payloads: list) -> pa.Array:
    if not set(map(type, payloads)) <= _PAYLOAD_TYPES[tag]:
        raise ValueError(f"{tag} payload of the wrong JSON type")
    if tag == "M" or tag == "L":
        return _json_child(tag, payloads)
    if tag == "B":
        return child_array("B", [None if v is None else _a2b(v) for v in payloads])
    if tag == "BS":
        return child_array("BS", [None if v is None else [_a2b(b) for b in v] for v in payloads])
    return child_array(tag, payloads)


def _columns(items: list, n: int) -> dict[str, Sequence]:
    """Items -> {attribute name: its cells, row-aligned, None where a row lacks it}.

    A page whose items all spell the same names in the same order (a table of one shape,
    the usual case) is transposed in C by zip; any other takes the per-value loop.
    """
    if n and len(set(map(tuple, items))) == 1 and type(items[0]) is dict:
        return dict(zip(items[0], zip(*map(dict.values, items))))
    columns: dict[str, list] = {}
    get = columns.get
    for row, item in enumerate(items):  # the one per-value Python loop
        for name, value in item.items():
            cells = get(name)
            if cells is None:
                cells = columns[name] = [None] * n
            cells[row] = value
    return columns


def wire_items_to_batch(items: list) -> pa.RecordBatch:
    """Items as parsed from the wire (DynamoDB JSON, B as base64) -> RecordBatch.

    Raises ValueError for a malformed item: not a single-tag object, an unknown tag, a
    null payload or one of the wrong JSON type, bad base64. Call it with the GC paused.
    """
    n = len(items)
    try:
        columns = _columns(items, n)
    except (AttributeError, TypeError):
        raise ValueError("an item is not a JSON object") from None
    names = sorted(columns)
    arrays = []
    for name in names:
        cells = columns[name]
        try:
            n_none = cells.count(None)
            by_tag = _split_tags(cells, n_none)
            tags = [tag for tag in TAGS if tag in by_tag]
            children = [_child(tag, by_tag[tag]) for tag in tags]
        except (ValueError, TypeError, AttributeError, binascii.Error, pa.ArrowException,
                orjson.JSONEncodeError) as exc:
            raise ValueError(f"attribute {name!r}: {exc}") from None
        column, present = struct_column(children, [pa.field(tag, c.type) for tag, c in zip(tags, children)], n)
        if present != n - n_none:
            raise ValueError(f'attribute {name!r}: a null payload, like {{"S": null}}')
        arrays.append(column)
    return assemble(names, arrays, n)


def _packed(flags: bytes) -> pa.Buffer:
    """A byte a row (0 or 1) -> Arrow's bit-packed form."""
    return pa.py_buffer(np.packbits(np.frombuffer(flags, np.uint8), bitorder="little"))


def _native_child(tag: str, n: int, canonical: int, valid: bytes, offsets: bytes, data: bytes,
                  value_offsets: bytes) -> pa.Array:
    """One struct child from `scan_columns`' buffers (their layout: scan_columns.c)."""
    nulls = valid.count(0)
    bitmap = _packed(valid) if nulls else None
    if tag == "BOOL" or tag == "NULL":
        return pa.Array.from_buffers(child_type(tag), n, [bitmap, _packed(data)], null_count=nulls)
    if tag == "SS" or tag == "NS":
        list_type = child_type(tag)
        members = pa.Array.from_buffers(list_type.value_type, len(value_offsets) // 4 - 1,
                                        [None, pa.py_buffer(value_offsets), pa.py_buffer(data)])
        return pa.Array.from_buffers(list_type, n, [bitmap, pa.py_buffer(offsets)], null_count=nulls,
                                     children=[members])
    child = pa.Array.from_buffers(child_type(tag), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
                                  null_count=nulls)
    if (tag == "M" or tag == "L") and not canonical:  # texts as sent: canonicalised as the Python path does
        return _json_child(tag, [None if text is None else orjson.loads(text) for text in child.to_pylist()])
    return child


def _native_batch(n: int, children: list) -> pa.RecordBatch:
    """The batch from `scan_columns`' children, as `wire_items_to_batch` builds it."""
    by_name: dict[str, dict[str, tuple]] = {}
    for name, tag, *buffers in children:
        by_name.setdefault(name.decode("ascii"), {})[tag] = buffers
    names = sorted(by_name)
    columns = []
    for name in names:
        tags = [tag for tag in TAGS if tag in by_name[name]]
        parts = [_native_child(tag, n, *by_name[name][tag]) for tag in tags]
        columns.append(struct_column(parts, [pa.field(tag, part.type) for tag, part in zip(tags, parts)], n)[0])
    return assemble(names, columns, n)


def _read_scan(body: bytes) -> tuple[pa.RecordBatch, dict]:
    """The page's batch and the rest of its response: by the accelerator where it can read
    the page, else (or where a text it kept as sent does not parse) by the Python path,
    which raises the proper error."""
    found = _scan_columns(body) if _scan_columns is not None else None
    if found is not None:
        n, start, end, children = found
        try:
            batch = _native_batch(n, children)
        except (ValueError, orjson.JSONDecodeError):
            pass
        else:
            return batch, orjson.loads(body[:start] + b"null" + body[end:] if start >= 0 else body)
    response = orjson.loads(body)
    if type(response) is not dict:
        raise ValueError("the response is not a JSON object")
    items = response.get("Items") or []
    if type(items) is not list:
        raise ValueError("the response's Items is not a JSON array")
    return wire_items_to_batch(items), response


def decode_scan(body: bytes) -> tuple[pa.RecordBatch, dict]:
    """A Scan (or Query) response body -> (its items as a batch, the rest of the response).

    The rest holds Count, ScannedCount and ConsumedCapacity as sent, and
    LastEvaluatedKey in botocore's form (B as bytes), as the SDK gives it.
    """
    with gc_paused():
        batch, response = _read_scan(body)
    response.pop("Items", None)
    if response.get("LastEvaluatedKey") is not None:
        response["LastEvaluatedKey"] = decode_item(response["LastEvaluatedKey"])
    return batch, response


def decode_get_records(body: bytes) -> dict:
    """A GetRecords response body -> the page as botocore parses it, except that
    ApproximateCreationDateTime stays epoch seconds (botocore makes it a datetime).

    Keys, NewImage and OldImage are items in botocore's form (B as bytes); they are
    walked for binary values only when the body can hold one at all.
    """
    with gc_paused():
        page = orjson.loads(body)
        if _MAY_HOLD_BINARY.search(body):
            for record in page.get("Records") or ():
                change = record.get("dynamodb") or {}
                for image in ("Keys", "NewImage", "OldImage"):
                    if image in change:
                        change[image] = decode_item(change[image])
    page.setdefault("Records", [])
    return page
