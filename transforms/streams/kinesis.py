"""A Kinesis data stream as a table's change source ("Kinesis Data Streams for DynamoDB").

A table can send its changes to a Kinesis data stream, which keeps them from 24 hours up
to a year, instead of (or besides) its DynamoDB stream's 24 hours. `KinesisSource` reads it
for the same engine, shard graph and checkpoints as DynamoDB Streams: shards are listed,
read in order, parents before children, and each page is handed on in the shape
`StreamsData.get_records` gives (`eventName`, `dynamodb`: `Keys`, `NewImage`,
`SequenceNumber`, `ApproximateCreationDateTime` in epoch seconds).

What DynamoDB writes, from the DynamoDB developer guide, "Change data capture for Kinesis
Data Streams with DynamoDB" (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/kds.html)
and the DynamoDB API reference:

- Each Kinesis record's data is one change as JSON: `eventName` (INSERT, MODIFY, REMOVE),
  `tableName`, `eventSource` `aws:dynamodb`, `recordFormat` `application/json` and
  `dynamodb` with `Keys`, `NewImage`, `OldImage`, `SizeBytes` and `ApproximateCreationDateTime`.
  Several tables may send to one stream: a record of another table is skipped; a record that
  is not a DynamoDB change at all stops the run (the wrong stream is configured).
- `ApproximateCreationDateTime` "indicates the time of the modification in milliseconds", or
  in microseconds when the table's `ApproximateCreationDateTimePrecision` is MICROSECOND
  (EnableKinesisStreamingConfiguration: MILLISECOND or MICROSECOND). Records written with
  microseconds say so in `dynamodb.ApproximateCreationDateTimePrecision`; without it the
  magnitude tells them apart (10^14 ms is the year 5138, 10^14 us is 1973).
- Records "might appear in a different sequence than the item changes occurred" and "might
  also appear more than once": each window is checked against the newest change handed on
  per key (`change_order.LatestChanges`, `admit`), recalled from the stream at every start
  (`recall`).

What Kinesis does, from the Kinesis Data Streams API reference
(https://docs.aws.amazon.com/kinesis/latest/APIReference/):

- ListShards lists the shards oldest first, `ExclusiveStartShardId` from a shard on (with
  `NextToken` alone on later pages); expired shards are not listed. A shard names its
  `ParentShardId`, and a shard made by MergeShards also its `AdjacentParentShardId`: it is
  read only once both parents are.
- GetShardIterator: TRIM_HORIZON (the oldest record kept), AFTER_SEQUENCE_NUMBER,
  AT_SEQUENCE_NUMBER, AT_TIMESTAMP (by arrival time). GetRecords: "If the shard has been
  closed ... GetRecords returns null in NextShardIterator"; it "might take multiple calls to
  get to a portion of the shard that contains records", so an empty page is the shard's end
  only when `MillisBehindLatest` is 0 ("caught up, and there are no new records"); five
  calls a second a shard, ProvisionedThroughputExceededException beyond.
- Trimmed records are skipped silently: there is no TrimmedDataAccessException. So a shard
  continued from a checkpoint is first asked for the checkpointed record itself
  (AT_SEQUENCE_NUMBER): if it is gone, the records after it may be gone too: changes lost
  (exit 3). A shard quiet for longer than the retention looks the same (its last record
  aged out); with a stream that keeps records a week or more that needs a table quiet for
  that long at a restart.
- DescribeStreamSummary gives `RetentionPeriodHours` and `StreamCreationTimestamp`: how far
  back the stream can hold records (the retention, or less for a stream younger than that) is
  what a capture's coverage is reckoned from, instead of `source.stream_retention_hours`. When
  the table began sending to the stream is not known here: the user guide asks for the
  destination to be on before the export's time.

Through aiobotocore's kinesis client: a Kinesis stream for DynamoDB has a few shards, read
five times a second at most, far from the rates that made the DynamoDB Streams data plane
skip the SDK.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Mapping

import orjson

from transforms.dynamo.retry import call_with_retry, error_code
from transforms.errors import ChangesLost, MigrateError
from transforms.state.stream_checkpoints import ShardCheckpoint
from transforms.streams.change_order import RECALL_SECONDS, LatestChanges
from transforms.streams.records import decode_change
from transforms.streams.shards import ShardTask

log = logging.getLogger(__name__)

READ_SECONDS = 0.2      # GetRecords: five calls a second per shard
RECALL_PAGE = 1000
RECALLS_IN_FLIGHT = 16
_MICROSECONDS_FROM = 1e14  # an ApproximateCreationDateTime this large is in microseconds


def is_kinesis(stream_arn: str) -> bool:
    """Whether a stream ARN is a Kinesis data stream's (arn:aws:kinesis:...) rather than a DynamoDB stream's."""
    return stream_arn.split(":")[2:3] == ["kinesis"]


def creation_seconds(change: dict) -> float:
    """A Kinesis change record's ApproximateCreationDateTime in epoch seconds (see the module docstring)."""
    value = change["ApproximateCreationDateTime"]
    precision = change.get("ApproximateCreationDateTimePrecision")
    micro = precision == "MICROSECOND" if precision else value >= _MICROSECONDS_FROM
    return value / (1e6 if micro else 1e3)


