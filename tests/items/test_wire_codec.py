"""The wire codec against the SDK: the same random items through botocore and through ours.

Old path (what the tool did before, and what any boto3 program does):
    body --botocore's JSON parser (Scan output shape)--> items --items_to_batch--> batch
    batch --batch_to_items--> items --botocore's serializer (BatchWriteItem)--> body
New path:
    body --decode_scan--> batch --put_rows + batch_write_body--> body

Both must give identical results: equal batches (schema, values, canonical M/L text),
items equal to botocore's, and request bodies that parse to what botocore sends. Each
response is spelled the ways different servers might write it. Every test runs twice:
with the Scan decoder's C accelerator (transforms/items/scan_columns.c), which reads the
plain pages, and with the Python path alone.
"""
from __future__ import annotations

import base64
import datetime
import json
import random

import botocore.parsers
import botocore.serialize
import botocore.session
import botocore.validate
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.item_strategies import attr_names, attr_values, items_st
from transforms.items.arrow_codec import batch_to_items, items_to_batch
from transforms.items import wire_decode
from transforms.items.wire_decode import decode_get_records, decode_scan
from transforms.items.wire_encode import batch_write_body, put_rows, request_of, request_row

_SESSION = botocore.session.get_session()
_DYNAMODB = _SESSION.get_service_model("dynamodb")
_STREAMS = _SESSION.get_service_model("dynamodbstreams")
_PARSER = botocore.parsers.create_parser("json")
_SERIALIZER = botocore.serialize.create_serializer("json")
_VALIDATOR = botocore.validate.ParamValidator()


_ACCELERATOR = wire_decode._scan_columns


@pytest.fixture(autouse=True, scope="module", params=["accelerated", "python"])
def scan_decoder(request):
    """Which decoder `decode_scan` uses: the accelerator (with the Python path where it
    declines a page) or the Python path alone."""
    wire_decode._scan_columns = _ACCELERATOR if request.param == "accelerated" else None
    yield request.param
    wire_decode._scan_columns = _ACCELERATOR


def test_the_accelerator_is_built():
    """`make install` builds it (setup.py); without it the "accelerated" runs would test the Python path twice."""
    assert _ACCELERATOR is not None


def test_the_accelerator_reads_a_plain_page_itself(scan_decoder):
    """A page as DynamoDB writes one (ASCII, maps with keys out of order, binary, sets) is
    read by the accelerator, not handed to the Python path; one with an escape is not."""
    items = [{"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "b": {"B": base64.b64encode(bytes([i, 0])).decode()},
              "ss": {"SS": ["x", "y"]}, "ok": {"BOOL": i % 2 == 0}, "m": {"M": {"z": {"S": "1"}, "a": {"NULL": True}}},
              "l": {"L": [{"N": "1"}, {"M": {}}]}} for i in range(5)]
    body = orjson.dumps({"Items": items, "Count": 5})
    assert _ACCELERATOR(body) is not None
    assert _ACCELERATOR(body.replace(b'"k1"', b'"k\\1"')) is None
    assert decode_scan(body)[0].to_pylist()[0]["m"]["M"] == '{"a":{"NULL":true},"z":{"S":"1"}}'


def botocore_parse(body: bytes, operation: str = "Scan", model=_DYNAMODB) -> dict:
    return _PARSER.parse({"body": body, "headers": {}, "status_code": 200},
                         model.operation_model(operation).output_shape)


def botocore_body(params: dict) -> bytes:
    operation = _DYNAMODB.operation_model("BatchWriteItem")
    report = _VALIDATOR.validate(params, operation.input_shape)
    assert not report.has_errors(), report.generate_report()
    return _SERIALIZER.serialize_to_request(params, operation)["body"]


