"""The item codec: Scan response bytes -> Arrow -> BatchWriteItem request bytes, against boto3.

On the same generated items, spelled as a DynamoDB-API server sends them (pages of
1,000), CPU microseconds per item of:

- the tool: `wire_decode.decode_scan` + `wire_encode.put_rows` / `batch_write_body`;
- boto3 from wire to wire, what a boto3 program pays to copy an item: botocore's parser
  (Scan output shape), TypeDeserializer, TypeSerializer, botocore's validator and
  serializer (BatchWriteItem of 25);
- boto3's TypeDeserializer + TypeSerializer alone, on items botocore already parsed
  (the in-memory round trip, no wire at either end);
- the tool before issue 8: botocore's parser, `items_to_batch`, `batch_to_items`,
  botocore's validator and serializer.

Medians of 3 interleaved rounds, each the best of 3 passes over every page; the cyclic
GC is on, as in a real run (the tool pauses it itself while it decodes). No assertions:
figures only.

Run: .venv/bin/python -m bench.codec [N_ITEMS]
"""
from __future__ import annotations

import json
import random
import sys
import time

import botocore.parsers
import botocore.serialize
import botocore.session
import botocore.validate
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from bench.measure import median
from transforms.items.arrow_codec import batch_to_items, items_to_batch
from transforms.items.ddb_json import encode_item
from transforms.items.wire_decode import decode_scan
from transforms.items.wire_encode import batch_write_body, put_rows, request_of

PAGE = 1000


def make_items(n: int, seed: int = 7) -> list[dict]:
    """Mixed-type items resembling a real table: keys, scalars, sets, nesting."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        item = {
            "pk": {"S": f"user#{i:08d}"},
            "sk": {"N": str(rnd.randint(0, 10**12))},
            "name": {"S": "".join(rnd.choices("abcdefghijklmnopqrstuvwxyzé ", k=rnd.randint(3, 24)))},
            "price": {"N": f"{rnd.randint(0, 99999)}.{rnd.randint(0, 99):02d}"},
            "active": {"BOOL": rnd.random() < 0.5},
        }
        r = rnd.random()
        if r < 0.3:
            item["blob"] = {"B": rnd.randbytes(rnd.randint(0, 64))}
        if r < 0.1:
            item["gone"] = {"NULL": True}
        if rnd.random() < 0.4:
            item["tags"] = {"SS": rnd.sample(["red", "green", "blue", "x", "y", "z"], k=rnd.randint(1, 4))}
        if rnd.random() < 0.2:
            item["scores"] = {"NS": list(dict.fromkeys(str(rnd.randint(-1000, 1000)) for _ in range(3)))}
        if rnd.random() < 0.1:
            item["keys"] = {"BS": [rnd.randbytes(8), rnd.randbytes(4)]}
        if rnd.random() < 0.5:
            item["address"] = {"M": {"street": {"S": f"{rnd.randint(1, 999)} Main St"},
                                     "zip": {"N": str(rnd.randint(10000, 99999))},
                                     "geo": {"L": [{"N": "52.52"}, {"N": "13.405"}]}}}
        if rnd.random() < 0.3:
            item["history"] = {"L": [{"M": {"at": {"N": str(rnd.randint(0, 2**31))}, "ok": {"BOOL": True}}}
                                     for _ in range(rnd.randint(0, 3))]}
        if rnd.random() < 0.2:  # mixed types in one column across items
            item["mixed"] = {"S": "text"} if rnd.random() < 0.5 else {"N": "1.000"}
        items.append(item)
    return items


def scan_bodies(items: list[dict]) -> list[bytes]:
    """The items as Scan responses of 1,000, compact UTF-8 as DynamoDB and Alternator write them."""
    return [json.dumps({"Items": [encode_item(item) for item in items[i:i + PAGE]], "Count": len(items[i:i + PAGE]),
                        "ScannedCount": len(items[i:i + PAGE])}, ensure_ascii=False, separators=(",", ":")).encode()
            for i in range(0, len(items), PAGE)]


class _Boto3:
    """botocore's own parser, validator and serializer for DynamoDB, offline."""

    def __init__(self):
        model = botocore.session.get_session().get_service_model("dynamodb")
        self._scan = model.operation_model("Scan")
        self._write = model.operation_model("BatchWriteItem")
        self._parser = botocore.parsers.create_parser("json")
        self._serializer = botocore.serialize.create_serializer("json")
        self._validator = botocore.validate.ParamValidator()

    def parse(self, body: bytes) -> list[dict]:
        return self._parser.parse({"body": body, "headers": {}, "status_code": 200},
                                  self._scan.output_shape)["Items"]

    def write_bodies(self, items: list[dict], per_request: int) -> list[bytes]:
        bodies = []
        for i in range(0, len(items), per_request):
            params = {"RequestItems": {"t": [{"PutRequest": {"Item": item}} for item in items[i:i + per_request]]}}
            self._validator.validate(params, self._write.input_shape)
            bodies.append(self._serializer.serialize_to_request(params, self._write)["body"])
        return bodies


