"""Lossless codec between DynamoDB items (botocore low-level form) and Arrow.

Items travel between pipeline stages as ``pyarrow.RecordBatch`` so that Beam
moves a few large buffers instead of millions of small Python dicts. This module
is on the hot path of every migration, so the work is column-wise wherever
Arrow can do it.

Item form (what aiobotocore's Scan returns and BatchWriteItem takes)::

    {"pk": {"S": "x"}, "n": {"N": "12.50"}, "b": {"B": b"\\x00raw"},
     "m": {"M": {"k": {"S": "v"}}}, "l": {"L": [{"N": "1"}]}, ...}

Batch layout (a design decision other stages rely on; keep it):

* One column per top-level attribute name present in any item of the batch,
  columns sorted by name so equal inputs give equal schemas.
* Each column is a struct with one child per DynamoDB type tag that occurs in
  that column *in this batch*, children in the fixed order of ``TAGS``::

      S -> string    N -> string (exact digit string, never a float)
      B -> binary    BOOL -> bool    NULL -> bool
      SS -> list<string>   NS -> list<string>   BS -> list<binary>
      M -> string    L -> string

  M and L hold canonical compact JSON (sorted keys, no whitespace, UTF-8) of
  the nested value in DynamoDB JSON, with nested B / BS values base64-encoded.
  string/binary become large_string/large_binary only when a column would
  overflow 2 GiB of character data.
* An item that lacks the attribute has a null struct slot; within a non-null
  slot exactly one child is non-null.

Round trip guarantees: type tags, digit strings, bytes (NUL, empty), empty
strings, 32 levels of nesting, order of SS/NS/BS/L elements and map keys are
preserved.  Map key *order* inside M is canonicalised (sorted), which dict
equality -- and DynamoDB, whose maps are unordered -- does not observe.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from transforms.items.gc_pause import gc_paused


__all__ = [
    "TAGS",
    "items_to_batch",
    "batch_to_items",
    "child_type",
    "child_array",
    "struct_column",
    "assemble",
    "canonical_json",
]

#: DynamoDB type tags in the order their struct children appear.
TAGS: tuple[str, ...] = ("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "M", "L")
_TAG_SET = frozenset(TAGS)

# (normal type, fallback used only if the column overflows 32-bit offsets)
_ARROW_TYPES: dict[str, tuple[pa.DataType, pa.DataType]] = {
    "S": (pa.string(), pa.large_string()),
    "N": (pa.string(), pa.large_string()),
    "B": (pa.binary(), pa.large_binary()),
    "BOOL": (pa.bool_(), pa.bool_()),
    "NULL": (pa.bool_(), pa.bool_()),
    "SS": (pa.list_(pa.string()), pa.list_(pa.large_string())),
    "NS": (pa.list_(pa.string()), pa.list_(pa.large_string())),
    "BS": (pa.list_(pa.binary()), pa.list_(pa.large_binary())),
    "M": (pa.string(), pa.large_string()),
    "L": (pa.string(), pa.large_string()),
}

_EMPTY_BATCH = pa.RecordBatch.from_arrays([], names=[])


_GC_PAUSE_MIN_ROWS = 256


# --------------------------------------------------------------------------
# Nested (M / L) values <-> canonical JSON text
# --------------------------------------------------------------------------

def _json_default(obj: Any) -> str:
    """Base64 nested B/BS members; called by the C encoder only for bytes."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(obj).decode("ascii")
    raise TypeError(f"unsupported nested value of type {type(obj).__name__}")


# sort_keys + compact separators => canonical text (same map, same bytes), so
# batches built from equal items are equal and can be compared column-wise.
_json_encoder = json.JSONEncoder(
    separators=(",", ":"),
    sort_keys=True,
    ensure_ascii=False,
    allow_nan=False,
    default=_json_default,
)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring = getattr(json.encoder, "c_encode_basestring", None)

if _c_make_encoder is not None and _c_encode_basestring is not None:
    # JSONEncoder.encode() builds a fresh C encoder on every call; building it
    # once halves the cost per nested value. markers=None skips the cycle
    # check: DynamoDB JSON from botocore is a tree, and a cycle still ends in
    # RecursionError.  Same settings as _json_encoder above.
    _c_encoder = _c_make_encoder(
        None,  # markers
        _json_default,
        _c_encode_basestring,  # ensure_ascii=False
        None,  # indent
        ":",  # key separator
        ",",  # item separator
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )

    def canonical_json(value: Any, _enc=_c_encoder, _join="".join) -> str:
        return _join(_enc(value, 0))

