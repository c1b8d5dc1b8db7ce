"""Tests for transforms.items.arrow_codec: DynamoDB low-level items <-> Arrow batches."""

from __future__ import annotations

import gc

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.item_strategies import items_st
from transforms.items.arrow_codec import (
    TAGS,
    batch_to_items,
    items_to_batch,
)

# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_st)
def test_round_trip_property(items):
    batch = items_to_batch(items)
    assert batch.num_rows == len(items)
    assert batch_to_items(batch) == items


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_st)
def test_layout_invariants_property(items):
    batch = items_to_batch(items)
    names = batch.schema.names
    assert names == sorted({k for it in items for k in it})
    for name, column in zip(names, batch.columns):
        assert pa.types.is_struct(column.type)
        tags = [column.type.field(i).name for i in range(column.type.num_fields)]
        present = {next(iter(it[name])) for it in items if name in it}
        assert tags == [t for t in TAGS if t in present]
        # null slot exactly where the attribute is missing; one child otherwise
        assert column.is_valid().to_pylist() == [name in it for it in items]
        children = column.flatten()
        for row, it in enumerate(items):
            set_tags = [t for t, c in zip(tags, children) if c[row].is_valid]
            assert set_tags == ([next(iter(it[name]))] if name in it else [])
    # encoding is canonical: decode + re-encode gives an equal batch
    assert items_to_batch(batch_to_items(batch)).equals(batch)


# ---------------------------------------------------------------------------
# Explicit tests
# ---------------------------------------------------------------------------

EXAMPLE = {
    "attr": {"S": "x"},
    "n": {"N": "12.50"},
    "b": {"B": b"\x00raw"},
    "ok": {"BOOL": True},
    "z": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "bs": {"BS": [b"\x00", b"x"]},
    "m": {"M": {"k": {"S": "v"}, "B": {"B": b"\x00\x01"}, "BS": {"BS": [b"", b"\xff"]}}},
    "l": {"L": [{"N": "1"}, {"S": "a"}, {"B": b""}]},
}


def test_example_item_round_trip():
    assert batch_to_items(items_to_batch([EXAMPLE])) == [EXAMPLE]


def test_empty_list_gives_empty_batch_and_back():
    batch = items_to_batch([])
    assert batch.num_rows == 0 and batch.num_columns == 0
    assert batch_to_items(batch) == []


def test_items_without_attributes_keep_row_count():
    items = [{}, {"a": {"S": "x"}}, {}]
    assert batch_to_items(items_to_batch(items)) == items
    batch = items_to_batch([{}, {}])
    assert batch.num_rows == 2 and batch.num_columns == 0
    assert batch_to_items(batch) == [{}, {}]


def test_column_types_match_layout():
    batch = items_to_batch(
        [
            {"payload": {"S": "hello"}, "mixed": {"S": "a"}, "all": EXAMPLE["m"]},
            {"payload": {"S": ""}, "mixed": {"N": "1"}},
            {"mixed": {"S": "b"}, "flags": {"SS": ["x"]}},
        ]
    )
    assert batch.schema.names == ["all", "flags", "mixed", "payload"]
    assert batch.schema.field("payload").type == pa.struct([("S", pa.string())])
    assert batch.schema.field("mixed").type == pa.struct([("S", pa.string()), ("N", pa.string())])
    assert batch.schema.field("flags").type == pa.struct([("SS", pa.list_(pa.string()))])
    assert batch.schema.field("all").type == pa.struct([("M", pa.string())])
    assert batch.column("payload").is_valid().to_pylist() == [True, True, False]


