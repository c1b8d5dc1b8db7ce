"""`KinesisSource` against moto's Kinesis (`testbed/moto_kinesis.py`): DynamoDB's change
records decoded into the DynamoDB Streams page shape, shards listed, checkpoints checked,
the stream's retention read. The records are written as `testbed/kinesis_changes.py`
says DynamoDB writes them."""
from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from testbed.kinesis_changes import kinesis_client
from transforms.dynamo import endpoints
from transforms.dynamo.endpoints import Credentials, SourceSpec
from transforms.errors import ChangesLost, ExitCode, MigrateError
from transforms.streams.kinesis import NotAChange, creation_seconds, retention_hours
from transforms.streams.shards import ShardTask
from transforms.streams.sources import open_change_sources

pytestmark = pytest.mark.integration

MS, US = 1_700_000_000_123, 1_700_000_000_123_456  # the same moment, in milliseconds and microseconds


def _spec(kinesis) -> SourceSpec:
    return SourceSpec(region="us-east-1", kinesis_endpoint=kinesis.endpoint,
                      credentials=Credentials(access_key_id="test", secret_access_key="test"))


def _stream(kinesis) -> tuple[object, str, str]:
    client = kinesis_client(kinesis.endpoint)
    name = f"changes-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=1)
    arn = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    return client, arn, client.list_shards(StreamARN=arn)["Shards"][0]["ShardId"]


def _change(table: str, name: str, created: int, *, event: str = "MODIFY", precision: str | None = None) -> bytes:
    change = {"ApproximateCreationDateTime": created, "Keys": {"id": {"S": name}}, "SizeBytes": 40,
              "OldImage": {"id": {"S": name}, "v": {"N": "0"}}}
    if event != "REMOVE":
        change["NewImage"] = {"id": {"S": name}, "v": {"N": "1"}, "b": {"B": base64.b64encode(b"\x00\x01").decode()}}
    if precision:
        change["ApproximateCreationDateTimePrecision"] = precision
    return json.dumps({"awsRegion": "us-east-1", "eventID": "e", "eventName": event, "userIdentity": None,
                       "recordFormat": "application/json", "tableName": table, "dynamodb": change,
                       "eventSource": "aws:dynamodb"}).encode()


def _run(kinesis, body):
    async def run():
        async with open_change_sources(_spec(kinesis), read_attempts=3) as sources:
            return await body(sources)
    return asyncio.run(run())


def test_creation_times_in_milliseconds_or_microseconds_become_seconds():
    assert creation_seconds({"ApproximateCreationDateTime": MS}) == pytest.approx(1_700_000_000.123)
    assert creation_seconds({"ApproximateCreationDateTime": US}) == pytest.approx(1_700_000_000.123456)
    assert creation_seconds({"ApproximateCreationDateTime": US, "ApproximateCreationDateTimePrecision":
                             "MICROSECOND"}) == pytest.approx(1_700_000_000.123456)


def test_a_page_holds_the_tables_changes_in_the_dynamodb_streams_shape(kinesis):
    client, arn, shard = _stream(kinesis)
    for data in (_change("orders", "a", MS), _change("customers", "a", MS + 1),
                 _change("orders", "b", US + 2, event="REMOVE", precision="MICROSECOND")):
        client.put_record(StreamARN=arn, Data=data, PartitionKey="p")
    task = ShardTask("orders", arn, shard)

    async def read(sources):
        page = await sources.get_records(task, await sources.shard_iterator(task, None), 100)
        end = await sources.get_records(task, page["NextShardIterator"], 100)
        return page, end

    page, end = _run(kinesis, read)
    first, second = page["Records"]
    assert first == {"eventName": "MODIFY", "dynamodb": {
        "Keys": {"id": {"S": "a"}}, "NewImage": {"id": {"S": "a"}, "v": {"N": "1"}, "b": {"B": b"\x00\x01"}},
        "SequenceNumber": "1", "ApproximateCreationDateTime": pytest.approx(1_700_000_000.123)}}
    assert second == {"eventName": "REMOVE", "dynamodb": {
        "Keys": {"id": {"S": "b"}}, "SequenceNumber": "3",
        "ApproximateCreationDateTime": pytest.approx(1_700_000_000.123458)}}  # the other table's record is skipped
    assert end["Records"] == [] and end["MillisBehindLatest"] == 0  # the end of an open shard


