"""Example tables for the demo and the tests, written to a source with boto3.

- `MusicCollection` (HASH Artist S, RANGE SongTitle S) and `mutant_data` (HASH
  last_name S): the tables of ScyllaDB's Alternator getting-started lab.
- `demo_all_types`: generated items using every DynamoDB type, with extreme numbers,
  NUL bytes, empty strings and deep nesting, on a table with a GSI, an LSI and TTL.

These are the tables configs/local.yaml names. `python -m testbed.seed [ENDPOINT]`
creates and fills them in an empty source, e.g. the DynamoDB Local of
deploy/docker-compose.yml (which starts empty).
"""
from __future__ import annotations

import argparse
import base64
import concurrent.futures
import decimal
import json
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError

MUSIC_ITEMS = [
    {"Artist": {"S": "No One You Know"}, "SongTitle": {"S": "Call Me Today"},
     "AlbumTitle": {"S": "Somewhat Famous"}, "Awards": {"N": "1"}},
    {"Artist": {"S": "No One You Know"}, "SongTitle": {"S": "Howdy"},
     "AlbumTitle": {"S": "Somewhat Famous"}, "Awards": {"N": "2"}},
    {"Artist": {"S": "Acme Band"}, "SongTitle": {"S": "Happy Day"},
     "AlbumTitle": {"S": "Songs About Life"}, "Awards": {"N": "10"}},
    {"Artist": {"S": "Acme Band"}, "SongTitle": {"S": "PartiQL Rocks"},
     "AlbumTitle": {"S": "Another Album Title"}, "Awards": {"N": "8"}},
]

MUTANT_ITEMS = [
    {"last_name": {"S": "Loblaw"}, "first_name": {"S": "Bob"}, "address": {"S": "1313 Mockingbird Lane"},
     "picture_location": {"S": "http://www.facebook.com/bobloblaw"}},
    {"last_name": {"S": "Jeffries"}, "first_name": {"S": "Jim"}, "address": {"S": "1211 Hollywood Lane"},
     "picture_location": {"S": "http://www.facebook.com/jimjeffries"}},
    {"last_name": {"S": "Walters"}, "first_name": {"S": "Bob"}, "address": {"S": "1313 Mockingbird Lane"},
     "picture_location": {"S": "http://www.facebook.com/bobwalters"}},
]

ALL_TYPES_TABLE = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "N"},
                             {"AttributeName": "category", "AttributeType": "S"},
                             {"AttributeName": "score", "AttributeType": "N"}],
    "GlobalSecondaryIndexes": [{"IndexName": "by_category",
                                "KeySchema": [{"AttributeName": "category", "KeyType": "HASH"}],
                                "Projection": {"ProjectionType": "KEYS_ONLY"}}],
    "LocalSecondaryIndexes": [{"IndexName": "by_score",
                               "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                             {"AttributeName": "score", "KeyType": "RANGE"}],
                               "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name"]}}],
    "BillingMode": "PAY_PER_REQUEST",
}

_NUMBERS = ["0", "-1", "3.14159", "12345678901234567890123456789012345678",
            "1.2345678901234567890123456789012345678E-130", "9.9999999999999999999999999999999999999E+125",
            "-0.000001", "1000"]


def _nested(depth: int, i: int) -> dict:
    value: dict = {"N": str(i)}
    for level in range(depth):
        value = {"M": {"level": {"N": str(level)}, "child": value}} if level % 2 else {"L": [value, {"S": ""}]}
    return value