else:  # pragma: no cover - interpreters without the _json accelerator
    canonical_json = _json_encoder.encode


_LEAF_TAGS = frozenset(("S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"))


_BYTES = (bytes, bytearray, memoryview)


def _payload_ok(tag: str, v: Any) -> bool:
    """Whether a non-nested payload has the Python type its tag needs (Arrow and JSON would
    otherwise convert a wrong one silently: str for B becomes its UTF-8 bytes, and so on)."""
    if tag == "S" or tag == "N":
        return type(v) is str
    if tag == "B":
        return isinstance(v, _BYTES)
    if tag == "BOOL" or tag == "NULL":
        return type(v) is bool
    if tag == "SS" or tag == "NS":
        return type(v) is list and all(type(x) is str for x in v)
    if tag == "BS":
        return type(v) is list and all(isinstance(x, _BYTES) for x in v)
    return True  # M / L are walked by the caller


def _walk_nested(values: Any) -> None:
    """Fast check of nested values: each a known single-tag dict with a payload of the
    right type. ``values`` is an M body's .values() or an L list. Failures are
    re-explained with detail by _check_nested on the slow path.
    """
    for value in values:
        if type(value) is not dict or len(value) != 1:
            raise ValueError("nested value is not a single-tag dict")
        for tag in value:
            x = value[tag]
            if tag in _LEAF_TAGS:
                if not _payload_ok(tag, x):
                    raise ValueError(f"nested {tag} payload has the wrong type")
                break
            if tag == "M":
                if type(x) is not dict:
                    raise ValueError("nested M value is not a dict")
                for key in x:  # JSON would silently turn 1 into "1"
                    if type(key) is not str:
                        raise ValueError(f"nested M key {key!r} is not a string")
                _walk_nested(x.values())
            elif tag == "L":
                if type(x) is not list:
                    raise ValueError("nested L value is not a list")
                _walk_nested(x)
            else:
                raise ValueError(f"nested value has unknown type tag {tag!r}")


def _check_nested(value: Any, depth: int = 0) -> None:
    """Validate a nested DynamoDB value; slow path used only to explain errors."""
    if depth > 500:
        raise ValueError("nesting deeper than 500 levels")
    if type(value) is not dict or len(value) != 1:
        raise ValueError(f"nested value {value!r:.80} is not a single-tag dict")
    ((tag, v),) = value.items()
    if tag not in _TAG_SET:
        raise ValueError(f"nested value has unknown type tag {tag!r}")
    if tag == "M":
        if not isinstance(v, dict):
            raise ValueError("nested M value is not a dict")
        for k, sub in v.items():
            if not isinstance(k, str):
                raise ValueError(f"nested M key {k!r} is not a string")
            _check_nested(sub, depth + 1)
    elif tag == "L":
        if not isinstance(v, list):
            raise ValueError("nested L value is not a list")
        for sub in v:
            _check_nested(sub, depth + 1)
    else:
        _check_scalar(tag, v)


def _check_scalar(tag: str, v: Any) -> None:
    """Validate a non-nested payload (slow path, for error messages)."""
    if not _payload_ok(tag, v):
        raise ValueError(f"{tag} payload {v!r:.80} has wrong type {type(v).__name__}")


def _b64_hook(d: dict) -> Any:
    """json object_hook: turn nested {"B": b64} / {"BS": [b64..]} back to bytes.

    Unambiguous because every other dict in DynamoDB JSON is either a typed
    value with a non-B tag or a map body whose values are dicts, never str.
    """
    if len(d) == 1:
        v = d.get("B")
        if v is not None and type(v) is str:
            return {"B": base64.b64decode(v, validate=True)}
        v = d.get("BS")
        if v is not None and type(v) is list:
            return {"BS": [base64.b64decode(x, validate=True) for x in v]}
    return d


_plain_decoder = json.JSONDecoder()
_b64_decoder = json.JSONDecoder(object_hook=_b64_hook)
# JSONDecoder.decode() runs two whitespace regexes around the C scanner; our
# texts are compact, so call the scanner directly and fall back to decode()
# (which raises a proper error) for anything else.
_scan_plain = _plain_decoder.scan_once
_scan_b64 = _b64_decoder.scan_once