def test_every_tag_child_type():
    batch = items_to_batch([EXAMPLE])
    expected = {
        "attr": ("S", pa.string()),
        "n": ("N", pa.string()),
        "b": ("B", pa.binary()),
        "ok": ("BOOL", pa.bool_()),
        "z": ("NULL", pa.bool_()),
        "ss": ("SS", pa.list_(pa.string())),
        "ns": ("NS", pa.list_(pa.string())),
        "bs": ("BS", pa.list_(pa.binary())),
        "m": ("M", pa.string()),
        "l": ("L", pa.string()),
    }
    for name, (tag, typ) in expected.items():
        assert batch.schema.field(name).type == pa.struct([(tag, typ)]), name


def test_nested_json_is_canonical_compact_with_base64():
    batch = items_to_batch([{"m": {"M": {"z": {"N": "1"}, "a": {"B": b"\x00\xff"}}}}])
    text = batch.column("m").field("M")[0].as_py()
    assert text == '{"a":{"B":"AP8="},"z":{"N":"1"}}'


def test_numbers_never_become_floats():
    values = ["1.000", "12.50", "-0", "0.0000", "1E+2", "100", "-9.9E+125",
              "1.2345678901234567890123456789012345678E-130"]
    items = [{"n": {"N": v}, "m": {"M": {"x": {"N": v}}}, "ns": {"NS": [v, "7"]}} for v in values]
    batch = items_to_batch(items)
    assert batch.column("n").field("N").to_pylist() == values
    out = batch_to_items(batch)
    assert [it["n"]["N"] for it in out] == values
    assert [it["m"]["M"]["x"]["N"] for it in out] == values
    assert out[0]["n"] == {"N": "1.000"}
    assert all(type(it["n"]["N"]) is str for it in out)


def test_bytes_with_nul_and_empty_values():
    items = [
        {"b": {"B": b""}, "s": {"S": ""}, "bs": {"BS": [b"", b"\x00"]}, "ss": {"SS": [""]}},
        {"b": {"B": b"\x00" * 10}, "s": {"S": "\x00a"}, "l": {"L": [{"B": b"\x00"}, {"S": ""}]}},
    ]
    assert batch_to_items(items_to_batch(items)) == items


def _nest(depth: int, leaf: dict) -> dict:
    value = leaf
    for level in range(depth):
        value = {"M": {"k": value, "b": {"B": b"\x00"}}} if level % 2 else {"L": [value, {"N": "1"}]}
    return value


def test_32_levels_of_nesting_round_trip():
    items = [
        {"deep": _nest(32, {"B": b"\x00bottom"}), "pk": {"S": "1"}},
        {"deep": _nest(31, {"S": "leaf"}), "pk": {"S": "2"}},
    ]
    assert batch_to_items(items_to_batch(items)) == items


@pytest.mark.parametrize("tag,value", [("S", "x" * 400_000), ("B", bytes(range(256)) * 1562 + b"\x00" * 128)])
def test_400kb_item_round_trip(tag, value):
    assert len(value) == 400_000
    items = [{"pk": {"S": "big"}, "v": {tag: value}}, {"pk": {"S": "small"}}]
    assert batch_to_items(items_to_batch(items)) == items


def test_decodes_large_types_too():
    # A batch may come from elsewhere with 64-bit offsets; decode must accept it.
    s = pa.array(["a", None], type=pa.large_string())
    b = pa.array([None, b"\x00"], type=pa.large_binary())
    col = pa.StructArray.from_arrays([s, b], names=["S", "B"])
    batch = pa.RecordBatch.from_arrays([col], names=["v"])
    assert batch_to_items(batch) == [{"v": {"S": "a"}}, {"v": {"B": b"\x00"}}]


def test_decode_rejects_malformed_batches():
    both = pa.StructArray.from_arrays([pa.array(["a"]), pa.array(["1"])], names=["S", "N"])
    with pytest.raises(ValueError, match="exactly one"):
        batch_to_items(pa.RecordBatch.from_arrays([both], names=["v"]))
    unknown = pa.StructArray.from_arrays([pa.array(["a"])], names=["X"])
    with pytest.raises(ValueError, match="'X'"):
        batch_to_items(pa.RecordBatch.from_arrays([unknown], names=["v"]))
    with pytest.raises(ValueError, match="not a struct"):
        batch_to_items(pa.RecordBatch.from_arrays([pa.array(["a"])], names=["v"]))