def all_types_item(i: int) -> dict:
    """Item `i` of demo_all_types: deterministic, every type, some edge cases."""
    item = {
        "pk": {"S": f"item-{i // 4:06d}"},
        "sk": {"N": str(i % 4)},
        "category": {"S": f"cat-{i % 7}"},
        "score": {"N": _NUMBERS[i % len(_NUMBERS)]},
        "name": {"S": "" if i % 11 == 0 else f"name \u00e9\u6f22 {i}"},
        "blob": {"B": bytes([0, i % 256, 255, 0]) + i.to_bytes(4, "big")},
        "flag": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "tags": {"SS": sorted({f"t{i % 3}", f"t{i % 5 + 3}"})},
        "nums": {"NS": ["1", str(i), "-2.5"] if i not in (1,) else ["1", "-2.5"]},
        "blobs": {"BS": [b"\x00", bytes([1 + i % 200])]},
        "doc": {"M": {"city": {"S": "Paris" if i % 2 else "Lyon"}, "zip": {"N": str(75000 + i % 100)},
                      "raw": {"B": b"\x00\x01"}}},
        "list": {"L": [{"S": "a"}, {"N": "1E+2"}, {"BOOL": False}, {"NULL": True}, {"BS": [b"x"]}]},
        "legacy_name": {"S": f"legacy {i}"},
        "expires_at": {"N": str(4102444800 + i)},  # 2100-01-01: never expires during a test
    }
    # Rare heavy items keep the demo quick while still covering the limits.
    if i % 500 == 0:
        item["deep"] = _nested(31, i)  # 32 levels of nesting counting the attribute itself
    if i % 10_000 == 0:
        item["big"] = {"S": "x" * 350_000}  # near the 400 KB item limit
    return item


def client_for(endpoint: str, region: str = "us-east-1", verify: str | bool | None = None):
    """A plain boto3 client; `verify` is a CA bundle's path for an HTTPS test server."""
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=region, verify=verify,
                        aws_access_key_id="test", aws_secret_access_key="test")


def table_names(endpoint: str, verify: str | bool | None = None) -> list[str]:
    """Every table's name (ListTables answers at most 100 a page: the test servers hold more)."""
    return [name for page in client_for(endpoint, verify=verify).get_paginator("list_tables").paginate()
            for name in page["TableNames"]]


def _wait_active(client, table: str) -> None:
    for _ in range(600):
        if client.describe_table(TableName=table)["Table"]["TableStatus"] == "ACTIVE":
            return
        time.sleep(0.1)
    raise RuntimeError(f"{table} did not become ACTIVE")


def create_table(endpoint: str, table: str, **definition) -> None:
    client = client_for(endpoint)
    client.create_table(TableName=table, **definition)
    _wait_active(client, table)


def put_items(endpoint: str, table: str, items, *, batch: int = 25, threads: int = 8) -> int:
    """BatchWriteItem all items (re-sending unprocessed ones); returns the count."""
    client = client_for(endpoint)
    items = list(items)
    chunks = [items[i:i + batch] for i in range(0, len(items), batch)]

    def write(chunk):
        requests = [{"PutRequest": {"Item": item}} for item in chunk]
        while requests:
            response = client.batch_write_item(RequestItems={table: requests})
            requests = response.get("UnprocessedItems", {}).get(table, [])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, chunks))
    return len(items)