def _cpu_us_per_item(work, pages: list, items: int, passes: int = 3) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for page in pages:
            work(page)
        best = min(best, time.process_time() - started)
    return best / items * 1e6


def main(n: int = 50_000, rounds: int = 3) -> dict:
    items = make_items(n)
    bodies = scan_bodies(items)
    boto = _Boto3()
    parsed = [boto.parse(body) for body in bodies]
    deserializer, serializer = TypeDeserializer(), TypeSerializer()

    def tool(body: bytes) -> None:
        batch, _ = decode_scan(body)
        rows = put_rows(batch)
        for i in range(0, len(rows), 100):
            batch_write_body("t", rows[i:i + 100])

    def boto3_wire(body: bytes) -> None:
        plain = [{k: deserializer.deserialize(v) for k, v in item.items()} for item in boto.parse(body)]
        boto.write_bodies([{k: serializer.serialize(v) for k, v in item.items()} for item in plain], 25)

    def boto3_memory(page: list[dict]) -> None:
        plain = [{k: deserializer.deserialize(v) for k, v in item.items()} for item in page]
        [{k: serializer.serialize(v) for k, v in item.items()} for item in plain]

    def before(body: bytes) -> None:
        boto.write_bodies(batch_to_items(items_to_batch(boto.parse(body), validate=False)), 100)

    # Same values out as in: the tool's requests carry botocore's items.
    batch, _ = decode_scan(bodies[0])
    assert batch_to_items(batch) == parsed[0]
    assert [request_of(row)["PutRequest"]["Item"] for row in put_rows(batch)] == parsed[0]

    runs: dict[str, list[float]] = {"tool": [], "boto3_wire": [], "boto3_memory": [], "before": []}
    for _ in range(rounds):
        runs["tool"].append(_cpu_us_per_item(tool, bodies, n))
        runs["boto3_wire"].append(_cpu_us_per_item(boto3_wire, bodies, n))
        runs["boto3_memory"].append(_cpu_us_per_item(boto3_memory, parsed, n))
        runs["before"].append(_cpu_us_per_item(before, bodies, n))
    figures = {name: median(values) for name, values in runs.items()}
    tool_us = figures["tool"]
    print(f"codec, {n:,} mixed items in pages of {PAGE:,} ({sum(map(len, bodies)) // n} B each on the wire), "
          f"CPU us/item, medians of {rounds}:")
    print(f"  tool: Scan bytes -> Arrow -> BatchWriteItem bytes           {tool_us:>7.1f}")
    print(f"  boto3 wire to wire (parse, deserialize, serialize, write)   {figures['boto3_wire']:>7.1f}"
          f"   tool is {figures['boto3_wire'] / tool_us:.1f}x faster (target: at least 10x)")
    print(f"  boto3 TypeDeserializer + TypeSerializer alone, in memory    {figures['boto3_memory']:>7.1f}"
          f"   tool is {figures['boto3_memory'] / tool_us:.1f}x faster")
    print(f"  the tool before issue 8 (botocore parse and serialize)      {figures['before']:>7.1f}"
          f"   tool is {figures['before'] / tool_us:.1f}x faster")
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
