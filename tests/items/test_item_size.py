"""DynamoDB's item size: the guide's examples, DynamoDB Local's own count at the 400 KB edge,
and the shortcuts (a row's text, a page's bound) never below the exact count."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed import seed
from tests.support.cli_runs import unique
from tests.support.item_strategies import attr_names, attr_values, items_st
from transforms.items.arrow_codec import items_to_batch
from transforms.items.ddb_json import encode_item
from transforms.items.item_size import MAX_ITEM_BYTES, item_size, number_size, oversized_puts, oversized_rows
from transforms.items.wire_encode import request_row


def test_the_guides_example_item_is_23_bytes():
    """AWS's quotas page: "shirt-color" = "R" and "shirt-size" = "M" make 23 bytes."""
    assert item_size({"shirt-color": {"S": "R"}, "shirt-size": {"S": "M"}}) == 23


@pytest.mark.parametrize("value, size", [
    ({"S": ""}, 0), ({"S": "abc"}, 3), ({"S": "é"}, 2),              # UTF-8 bytes
    ({"B": b"abc"}, 3), ({"B": "YWJj"}, 3), ({"B": "YQ=="}, 1),       # raw bytes, as bytes or base64
    ({"BOOL": False}, 1), ({"NULL": True}, 1),
    ({"SS": ["a", "b"]}, 2), ({"NS": ["1", "2"]}, 4), ({"BS": [b"abc", b"def"]}, 6),
    ({"L": []}, 3), ({"L": [{"S": "a"}]}, 5), ({"L": [{"S": "a"}, {"S": "b"}]}, 7),  # 3 + 1 an element
    ({"M": {}}, 3), ({"M": {"k": {"S": "a"}}}, 6), ({"M": {"k": {"L": []}}}, 8),    # names count too
    ({"L": [{"L": [{"S": "a"}]}]}, 9), ({"L": [{"N": "1"}]}, 6),
])
def test_value_sizes_as_the_guide_and_dynamodb_local_count_them(value, size):
    assert item_size({"v": value}) == 1 + size


@pytest.mark.parametrize("number, size", [
    ("0", 1), ("1", 2), ("12", 2), ("123", 3), ("1234", 3), ("12345", 4), ("1" * 38, 20),
    ("10", 2), ("100", 2), ("1000", 2), ("1E10", 2), ("1.000", 2),      # trailing zeros are not stored
    ("0.1", 2), ("0.12", 2), ("0.001", 2),
    ("1.5", 3), ("12.5", 3), ("1.25", 3), ("1.1", 3), ("11.1", 3), ("111.1", 4),  # pairs meet at the point
    ("-1", 3), ("-123", 4),                                             # a negative number: 1 more
])
def test_number_sizes_as_dynamodb_local_counts_them(number, size):
    """Each figure measured on DynamoDB Local: the largest padding an item with the number still takes."""
    assert number_size(number) == size


SHAPES = {
    "string": {"s": {"S": "Ünïcødé ✓"}},
    "binary": {"b": {"B": bytes(range(256))}},
    "numbers": {"n": {"N": "-111.1"}, "m": {"N": "0.00012"}, "big": {"N": "9" * 38}, "e": {"N": "1.5E-7"}},
    "sets": {"ss": {"SS": ["a", "bé"]}, "ns": {"NS": ["1.5", "-3", "100"]}, "bs": {"BS": [b"\x00", b"xyz"]}},
    "nested": {"doc": {"M": {"list": {"L": [{"N": "12.5"}, {"NULL": True}, {"M": {}}, {"BOOL": True}]},
                             "é": {"S": "x"}, "nums": {"NS": ["7"]}}}},
    "unicode names": {"名前": {"S": "値"}, "🦄": {"L": [{"S": ""}]}},
}


@pytest.mark.integration
@pytest.mark.parametrize("shape", list(SHAPES))
def test_dynamodb_local_takes_an_item_of_exactly_400_kb_and_refuses_one_byte_more(dynamodb_local, shape):
    """DynamoDB Local, AWS's own local DynamoDB, enforces the limit with its count: an item
    this module counts at 409,600 bytes is stored, one at 409,601 is refused."""
    table = unique("item_size")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("pk"))
    client = seed.client_for(dynamodb_local.endpoint)
    base = {"pk": {"S": "k"}, **SHAPES[shape]}
    padding = MAX_ITEM_BYTES - item_size(base) - len("pad")

    at_limit = {**base, "pad": {"S": "x" * padding}}
    over = {**base, "pad": {"S": "x" * (padding + 1)}}
    client.put_item(TableName=table, Item=at_limit)
    with pytest.raises(client.exceptions.ClientError, match="Item size has exceeded the maximum allowed size"):
        client.put_item(TableName=table, Item=over)

    assert item_size(at_limit) == MAX_ITEM_BYTES and item_size(over) == MAX_ITEM_BYTES + 1
    stored = client.get_item(TableName=table, Key={"pk": {"S": "k"}}, ConsistentRead=True)["Item"]
    assert stored["pad"] == at_limit["pad"] and stored.keys() == at_limit.keys()  # (numbers come back respelled)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(attr_names, attr_values, max_size=8))
def test_an_items_request_text_is_never_shorter_than_its_size(item):
    """Why the writer counts only rows whose text is over the limit."""
    assert len(request_row({"PutRequest": {"Item": item}})) >= item_size(item)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_st.filter(bool), st.integers(0, 200))
def test_oversized_rows_of_a_page_are_those_whose_items_count_over_the_limit(rows, limit):
    """A small limit makes ordinary items cross it, so the page's bound and its exact count both work."""
    batch = items_to_batch(rows)
    assert oversized_rows(batch, limit) == [i for i, item in enumerate(rows) if item_size(item) > limit]
    assert oversized_rows(batch.slice(1), limit) == [i for i, item in enumerate(rows[1:]) if item_size(item) > limit]


def test_oversized_puts_names_puts_over_the_limit_and_their_sizes():
    small = {"pk": {"S": "a"}}
    big = {"pk": {"S": "b"}, "blob": {"B": b"\x01" * MAX_ITEM_BYTES}}
    long_text_small_item = {"pk": {"S": "c"}, "ns": {"NS": [str(n) for n in range(60_000)]}}
    rows = [request_row({"PutRequest": {"Item": item}}) for item in (small, big, long_text_small_item)]
    rows.append(request_row({"DeleteRequest": {"Key": encode_item(small)}}))

    assert len(rows[2]) > MAX_ITEM_BYTES > item_size(long_text_small_item)  # its text is long, its size is not
    assert oversized_puts(rows) == {1: item_size(big)}
    assert item_size(big) == 2 + 1 + 4 + MAX_ITEM_BYTES