def keyed_by(name: str, kind: str = "S", *, sort: tuple[str, str] | None = None, streamed: bool = False) -> dict:
    """A CreateTable definition, on demand: hash key `name` of type `kind`, sort key `sort`
    (name, type) if given; `streamed`: with a stream of new and old images."""
    keys = [(name, kind, "HASH")] + ([(*sort, "RANGE")] if sort else [])
    definition = {"KeySchema": [{"AttributeName": key, "KeyType": role} for key, _, role in keys],
                  "AttributeDefinitions": [{"AttributeName": key, "AttributeType": type_} for key, type_, _ in keys],
                  "BillingMode": "PAY_PER_REQUEST"}
    if streamed:
        definition["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return definition


def seed_lab_tables(endpoint: str) -> None:
    create_table(endpoint, "MusicCollection", **keyed_by("Artist", sort=("SongTitle", "S")))
    put_items(endpoint, "MusicCollection", MUSIC_ITEMS)
    create_table(endpoint, "mutant_data", **keyed_by("last_name"))
    put_items(endpoint, "mutant_data", MUTANT_ITEMS)


def seed_all_types(endpoint: str, table: str = "demo_all_types", count: int = 50_000) -> None:
    create_table(endpoint, table, **ALL_TYPES_TABLE)
    client = client_for(endpoint)
    client.update_time_to_live(TableName=table,
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    put_items(endpoint, table, (all_types_item(i) for i in range(count)))


DEMO_ITEMS = 50_000


def seed_demo_tables(endpoint: str, count: int = DEMO_ITEMS) -> None:
    """The tables of configs/local.yaml: the lab's two, and `count` items of demo_all_types."""
    seed_lab_tables(endpoint)
    seed_all_types(endpoint, count=count)


def _usage_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.seed",
                                     description="Create and fill the tables configs/local.yaml names.")
    parser.add_argument("endpoint", nargs="?", default="http://127.0.0.1:8001",
                        help="the source's DynamoDB API (default: DynamoDB Local of deploy/docker-compose.yml)")
    parser.add_argument("--items", type=int, default=DEMO_ITEMS, help="items of demo_all_types")
    args = parser.parse_args(argv)
    try:
        seed_demo_tables(args.endpoint, args.items)
    except EndpointConnectionError:
        _usage_error(f"nothing answers at {args.endpoint}; start it first "
                     f"(docker compose -f deploy/docker-compose.yml up -d)")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
        _usage_error(f"{exc.response['Error'].get('Message', '')}: the tables exist already at {args.endpoint} "
                     f"(DynamoDB Local keeps them until it restarts)")
    print(f"seeded MusicCollection, mutant_data and {args.items:,} items of demo_all_types at {args.endpoint}")


def scan_all(endpoint: str, table: str, verify: str | bool | None = None) -> list[dict]:
    client = client_for(endpoint, verify=verify)
    items, start = [], None
    while True:
        kwargs = {"TableName": table, "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        items.extend(page["Items"])
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def _number(text: str) -> str:
    return str(decimal.Context(prec=60).normalize(decimal.Decimal(text)))


def _canonical_value(value: dict):
    (tag, inner), = value.items()
    if tag == "N":
        return {tag: _number(inner)}
    if tag == "NS":
        return {tag: sorted(_number(n) for n in inner)}
    if tag == "SS":
        return {tag: sorted(inner)}
    if tag == "BS":
        return {tag: sorted(base64.b64encode(b).decode() for b in inner)}
    if tag == "B":
        return {tag: base64.b64encode(inner).decode()}
    if tag == "M":
        return {tag: {k: _canonical_value(v) for k, v in inner.items()}}
    if tag == "L":
        return {tag: [_canonical_value(v) for v in inner]}
    return value


def canonical(item: dict) -> str:
    """An item as text that is equal for equal items (sets as sets, numbers by value)."""
    return json.dumps({k: _canonical_value(v) for k, v in item.items()}, sort_keys=True)


def table_items(endpoint: str, table: str, renames: dict[str, str] | None = None) -> list[str]:
    """A table's items, `canonical` and sorted, attributes renamed as `renames` says (as a copy
    that renames them should hold them)."""
    renames = renames or {}
    return sorted(canonical({renames.get(k, k): v for k, v in item.items()}) for item in scan_all(endpoint, table))


def assert_same_items(source: str, target: str, table: str, target_table: str | None = None,
                      renames: dict[str, str] | None = None) -> int:
    """Assert that the target table holds exactly the source table's items (attributes renamed
    as `renames` says); their count."""
    expected = table_items(source, table, renames)
    actual = table_items(target, target_table or table)
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    assert not missing and not extra, f"{len(missing)} source items not in the target, e.g. {missing[:3]}; " \
                                      f"{len(extra)} target items not in the source, e.g. {extra[:3]}"
    assert actual == expected
    return len(actual)


# A table keyed by `id` (S) whose stream records new and old images (for `stream_changes`).
STREAMED_TABLE = keyed_by("id", streamed=True)


def stream_changes(endpoint: str, table: str, start: int, count: int) -> int:
    """Puts of `count` keys (id S, n N), then updates of every other one; the number of
    stream records they make."""
    client = client_for(endpoint)
    for i in range(start, start + count):
        client.put_item(TableName=table, Item={"id": {"S": f"k{i:05d}"}, "n": {"N": str(i)}})
    updated = range(start, start + count, 2)
    for i in updated:
        client.update_item(TableName=table, Key={"id": {"S": f"k{i:05d}"}}, UpdateExpression="SET n = n + :one",
                           ExpressionAttributeValues={":one": {"N": "1"}})
    return count + len(updated)


if __name__ == "__main__":
    main()
