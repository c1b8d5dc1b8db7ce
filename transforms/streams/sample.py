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

from transforms.dynamo.endpoints import SourceSpec, streams_client
from transforms.state import change_spool
from transforms.streams.shards import describe_shards

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
    """The changes made to the table in the next `seconds` (every open shard followed)."""
    async with streams_client(source) as client:
        shards = [s["ShardId"] for s in await describe_shards(client, table, stream_arn)
                  if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
        gate = asyncio.Semaphore(READS_IN_FLIGHT)

        async def latest(shard: str) -> str:
            async with gate:
                return (await client.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                                        ShardIteratorType="LATEST"))["ShardIterator"]

        async def arrived(shard: str, iterator: str) -> list[tuple[str, dict]]:
            records = []
            async with gate:
                while iterator:
                    page = await client.get_records(ShardIterator=iterator, Limit=1000)
                    records += [(shard, record) for record in page["Records"]]
                    if not page["Records"]:
                        break
                    iterator = page.get("NextShardIterator")
            return records

        iterators = await asyncio.gather(*(latest(shard) for shard in shards))
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(seconds)
        pages = await asyncio.gather(*(arrived(s, i) for s, i in zip(shards, iterators)))
        took = loop.time() - began
    chunk = change_spool.ChunkColumns()
    for shard, record in (pair for page in pages for pair in page):
        change = record["dynamodb"]  # the SDK parses the time; the spool keeps epoch seconds
        change["ApproximateCreationDateTime"] = change["ApproximateCreationDateTime"].timestamp()
        chunk.append(shard, [record])
    return ChangeSample(len(chunk), took, len(change_spool.encode_chunk(chunk.batch())) if len(chunk) else 0)