def test_a_record_that_is_not_a_dynamodb_change_stops_the_run(kinesis):
    client, arn, shard = _stream(kinesis)
    client.put_record(StreamARN=arn, Data=b'{"clicks": 3}', PartitionKey="p")
    task = ShardTask("orders", arn, shard)

    async def read(sources):
        return await sources.get_records(task, await sources.shard_iterator(task, None), 100)

    with pytest.raises(NotAChange) as stopped:
        _run(kinesis, read)
    assert stopped.value.code == ExitCode.USAGE and "is not a DynamoDB change" in str(stopped.value)


def test_a_shard_continues_after_its_checkpoint_once_it_is_seen_to_hold_it(kinesis):
    """moto never trims a record, so the loss is shown with a checkpoint the shard never held."""
    client, arn, shard = _stream(kinesis)
    for i in range(3):
        client.put_record(StreamARN=arn, Data=_change("orders", f"k{i}", MS + i), PartitionKey="p")
    task = ShardTask("orders", arn, shard)

    async def read(sources):
        after_first = await sources.get_records(task, await sources.shard_iterator(task, "1"), 100)
        with pytest.raises(ChangesLost) as lost:
            await sources.shard_iterator(task, "7")
        return after_first, lost.value

    after_first, lost = _run(kinesis, read)
    assert [r["dynamodb"]["SequenceNumber"] for r in after_first["Records"]] == ["2", "3"]
    assert lost.code == ExitCode.CHANGES_LOST and "no longer holds the last change applied" in str(lost)


def test_shards_are_listed_after_the_last_one_seen_with_both_parents_of_a_merge(kinesis):
    client = kinesis_client(kinesis.endpoint)
    name = f"changes-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=2)
    arn = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    first, second = [s["ShardId"] for s in client.list_shards(StreamARN=arn)["Shards"]]
    client.merge_shards(StreamARN=arn, ShardToMerge=first, AdjacentShardToMerge=second)

    async def listings(sources):
        return (await sources.list_shards("orders", arn, None), await sources.list_shards("orders", arn, second))

    every, after = _run(kinesis, listings)
    assert [s["ShardId"] for s in every][:2] == [first, second]
    assert "EndingSequenceNumber" in every[0]["SequenceNumberRange"]
    (child,) = after
    assert (child["ParentShardId"], child["AdjacentParentShardId"]) == (first, second)


def test_the_retention_is_the_streams_at_most_its_age_and_a_missing_stream_is_a_usage_error(kinesis):
    """A stream made a moment ago holds nothing older than itself, whatever its retention
    (moto's streams cannot be older than the test)."""
    client, arn, _ = _stream(kinesis)
    client.increase_stream_retention_period(StreamARN=arn, RetentionPeriodHours=168)
    age = client.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]["StreamCreationTimestamp"]

    async def ask():
        async with endpoints.kinesis_client(_spec(kinesis)) as tool:
            hours = await retention_hours(tool, "orders", arn)
            with pytest.raises(MigrateError) as missing:
                await retention_hours(tool, "orders", arn + "-gone")
            return hours, missing.value

    hours, missing = asyncio.run(ask())
    assert 0 < hours <= (time.time() - age.timestamp()) / 3600 < 0.1
    assert missing.code == ExitCode.USAGE and "does not exist" in str(missing)


def test_an_older_streams_reach_is_its_retention():
    """moto's streams are never older than the test: a stub stands in for one made 30 days ago,
    answering as DescribeStreamSummary does (RetentionPeriodHours, StreamCreationTimestamp)."""
    class MonthOldStream:
        async def describe_stream_summary(self, StreamARN):  # noqa: N803 - the API's parameter name
            return {"StreamDescriptionSummary": {
                "StreamARN": StreamARN, "StreamStatus": "ACTIVE", "RetentionPeriodHours": 168,
                "StreamCreationTimestamp": datetime.now(timezone.utc) - timedelta(days=30)}}

    assert asyncio.run(retention_hours(MonthOldStream(), "orders", "arn")) == 168
