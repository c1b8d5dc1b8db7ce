"""How fast a table changes, from its stream: what `plan` says a capture's spool will cost.

CloudWatch's write metrics would need another permission and another client; the stream
holds the same fact. Every open shard is read from its newest position (LATEST), the
tool waits `seconds`, then reads what arrived: changes per second, and what those changes
take in the spool, encoded and compressed as the spool encodes them (`ChunkColumns`, Arrow
IPC with zstd). The estimate assumes the sampled rate holds during the copy.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from transforms.dynamo.endpoints import SourceSpec, kinesis_client, streams_client
from transforms.state import change_spool
from transforms.streams.kinesis import KinesisSource, is_kinesis
from transforms.streams.shards import ShardTask, describe_shards

READS_IN_FLIGHT = 32


@dataclass(frozen=True)
class ChangeSample:
    changes: int          # stream records that arrived while sampling
    seconds: float        # how long the sample lasted
    spool_bytes: int      # what they take in the spool (0 with no change)

    @property
    def per_second(self) -> float:
        return self.changes / self.seconds

    @property
    def bytes_per_change(self) -> float | None:
        return self.spool_bytes / self.changes if self.changes else None


async def sample_changes(source: SourceSpec, table: str, stream_arn: str, seconds: float) -> ChangeSample:
    """The changes made to the table in the next `seconds` (every open shard followed), from its
    DynamoDB stream or the Kinesis data stream it names (only the table's own records count)."""
    if is_kinesis(stream_arn):
        async with kinesis_client(source) as client:
            return await _sample(_KinesisReads(KinesisSource(client, read_attempts=1), table, stream_arn), seconds)
    async with streams_client(source) as client:
        return await _sample(_StreamsReads(client, table, stream_arn), seconds)


class _StreamsReads:
    """A DynamoDB stream's shards, read through the SDK client."""

    def __init__(self, client, table: str, stream_arn: str):
        self._client, self._table, self._arn = client, table, stream_arn

    async def open_shards(self) -> list[str]:
        return [s["ShardId"] for s in await describe_shards(self._client, self._table, self._arn)
                if "EndingSequenceNumber" not in s["SequenceNumberRange"]]

    async def latest(self, shard: str) -> str:
        return (await self._client.get_shard_iterator(StreamArn=self._arn, ShardId=shard,
                                                      ShardIteratorType="LATEST"))["ShardIterator"]

    async def page(self, shard: str, iterator: str) -> tuple[list[dict], str | None, bool]:
        """(records, the next iterator, whether more may follow now)."""
        page = await self._client.get_records(ShardIterator=iterator, Limit=1000)
        for record in page["Records"]:  # the SDK parses the time; the spool keeps epoch seconds
            change = record["dynamodb"]
            change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
        return page["Records"], page.get("NextShardIterator"), bool(page["Records"])


class _KinesisReads:
    """A Kinesis data stream's shards, read and decoded as replication reads them (`KinesisSource`)."""

    def __init__(self, source: KinesisSource, table: str, stream_arn: str):
        self._source, self._table, self._arn = source, table, stream_arn

    async def open_shards(self) -> list[str]:
        return [s["ShardId"] for s in await self._source.list_shards(self._table, self._arn, None)
                if "EndingSequenceNumber" not in s["SequenceNumberRange"]]

    async def latest(self, shard: str) -> str:
        return await self._source.latest_iterator(ShardTask(self._table, self._arn, shard))

    async def page(self, shard: str, iterator: str) -> tuple[list[dict], str | None, bool]:
        page = await self._source.get_records(ShardTask(self._table, self._arn, shard), iterator, 1000)
        # Kinesis may answer empty pages before records that follow: only MillisBehindLatest 0
        # ("caught up") says the shard's end.
        return page["Records"], page["NextShardIterator"], bool(page["Records"] or page["MillisBehindLatest"])


async def _sample(reads: _StreamsReads | _KinesisReads, seconds: float) -> ChangeSample:
    shards = await reads.open_shards()
    gate = asyncio.Semaphore(READS_IN_FLIGHT)

    async def latest(shard: str) -> str:
        async with gate:
            return await reads.latest(shard)

    async def arrived(shard: str, iterator: str | None) -> list[tuple[str, dict]]:
        records = []
        async with gate:
            while iterator:
                page, iterator, more = await reads.page(shard, iterator)
                records += [(shard, record) for record in page]
                if not more:
                    break
        return records

    iterators = await asyncio.gather(*(latest(shard) for shard in shards))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.sleep(seconds)
    pages = await asyncio.gather(*(arrived(s, i) for s, i in zip(shards, iterators)))
    took = loop.time() - began
    chunk = change_spool.ChunkColumns()
    for shard, record in (pair for page in pages for pair in page):
        chunk.append(shard, [record])
    return ChangeSample(len(chunk), took, len(change_spool.encode_chunk(chunk.batch())) if len(chunk) else 0)