def to_wire(value):
    """botocore form -> DynamoDB JSON (bytes as base64), recursively."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag == "B" and isinstance(inner, bytes):
                return {"B": base64.b64encode(inner).decode()}
            if tag == "BS" and isinstance(inner, list):
                return {"BS": [base64.b64encode(b).decode() for b in inner]}
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


def spelled(document: dict, how: int) -> bytes:
    """The same response as different servers write it."""
    if how == 0:  # compact raw UTF-8 (DynamoDB, Alternator)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    if how == 1:  # \uXXXX escapes, surrogate pairs for astral characters
        return json.dumps(document).encode()
    if how == 2:  # every '/' escaped, sorted keys
        return json.dumps(document, ensure_ascii=False, sort_keys=True).replace("/", "\\/").encode()
    return json.dumps(document, ensure_ascii=False, indent=1).encode()  # pretty


keys = st.dictionaries(attr_names, st.one_of(st.text(max_size=8).map(lambda s: {"S": s}),
                                             st.binary(max_size=8).map(lambda b: {"B": b})), min_size=1, max_size=2)


def check_page(items: list[dict], last_key: dict | None, how: int, table: str, per_request: int) -> None:
    document = {"Items": [to_wire(item) for item in items], "Count": len(items), "ScannedCount": len(items)}
    if last_key is not None:
        document["LastEvaluatedKey"] = to_wire(last_key)
    body = spelled(document, how)

    parsed = botocore_parse(body)
    old = items_to_batch(parsed["Items"], validate=False)
    new, rest = decode_scan(body)

    assert new.schema == old.schema
    assert new.equals(old)
    assert batch_to_items(new) == parsed["Items"] == items
    assert rest.get("LastEvaluatedKey") == parsed.get("LastEvaluatedKey") == last_key
    assert rest["Count"] == parsed["Count"]

    rows = put_rows(new)
    assert [request_of(row) for row in rows] == [{"PutRequest": {"Item": item}} for item in items]
    requests = [{"PutRequest": {"Item": item}} for item in parsed["Items"]]
    for start in range(0, len(items), per_request):
        ours = batch_write_body(table, rows[start:start + per_request])
        theirs = botocore_body({"RequestItems": {table: requests[start:start + per_request]}})
        assert json.loads(ours) == json.loads(theirs)
        assert [json.loads(request_row(r)) for r in requests[start:start + per_request]] == \
            [json.loads(row) for row in rows[start:start + per_request]]
    if len(items) > 2:  # a slice of a batch (offsets that are not 0) writes its own rows
        assert put_rows(new.slice(1, len(items) - 2)) == rows[1:-1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=items_st, last_key=st.none() | keys, how=st.integers(0, 3),
       table=st.sampled_from(["t", "Tablé-\U0001f600", 'q"uote']), per_request=st.sampled_from([1, 3, 25, 100]))
def test_random_pages_decode_and_encode_as_botocore_does(items, last_key, how, table, per_request):
    check_page(items, last_key, how, table, per_request)


def test_a_page_of_every_kind_of_value_and_1000_items():
    rnd = random.Random(5)
    items = []
    for i in range(1000):
        item = {"pk": {"S": f"k{i}"}, "n": {"N": rnd.choice(["0", "-0", "1E+2", "12.50",
                                                            "-1.2345678901234567890123456789012345678E-130"])},
                "s": {"S": rnd.choice(["", "é", "\x00\x1f", '"\\/', "\u2028", "\U0010ffff"])},
                "b": {"B": rnd.randbytes(rnd.randint(0, 9))}, "deep": {"L": [{"M": {"B": {"B": b"\x00"}}}]}}
        if i % 3:
            item["mixed"] = rnd.choice([{"S": "x"}, {"N": "7"}, {"BOOL": False}, {"NULL": True}, {"SS": ["q"]},
                                        {"NS": ["1"]}, {"BS": [b"", b"\xff"]}, {"M": {}}, {"L": []}])
        items.append(item)
    for how in range(4):
        check_page(items, {"pk": {"S": "k999"}}, how, "t", 100)


def _nest(depth: int, leaf: dict) -> dict:
    return leaf if depth == 0 else {"M": {"x": _nest(depth - 1, leaf)}}


@pytest.mark.parametrize("item", [
    {"pk": {"S": "big"}, "s": {"S": "x" * 400_000}},
    {"pk": {"S": "big"}, "b": {"B": bytes(range(256)) * 1562}},
    {"pk": {"S": "deep"}, "d": _nest(32, {"BS": [b"\x00", b""]})},
    {},
])
def test_400_kb_values_32_levels_and_empty_items(item):
    check_page([item, item], None, 0, "t", 25)


# ----------------------------------------------------------------------------- GetRecords

@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=st.lists(st.none() | st.dictionaries(attr_names, attr_values, max_size=4), max_size=6),
       how=st.integers(0, 3))
def test_get_records_decodes_as_botocore_does(images, how):
    records = []
    for i, image in enumerate(images):
        change = {"ApproximateCreationDateTime": 1700000000.0 + i, "SequenceNumber": f"{100 + i}", "SizeBytes": 9,
                  "StreamViewType": "NEW_AND_OLD_IMAGES", "Keys": to_wire({"k": {"B": bytes([i])}})}
        if image is not None:
            change["NewImage"] = change["OldImage"] = to_wire(image)
        records.append({"eventID": str(i), "eventName": "REMOVE" if image is None else "MODIFY",
                        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1", "dynamodb": change})
    body = spelled({"Records": records, "NextShardIterator": "next"}, how)

    theirs = botocore_parse(body, "GetRecords", _STREAMS)
    ours = decode_get_records(body)

    for record in theirs["Records"]:
        when = record["dynamodb"]["ApproximateCreationDateTime"]
        record["dynamodb"]["ApproximateCreationDateTime"] = when.replace(tzinfo=datetime.timezone.utc).timestamp() \
            if when.tzinfo is None else when.timestamp()
    theirs.pop("ResponseMetadata", None)
    assert ours == theirs


def test_get_records_of_an_empty_page():
    assert decode_get_records(b'{"NextShardIterator":"x"}') == {"Records": [], "NextShardIterator": "x"}
    assert decode_get_records(b'{"Records":[]}') == {"Records": []}


# ----------------------------------------------------------------------------- malformed input

MALFORMED = [
    b'{"Items":[{"a":{}}]}',                                           # no tag
    b'{"Items":[{"a":{"S":"x","N":"1"}}]}',                            # two tags
    b'{"Items":[{"a":{"S":null}}]}',                                   # null payload
    b'{"Items":[{"a":{"X":"1"}}]}',                                    # unknown tag
    b'{"Items":[{"a":{"S":1}}]}',                                      # wrong JSON type
    b'{"Items":[{"a":{"B":"AA"}}]}',                                   # base64 without its padding
    b'{"Items":[{"a":"x"}]}',                                          # a value that is not an object
    b'{"Items":[{"a":{"S":"\\ud800"}}]}',                              # lone surrogate
    b'{"Items":[{"a":{"S":"x"}},{"a":{"S":"y","N":"1"}},{"a":{}}]}',   # a 2-tag and a 0-tag cell
    b'{"Items":[{"a":{"M":{"k":{"B":"AA"}}}}]}',                        # nested base64 without its padding
    b'0', b'[{"Items":[]}]',                                            # a response that is not an object
    b'{"Items":5}', b'{"Items":{"a":{"S":"x"}}}',                       # Items that are not an array
]


@pytest.mark.parametrize("body", MALFORMED)
def test_what_botocore_refuses_is_refused(body):
    with pytest.raises(Exception):
        items_to_batch(botocore_parse(body)["Items"], validate=False)
    with pytest.raises((ValueError, orjson.JSONDecodeError)):
        decode_scan(body)


def test_pages_of_one_shape_and_of_one_name_set_in_any_order():
    # one shape (same names, same order) is transposed in C; other orders take the loop
    same = [{"pk": {"S": f"k{i}"}, "n": {"N": str(i)}, "m": {"M": {"x": {"B": bytes([i])}}}} for i in range(50)]
    shuffled = [dict(reversed(item.items())) if i % 2 else item for i, item in enumerate(same)]
    for items in (same, shuffled):
        check_page(items, None, 0, "t", 25)
    # a JSON null where a value belongs reads as the attribute's absence, on both paths
    with_a_null = [*same[:3], {"pk": {"S": "k3"}, "n": None, "m": {"NULL": True}}]
    without = [*same[:3], {"pk": {"S": "k3"}, "m": {"NULL": True}}]
    assert decode_scan(orjson.dumps({"Items": to_wire(with_a_null)}))[0].equals(
        decode_scan(orjson.dumps({"Items": to_wire(without)}))[0])


@pytest.mark.parametrize("items", [[["pk"], ["pk"]], ["ab", "ab"], [{"pk": {"S": "a"}}, ["pk"]], [1, 1]])
def test_an_item_that_is_not_an_object_is_refused(items):
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_scan(orjson.dumps({"Items": items}))


def test_a_string_where_a_set_belongs_is_refused_not_split_into_characters():
    body = b'{"Items":[{"a":{"SS":"abc"}}]}'
    assert items_to_batch(botocore_parse(body)["Items"], validate=False).to_pylist() == [{"a": {"SS": ["a", "b", "c"]}}]
    with pytest.raises(ValueError, match="'a'"):
        decode_scan(body)


@pytest.mark.parametrize("body", [
    (b'{"Items":[{"a":{"B":"AA\\nAA"}},{"a":{"B":"AB=="}},{"a":{"BS":["QQ==","Q\\r\\nQ=="]}},'
     b'{"a":{"M":{"k":{"B":"A\\nQ=="}}}}]}'),
    # every row holds the map and the list (each column written in one pass), one row with lenient binary
    (b'{"Items":[{"a":{"M":{"k":{"S":"x"}}},"b":{"L":[{"S":"y"}]}},'
     b'{"a":{"M":{"k":{"BS":["Q\\nQ=="]}}},"b":{"L":[{"B":"A\\nQ=="}]}}]}'),
])
def test_lenient_base64_reads_as_botocore_reads_it(body):
    assert decode_scan(body)[0].equals(items_to_batch(botocore_parse(body)["Items"], validate=False))


def test_a_batch_with_no_columns_writes_empty_items():
    batch = pa.RecordBatch.from_struct_array(pa.array([{}] * 3, type=pa.struct([])))
    assert put_rows(batch) == [b'{"PutRequest":{"Item":{}}}'] * 3


def test_deletes_and_puts_as_dicts():
    request = {"DeleteRequest": {"Key": {"k": {"B": b"\x00"}, "n": {"N": "1.0"}}}}
    assert request_row(request) == b'{"DeleteRequest":{"Key":{"k":{"B":"AA=="},"n":{"N":"1.0"}}}}'
    assert request_of(request_row(request)) == request


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=items_st, cut=st.integers(0, 10_000), byte=st.integers(0, 255), how=st.integers(0, 2))
def test_a_damaged_page_reads_as_the_python_path_reads_it(items, cut, byte, how):
    """Pages cut short, with a byte changed or with a byte put in: the accelerator gives what the
    Python path gives, the same batch and response or the same kind of error."""
    body = spelled({"Items": [to_wire(item) for item in items], "Count": len(items)}, 0)
    at = cut % (len(body) + 1)
    damaged = [body[:at], body[:at] + bytes([byte]) + body[at + 1:], body[:at] + bytes([byte]) + body[at:]][how]

    def read(accelerator):
        wire_decode._scan_columns = accelerator
        try:
            batch, rest = decode_scan(damaged)
            return batch.to_pylist(), batch.schema, rest
        except (ValueError, orjson.JSONDecodeError) as exc:
            return type(exc)
        finally:
            wire_decode._scan_columns = _ACCELERATOR

    assert read(_ACCELERATOR) == read(None)
