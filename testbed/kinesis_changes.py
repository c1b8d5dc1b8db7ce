"""A DynamoDB Local table whose changes go to a Kinesis data stream, as DynamoDB writes them there.

DynamoDB Local and moto cannot send a table's changes to Kinesis, so the test does what
DynamoDB would: `KinesisTable.put`/`delete` change the table (the truth the target is
compared with) and return the change record, and `deliver` puts a record on the stream,
as often, on whichever shard and in whatever order a test wants: DynamoDB documents that
"the Kinesis data stream records might appear in a different sequence than the item changes
occurred" and "might also appear more than once in the stream".

The record is the change as DynamoDB writes it to Kinesis (DynamoDB developer guide, "Change
data capture for Kinesis Data Streams with DynamoDB",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds.html): JSON with
`awsRegion`, `eventID`, `eventName` (INSERT, MODIFY, REMOVE), `userIdentity`, `recordFormat`
`application/json`, `tableName`, `eventSource` `aws:dynamodb`, and `dynamodb` with
`ApproximateCreationDateTime` ("the time of the modification in milliseconds", or in
microseconds for a table whose ApproximateCreationDateTimePrecision is MICROSECOND, which such
records also name in `dynamodb.ApproximateCreationDateTimePrecision`), `Keys`, `NewImage` and
`OldImage` (both images: every change DynamoDB sends carries them) and `SizeBytes`. Which
Kinesis partition key DynamoDB uses is not documented; here it is the MD5 of the item's key
in hex (so a key's changes go to one shard unless a test names another), and `deliver` can
put a record on a given shard (`ExplicitHashKey`, the start of its hash key range).

Each change gets a creation time after the previous one's (at least 1 ms or 1 us later), as
DynamoDB's changes of one key are made one after another; `created` sets one by hand (a tie).
"""
from __future__ import annotations

import hashlib
import json
import time
import uuid

import boto3

from testbed import seed

CLIENT_ARGS = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}


def kinesis_client(endpoint: str):
    return boto3.client("kinesis", endpoint_url=endpoint, **CLIENT_ARGS)


class KinesisTable:
    """A table in DynamoDB Local (keyed by `id`, S) and the Kinesis data stream it sends its changes to."""

    def __init__(self, dynamodb_endpoint: str, kinesis_endpoint: str, table: str, *, shards: int = 2,
                 precision: str = "MILLISECOND"):
        self.table, self.precision = table, precision
        self.dynamodb = seed.client_for(dynamodb_endpoint)
        self.kinesis = kinesis_client(kinesis_endpoint)
        self.stream_name = f"{table}-changes"
        self.kinesis.create_stream(StreamName=self.stream_name, ShardCount=shards)
        self.arn = self.kinesis.describe_stream_summary(StreamName=self.stream_name)["StreamDescriptionSummary"][
            "StreamARN"]
        self._scale = 1_000_000 if precision == "MICROSECOND" else 1000
        self._last_created = 0

    # --- the table and its change records -------------------------------------------------

    def put(self, item: dict, *, created: int | None = None) -> dict:
        """Put the item in the table; its change record (INSERT or MODIFY, with both images)."""
        key = {"id": item["id"]}
        old = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        self.dynamodb.put_item(TableName=self.table, Item=item)
        return self.record("MODIFY" if old else "INSERT", key, new=item, old=old, created=created)

    def delete(self, key: dict, *, created: int | None = None) -> dict:
        old = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        self.dynamodb.delete_item(TableName=self.table, Key=key)
        return self.record("REMOVE", key, old=old, created=created)

    def record(self, event: str, key: dict, *, new: dict | None = None, old: dict | None = None,
               created: int | None = None, table: str | None = None) -> dict:
        """A change record as DynamoDB writes it to Kinesis (see the module docstring)."""
        if created is None:
            created = max(int(time.time() * self._scale), self._last_created + 1)
        self._last_created = max(self._last_created, created)
        change = {"ApproximateCreationDateTime": created, "Keys": key, "SizeBytes": 0}
        if self.precision == "MICROSECOND":
            change["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
        if new is not None:
            change["NewImage"] = new
        if old is not None:
            change["OldImage"] = old
        change["SizeBytes"] = len(json.dumps(change))
        return {"awsRegion": "us-east-1", "eventID": str(uuid.uuid4()), "eventName": event, "userIdentity": None,
                "recordFormat": "application/json", "tableName": table or self.table, "dynamodb": change,
                "eventSource": "aws:dynamodb"}

    # --- the stream -------------------------------------------------------------------------

    def put_new(self, items: list[dict]) -> list[dict]:
        """Put items of new keys in the table (batched); their INSERT records."""
        seed.put_items(self.dynamodb.meta.endpoint_url, self.table, items)
        return [self.record("INSERT", {"id": item["id"]}, new=item) for item in items]

    def deliver(self, *records: dict, shard: str | None = None) -> None:
        """Put the records on the stream, in this order: on `shard` (an open one), or by their key."""
        target = {"ExplicitHashKey": self.open_shards()[shard]} if shard else {}
        entries = [{"Data": json.dumps(record).encode(), "PartitionKey": hashlib.md5(
            json.dumps(record["dynamodb"]["Keys"], sort_keys=True).encode()).hexdigest(), **target}
            for record in records]
        for start in range(0, len(entries), 500):  # PutRecords takes up to 500 records
            answer = self.kinesis.put_records(StreamARN=self.arn, Records=entries[start:start + 500])
            assert not answer.get("FailedRecordCount"), answer

    def shards(self) -> list[dict]:
        return self.kinesis.list_shards(StreamARN=self.arn)["Shards"]

    def open_shards(self) -> dict[str, str]:
        """The open shards' ids, each with the first hash key of its range."""
        return {s["ShardId"]: s["HashKeyRange"]["StartingHashKey"] for s in self.shards()
                if "EndingSequenceNumber" not in s["SequenceNumberRange"]}

    def split(self, shard: str) -> tuple[str, str]:
        """SplitShard in the middle of its range; the two children's ids."""
        before = {s["ShardId"] for s in self.shards()}
        found = next(s for s in self.shards() if s["ShardId"] == shard)["HashKeyRange"]
        middle = (int(found["StartingHashKey"]) + int(found["EndingHashKey"])) // 2 + 1
        self.kinesis.split_shard(StreamARN=self.arn, ShardToSplit=shard, NewStartingHashKey=str(middle))
        low, high = sorted((s for s in self.shards() if s["ShardId"] not in before),
                           key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
        return low["ShardId"], high["ShardId"]

    def merge(self, shard: str, adjacent: str) -> str:
        """MergeShards of two adjacent shards (`shard` the lower range); the child's id."""
        before = {s["ShardId"] for s in self.shards()}
        self.kinesis.merge_shards(StreamARN=self.arn, ShardToMerge=shard, AdjacentShardToMerge=adjacent)
        (child,) = [s["ShardId"] for s in self.shards() if s["ShardId"] not in before]
        return child
