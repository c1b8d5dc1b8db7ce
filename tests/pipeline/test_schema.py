"""The table step's pure parts: target table requests, key schemas, tags, segment counts."""
from __future__ import annotations

from pipeline.checks import schema
from pipeline.checks.tables import auto_segments


DESCRIPTION = {
    "TableName": "src",
    "KeySchema": [{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "N"},
                             {"AttributeName": "g", "AttributeType": "B"}],
    "GlobalSecondaryIndexes": [{"IndexName": "gi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]},
                                "ProvisionedThroughput": {"ReadCapacityUnits": 5}, "IndexStatus": "ACTIVE"}],
    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
}


def test_create_request_copies_keys_and_indexes_with_renames_and_on_demand_billing():
    request = schema.create_table_request(DESCRIPTION, "dst", {"sk": "sort", "a": "alpha"})
    assert request["TableName"] == "dst" and request["BillingMode"] == "PAY_PER_REQUEST"
    assert {"AttributeName": "sort", "KeyType": "RANGE"} in request["KeySchema"]
    assert {"AttributeName": "sort", "AttributeType": "N"} in request["AttributeDefinitions"]
    assert request["GlobalSecondaryIndexes"] == [{
        "IndexName": "gi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["alpha", "b"]}}]
    assert "ProvisionedThroughput" not in request and "LocalSecondaryIndexes" not in request


def test_a_target_able_to_stream_is_created_with_its_stream_on_and_tagged_for_vnodes():
    plain = schema.create_table_request(DESCRIPTION, "dst", {})
    streaming = schema.create_table_request(DESCRIPTION, "dst", {}, stream=True, vnodes=True)

    assert "StreamSpecification" not in plain and "Tags" not in plain
    assert streaming["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert streaming["Tags"] == [{"Key": "system:initial_tablets", "Value": "none"}]
    assert {k: v for k, v in streaming.items() if k not in ("StreamSpecification", "Tags")} == plain


def test_key_schema_puts_the_partition_key_first_and_shows_roles():
    key = schema.key_schema(DESCRIPTION)
    assert key.names == ("pk", "sk")
    assert str(key) == "pk S (HASH), sk N (RANGE)"
    assert schema.key_schema(DESCRIPTION, {"pk": "id"}).names == ("id", "sk")


def test_portable_tags_drop_reserved_prefixes_and_keep_at_most_50():
    tags = [{"Key": "system:write_isolation", "Value": "x"}, {"Key": "aws:cloudformation:stack", "Value": "y"}]
    tags += [{"Key": f"k{i}", "Value": str(i)} for i in range(52)]
    kept, dropped = schema.portable_tags(tags)
    assert len(kept) == 50 and kept[0]["Key"] == "k0"
    assert dropped == ["system:write_isolation", "aws:cloudformation:stack", "k50", "k51"]


def test_auto_segments_scale_with_workers_and_size_but_skip_empty_segments():
    assert auto_segments(item_count=5, size_bytes=500, page_size=1000, workers=2) == 1
    # Every worker gets a segment per page it keeps in flight (16 by default) ...
    assert auto_segments(item_count=50_000, size_bytes=20 << 20, page_size=1000, workers=2) == 32
    assert auto_segments(item_count=50_000, size_bytes=20 << 20, page_size=1000, workers=2, pages_in_flight=4) == 8
    assert auto_segments(item_count=0, size_bytes=0, page_size=1000, workers=3) == 48  # count not known yet
    # ... and segments of ~64 MiB; where a task holds its output (Dask), a task's group is ~64 MiB.
    assert auto_segments(item_count=10**9, size_bytes=1 << 40, page_size=1000, workers=10) == 16384
    assert auto_segments(item_count=10**9, size_bytes=1 << 40, page_size=1000, workers=10,
                         task_holds_output=True) == 16 * 16384