async def retention_hours(client, table: str, stream_arn: str) -> float:
    """How far back the stream can hold records, in hours: its RetentionPeriodHours, or its age
    if it is younger; a clear error (exit 2) when it is missing or being deleted."""
    try:
        summary = (await client.describe_stream_summary(StreamARN=stream_arn))["StreamDescriptionSummary"]
    except Exception as exc:  # noqa: BLE001 - botocore builds exception classes per client
        if error_code(exc) != "ResourceNotFoundException":
            raise
        raise MigrateError(f"{table}: Kinesis data stream {stream_arn} (tables[].kinesis_stream_arn) does not exist; "
                           f"give the stream the table sends its changes to") from None
    if summary.get("StreamStatus") in ("CREATING", "DELETING"):
        raise MigrateError(f"{table}: Kinesis data stream {stream_arn} is {summary['StreamStatus']}; wait until it "
                           f"is ACTIVE")
    age = (time.time() - summary["StreamCreationTimestamp"].timestamp()) / 3600
    return min(float(summary["RetentionPeriodHours"]), age)


class NotAChange(MigrateError):
    """A Kinesis record that is not a DynamoDB change: the configured stream is not the table's."""


class KinesisSource:
    """The Kinesis side of `sources.ChangeSources` (see the module docstring); one per event loop."""

    def __init__(self, client, read_attempts: int):
        self._client = client
        self._attempts = read_attempts
        self._latest: dict[str, LatestChanges] = collections.defaultdict(LatestChanges)
        self._others_seen: set[tuple[str, str]] = set()

    # --- the shard graph ----------------------------------------------------------------

    async def list_shards(self, table: str, stream_arn: str, after: str | None) -> list[dict]:
        shards, token = [], None
        while True:
            if token:
                page = await self._client.list_shards(NextToken=token)
            else:
                page = await self._client.list_shards(
                    StreamARN=stream_arn, **({"ExclusiveStartShardId": after} if after else {}))
            shards.extend(page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                return shards

    # --- reading --------------------------------------------------------------------------

    async def shard_iterator(self, task: ShardTask, after: str | None) -> str:
        """TRIM_HORIZON, or just after `after` once the shard is seen to still hold it."""
        if after is None:
            return await self._iterator(task, "TRIM_HORIZON")
        await self._check_holds(task, after)
        return await self._iterator(task, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)

    async def latest_iterator(self, task: ShardTask) -> str:
        """Just after the shard's newest record: what arrives from now on (`plan`'s sample)."""
        return await self._iterator(task, "LATEST")

    async def _iterator(self, task: ShardTask, kind: str, **position) -> str:
        return (await self._client.get_shard_iterator(StreamARN=task.stream_arn, ShardId=task.shard_id,
                                                      ShardIteratorType=kind, **position))["ShardIterator"]

    async def _check_holds(self, task: ShardTask, sequence: str) -> None:
        """`ChangesLost` unless the shard still holds record `sequence` (see the module docstring)."""
        iterator = await self._iterator(task, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=sequence)
        while iterator:
            page = await self._client.get_records(StreamARN=task.stream_arn, ShardIterator=iterator, Limit=1)
            if page["Records"]:
                if int(page["Records"][0]["SequenceNumber"]) == int(sequence):
                    return
                break
            if not page.get("MillisBehindLatest"):
                break
            iterator = page.get("NextShardIterator")
            await asyncio.sleep(READ_SECONDS)
        raise ChangesLost(f"{task.table}: shard {task.shard_id} of Kinesis data stream {task.stream_arn} no longer "
                          f"holds the last change applied (sequence number {sequence}): the stream's retention "
                          f"passed since, and changes after it may be lost; copy the table again with "
                          f"`migrate --streams --restart`")

    async def get_records(self, task: ShardTask, iterator: str, limit: int) -> dict:
        """One page: this table's changes, decoded, with `NextShardIterator` and `MillisBehindLatest`."""
        page = await self._client.get_records(StreamARN=task.stream_arn, ShardIterator=iterator, Limit=limit)
        records = [change for record in page["Records"] if (change := self._decode(task, record)) is not None]
        return {"Records": records, "NextShardIterator": page.get("NextShardIterator"),
                "MillisBehindLatest": page.get("MillisBehindLatest", 0)}

    def _decode(self, task: ShardTask, record: dict) -> dict | None:
        try:
            data = orjson.loads(record["Data"])
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or data.get("eventSource") != "aws:dynamodb" or "dynamodb" not in data:
            raise NotAChange(f"{task.table}: record {record['SequenceNumber']} of shard {task.shard_id} of Kinesis "
                             f"data stream {task.stream_arn} is not a DynamoDB change (Kinesis Data Streams for "
                             f"DynamoDB writes JSON with eventSource aws:dynamodb): is tables[].kinesis_stream_arn "
                             f"the stream the table sends its changes to?")
        if data.get("tableName") != task.table:
            self._note_other_table(task, str(data.get("tableName")))
            return None
        change = data["dynamodb"]
        decode_change(change)
        decoded = {"Keys": change["Keys"], "SequenceNumber": record["SequenceNumber"],
                   "ApproximateCreationDateTime": creation_seconds(change)}
        if "NewImage" in change:
            decoded["NewImage"] = change["NewImage"]
        return {"eventName": data["eventName"], "dynamodb": decoded}

    def _note_other_table(self, task: ShardTask, other: str) -> None:
        if (task.table, other) not in self._others_seen:
            self._others_seen.add((task.table, other))
            log.info("%s: Kinesis data stream %s also carries changes of table %s; they are skipped", task.table,
                     task.stream_arn, other)

    # --- order ----------------------------------------------------------------------------

    def admit(self, task: ShardTask, records: list[dict]) -> list[dict]:
        """The records not older than a change of their key handed on before (`LatestChanges`)."""
        return self._latest[task.table].admit(records)

    async def recall(self, table: str, stream_arn: str, shards: list[dict],
                     done: Mapping[str, ShardCheckpoint]) -> None:
        """Remember the changes handed on in the `RECALL_SECONDS` before the table's latest
        checkpoint: each listed shard read from then (AT_TIMESTAMP) up to its checkpoint."""
        positions = {shard["ShardId"]: done[shard["ShardId"]] for shard in shards
                     if shard["ShardId"] in done and done[shard["ShardId"]].sequence_number is not None
                     and done[shard["ShardId"]].last_change_time is not None}
        if not positions:
            return
        since = max(checkpoint.last_change_time for checkpoint in positions.values()) - RECALL_SECONDS
        gate = asyncio.Semaphore(RECALLS_IN_FLIGHT)

        async def recall_shard(shard: str, up_to: int) -> None:
            async with gate:
                await self._recall_shard(ShardTask(table, stream_arn, shard), since, up_to)

        await asyncio.gather(*(recall_shard(shard, int(checkpoint.sequence_number))
                               for shard, checkpoint in positions.items()))

    async def _recall_shard(self, task: ShardTask, since: float, up_to: int) -> None:
        latest = self._latest[task.table]
        iterator = await call_with_retry(lambda: self._iterator(task, "AT_TIMESTAMP", Timestamp=since),
                                         max_attempts=self._attempts)
        while iterator:
            page = await call_with_retry(lambda: self._client.get_records(
                StreamARN=task.stream_arn, ShardIterator=iterator, Limit=RECALL_PAGE), max_attempts=self._attempts)
            held = [record for record in page["Records"] if int(record["SequenceNumber"]) <= up_to]
            latest.remember([change for record in held if (change := self._decode(task, record)) is not None])
            if len(held) < len(page["Records"]) or (not page["Records"] and not page.get("MillisBehindLatest")):
                return
            iterator = page.get("NextShardIterator")
            await asyncio.sleep(READ_SECONDS)
