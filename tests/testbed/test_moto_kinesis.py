"""moto's Kinesis as amended in `moto_kinesis`: a resharded stream behaves as Kinesis documents."""
from __future__ import annotations

import uuid

import pytest

from testbed.kinesis_changes import kinesis_client

pytestmark = pytest.mark.integration


def _stream(kinesis, shards: int = 1):
    client = kinesis_client(kinesis.endpoint)
    name = f"reshard-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    return client, client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def _put(client, arn: str, data: bytes, hash_key: int) -> str:
    return client.put_record(StreamARN=arn, Data=data, PartitionKey="k", ExplicitHashKey=str(hash_key))["ShardId"]


def _read(client, arn: str, shard: str) -> tuple[list[bytes], dict]:
    iterator = client.get_shard_iterator(StreamARN=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"]
    page = client.get_records(StreamARN=arn, ShardIterator=iterator)
    return [record["Data"] for record in page["Records"]], page


def test_after_a_split_the_parent_keeps_its_records_and_new_ones_go_to_the_children(kinesis):
    client, arn = _stream(kinesis)
    (parent,) = [s["ShardId"] for s in client.list_shards(StreamARN=arn)["Shards"]]
    _put(client, arn, b"before", 10)
    client.split_shard(StreamARN=arn, ShardToSplit=parent, NewStartingHashKey=str(2**127))
    low, high = [s["ShardId"] for s in client.list_shards(StreamARN=arn)["Shards"][1:]]

    assert (_put(client, arn, b"low", 10), _put(client, arn, b"high", 2**127 + 1)) == (low, high)
    assert _read(client, arn, parent)[0] == [b"before"]
    assert [_read(client, arn, shard)[0] for shard in (low, high)] == [[b"low"], [b"high"]]


def test_a_merge_names_both_parents_and_starts_empty(kinesis):
    client, arn = _stream(kinesis, shards=2)
    first, second = [s["ShardId"] for s in client.list_shards(StreamARN=arn)["Shards"]]
    _put(client, arn, b"in the first", 0)
    _put(client, arn, b"in the second", 2**127 + 5)
    client.merge_shards(StreamARN=arn, ShardToMerge=first, AdjacentShardToMerge=second)
    child = client.list_shards(StreamARN=arn)["Shards"][-1]

    assert (child["ParentShardId"], child["AdjacentParentShardId"]) == (first, second)
    assert _read(client, arn, child["ShardId"])[0] == []
    assert _read(client, arn, first)[0] == [b"in the first"] and _read(client, arn, second)[0] == [b"in the second"]


def test_a_closed_shard_read_to_its_end_has_no_next_iterator_and_an_open_one_has(kinesis):
    client, arn = _stream(kinesis)
    (parent,) = [s["ShardId"] for s in client.list_shards(StreamARN=arn)["Shards"]]
    _put(client, arn, b"one", 1)
    _put(client, arn, b"two", 1)
    assert _read(client, arn, parent)[1]["NextShardIterator"]  # open: more may come
    client.split_shard(StreamARN=arn, ShardToSplit=parent, NewStartingHashKey=str(2**127))

    iterator = client.get_shard_iterator(StreamARN=arn, ShardId=parent, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"]
    first = client.get_records(StreamARN=arn, ShardIterator=iterator, Limit=1)
    assert [r["Data"] for r in first["Records"]] == [b"one"] and first["NextShardIterator"]
    last = client.get_records(StreamARN=arn, ShardIterator=first["NextShardIterator"])
    assert [r["Data"] for r in last["Records"]] == [b"two"] and last.get("NextShardIterator") is None


def test_list_shards_starts_after_the_exclusive_start_shard(kinesis):
    client, arn = _stream(kinesis, shards=3)
    shards = [s["ShardId"] for s in client.list_shards(StreamARN=arn)["Shards"]]
    after = client.list_shards(StreamARN=arn, ExclusiveStartShardId=shards[0])["Shards"]
    assert [s["ShardId"] for s in after] == shards[1:]