def _decode_json(text: str) -> Any:
    # Only pay for the Python object_hook when the text can contain B/BS.
    if '"B":' in text or '"BS":' in text:
        scan, decoder = _scan_b64, _b64_decoder
    else:
        scan, decoder = _scan_plain, _plain_decoder
    try:
        value, end = scan(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return decoder.decode(text)
    return value


# --------------------------------------------------------------------------
# Encode
# --------------------------------------------------------------------------

def child_type(tag: str) -> pa.DataType:
    """The Arrow type of a tag's struct child (below 2 GiB of text a column)."""
    return _ARROW_TYPES[tag][0]


def child_array(tag: str, values: list) -> pa.Array:
    """One struct child from its payloads (None where absent); large_* only on 2 GiB overflow."""
    typ, large = _ARROW_TYPES[tag]
    arr = pa.array(values, type=typ)
    if isinstance(arr, pa.ChunkedArray):  # pa.array splits on offset overflow
        arr = pa.array(values, type=large)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
    return arr


def _explain_invalid(items: Sequence[dict]) -> None:
    """Slow path: find the first invalid attribute and raise ValueError for it."""
    for idx, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"item {idx} is not a dict: {type(item).__name__}")
        for name, tv in item.items():
            if not isinstance(name, str):
                raise ValueError(f"item {idx}: attribute name {name!r} is not a string")
            if type(tv) is not dict or len(tv) != 1:
                raise ValueError(
                    f"item {idx}: attribute {name!r}: value {tv!r:.80} is not a "
                    "single-tag dict like {'S': 'x'}"
                )
            ((tag, v),) = tv.items()
            if tag not in _TAG_SET:
                raise ValueError(
                    f"item {idx}: attribute {name!r}: unknown type tag {tag!r}"
                )
            try:
                if tag in ("M", "L"):
                    _check_nested(tv)
                else:
                    _check_scalar(tag, v)
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"item {idx}: attribute {name!r}: {exc}") from None


def items_to_batch(
    items: Sequence[dict], *, validate: bool = True
) -> pa.RecordBatch:
    """Encode low-level DynamoDB items as one RecordBatch (layout: module doc).

    One Python pass sorts values into per-(column, tag) lists; Arrow then
    builds each child in C, so the per-value Python cost is one list store.
    Raises ValueError naming the attribute for malformed values, including a
    payload of the wrong Python type (str for B, bytes for S, ...), which Arrow
    or JSON would otherwise convert silently. ``validate=False`` skips those
    checks (about a third of the encode cost); use it only for items the SDK
    parsed from a response (Scan, GetRecords).
    """
    n = len(items)
    if n == 0:
        return _EMPTY_BATCH
    if n < _GC_PAUSE_MIN_ROWS:
        return _items_to_batch(items, n, validate)
    with gc_paused():
        return _items_to_batch(items, n, validate)


def _items_to_batch(items: Sequence[dict], n: int, validate: bool) -> pa.RecordBatch:
    # name -> {tag -> list of length n with None where the item lacks it}
    cols: dict[str, dict[str, list]] = {}
    n_attrs = 0
    try:
        for i, item in enumerate(items):
            n_attrs += len(item)
            for name, tv in item.items():
                tags = cols.get(name)
                if tags is None:
                    tags = cols[name] = {}
                ((tag, v),) = tv.items()
                lst = tags.get(tag)
                if lst is None:
                    if tag not in _TAG_SET:
                        raise ValueError(
                            f"item {i}: attribute {name!r}: unknown type tag {tag!r}"
                        )
                    lst = tags[tag] = [None] * n
                lst[i] = v
        names = sorted(cols)
        for name in names:
            if type(name) is not str:
                raise TypeError("attribute names must be str")
    except (ValueError, TypeError, AttributeError):
        _explain_invalid(items)
        raise

    arrays: list[pa.Array] = []
    n_present = 0
    for name in names:
        tags = cols[name]
        children: list[pa.Array] = []
        fields: list[pa.Field] = []
        for tag in TAGS:
            lst = tags.get(tag)
            if lst is None:
                continue
            try:
                if tag == "M" or tag == "L":
                    if validate:
                        # wrap each body so the top level is checked like a nested one
                        for v in lst:
                            if v is not None:
                                _walk_nested(({tag: v},))
                    lst = [None if v is None else canonical_json(v) for v in lst]
                elif validate:
                    for v in lst:
                        if v is not None and not _payload_ok(tag, v):
                            raise ValueError(f"{tag} payload has the wrong type")
                elif tag == "SS" or tag == "NS" or tag == "BS":
                    # pa.array would accept a str (as characters) or a set.
                    for v in lst:
                        if v is not None and type(v) is not list:
                            raise ValueError(f"{tag} value is not a list")
                arr = child_array(tag, lst)
            except (pa.ArrowException, TypeError, ValueError, RecursionError) as exc:
                _explain_invalid(items)
                raise ValueError(f"attribute {name!r}: bad {tag} value: {exc}") from exc
            children.append(arr)
            fields.append(pa.field(tag, arr.type))
        column, col_present = struct_column(children, fields, n)
        n_present += col_present
        arrays.append(column)

    if n_present != n_attrs:  # some payload was None, e.g. {"S": None}
        _explain_invalid(items)
        raise ValueError("some attribute has a None payload")
    return assemble(names, arrays, n)