def test_sliced_batch_decodes_its_rows():
    items = [{"a": {"S": str(i)}, "m": {"M": {"b": {"B": bytes([i])}}}} if i % 2 else {"n": {"N": str(i)}}
             for i in range(10)]
    batch = items_to_batch(items)
    assert batch_to_items(batch.slice(3, 4)) == items[3:7]


def test_large_batch_round_trip_and_gc_state_restored():
    # >= the row count at which the codec pauses the cyclic GC.
    items = [{"pk": {"S": f"k{i}"}, "l": {"L": [{"N": str(i)}, {"B": b"\x00"}]}} for i in range(3000)]
    assert gc.isenabled()
    assert batch_to_items(items_to_batch(items)) == items
    assert gc.isenabled()
    with pytest.raises(ValueError):
        items_to_batch(items + [{"pk": {"X": "bad"}}])
    assert gc.isenabled()
    gc.disable()
    try:
        items_to_batch(items)
        assert not gc.isenabled()  # caller's choice is left alone
    finally:
        gc.enable()


def test_validate_false_round_trips_valid_items():
    items = [EXAMPLE, {"deep": _nest(32, {"BS": [b"\x00"]})}]
    batch = items_to_batch(items, validate=False)
    assert batch.equals(items_to_batch(items))
    assert batch_to_items(batch) == items


# --- invalid input -----------------------------------------------------------

@pytest.mark.parametrize(
    "bad",
    [
        {"attr_x": "plain"},
        {"attr_x": {"X": "1"}},
        {"attr_x": {}},
        {"attr_x": {"S": "a", "N": "1"}},
        {"attr_x": {"S": 1}},
        {"attr_x": {"N": 1.5}},
        {"attr_x": {"S": None}},
        {"attr_x": {"BOOL": "yes"}},
        {"attr_x": {"SS": "notalist"}},
        {"attr_x": {"M": {"k": "plain"}}},
        {"attr_x": {"M": {"k": {"Q": "1"}}}},
        {"attr_x": {"L": [{"S": "ok"}, {"bad": 1}]}},
        {"attr_x": {"L": "notalist"}},
        {"attr_x": {"M": {"k": {"S": {1, 2}}}}},
        {"attr_x": {"M": {1: {"S": "x"}}}},
        {"attr_x": {"L": [{"M": {"ok": {"M": {2: {"N": "1"}}}}}]}},
        {"attr_x": {"BS": {b"a", b"b"}}},
    ],
)
def test_invalid_input_raises_value_error_naming_attribute(bad):
    good = {"pk": {"S": "1"}}
    with pytest.raises(ValueError, match="attr_x"):
        items_to_batch([good, {**good, **bad}])


def test_invalid_attribute_name():
    with pytest.raises(ValueError):
        items_to_batch([{1: {"S": "x"}}])


def test_invalid_item_type():
    with pytest.raises(ValueError):
        items_to_batch([{"a": {"S": "x"}}, ["not", "a", "dict"]])


@pytest.mark.parametrize("item", [
    {"a": {"B": "text, not bytes"}},
    {"a": {"S": b"bytes, not text"}},
    {"a": {"M": {"x": {"B": "text"}}}},
    {"a": {"L": [{"S": b"bytes"}]}},
    {"a": {"M": {"x": {"L": [{"N": 1.5}]}}}},
    {"a": {"M": {"x": {"BOOL": "yes"}}}},
    {"a": {"SS": [b"bytes"]}},
    {"a": {"BS": ["text"]}},
])
def test_a_payload_of_the_wrong_python_type_is_refused_not_converted(item):
    with pytest.raises(ValueError, match="'a'.*wrong type"):
        items_to_batch([item])