def struct_column(children: list[pa.Array], fields: list[pa.Field], n: int) -> tuple[pa.StructArray, int]:
    """One attribute's struct column from its tag children (TAGS order), and how many rows
    hold it: a row where every child is null lacks the attribute (a null slot)."""
    present = sum(len(c) - c.null_count for c in children)
    if present == n:
        mask = None
    else:
        mask = children[0].is_null()
        for c in children[1:]:
            mask = pc.and_(mask, c.is_null())
    return pa.StructArray.from_arrays(children, fields=fields, mask=mask), present


def assemble(names: list[str], columns: list[pa.Array], n: int) -> pa.RecordBatch:
    """The batch of `n` rows from its columns (names sorted); rows without attributes count too."""
    if not columns:  # every item is {}: keep the row count
        return pa.RecordBatch.from_struct_array(pa.array([{}] * n, type=pa.struct([])))
    return pa.RecordBatch.from_arrays(columns, names=names)


# --------------------------------------------------------------------------
# Decode
# --------------------------------------------------------------------------

def _check_one_tag_per_row(name: str, column: pa.StructArray, children: list) -> None:
    """Reject batches where a present slot has zero or several tags set."""
    n_valid = len(column) - column.null_count
    if sum(len(c) - c.null_count for c in children) == n_valid:
        if len(children) <= 1:
            return  # one child: equal counts already imply one tag per row
        per_row = pc.cast(children[0].is_valid(), pa.int8())
        for c in children[1:]:
            per_row = pc.add(per_row, pc.cast(c.is_valid(), pa.int8()))
        expected = pc.cast(column.is_valid(), pa.int8())
        if pc.all(pc.equal(per_row, expected)).as_py():
            return
    raise ValueError(f"column {name!r}: each present value must have exactly one type tag set")


def batch_to_items(batch: pa.RecordBatch) -> list[dict]:
    """Decode a batch from items_to_batch back to the identical item list.

    Column-wise: each struct child is converted with one to_pylist() over its
    non-null values; the only per-cell Python work is building the
    {tag: value} dicts the item form requires.
    """
    if batch.num_rows < _GC_PAUSE_MIN_ROWS:
        return _batch_to_items(batch)
    with gc_paused():
        return _batch_to_items(batch)


def _batch_to_items(batch: pa.RecordBatch) -> list[dict]:
    n = batch.num_rows
    items: list[dict] = [{} for _ in range(n)]
    for name, column in zip(batch.schema.names, batch.columns):
        if not pa.types.is_struct(column.type):
            raise ValueError(f"column {name!r} is not a struct: {column.type}")
        # flatten() folds the struct's validity into each child.
        children = column.flatten()
        _check_one_tag_per_row(name, column, children)
        struct_type = column.type
        for j, child in enumerate(children):
            tag = struct_type.field(j).name
            if tag not in _TAG_SET:
                raise ValueError(f"column {name!r}: unknown type tag child {tag!r}")
            if child.null_count == 0:
                rows = items
                values = child.to_pylist()
            else:
                valid = child.is_valid()
                idx = pc.indices_nonzero(valid).to_pylist()
                if not idx:
                    continue
                rows = [items[i] for i in idx]
                values = child.filter(valid).to_pylist()
            if tag == "M" or tag == "L":
                dec = _decode_json
                values = [dec(v) for v in values]
            for it, v in zip(rows, values):
                it[name] = {tag: v}
    return items
