"""Where a table's changes are read: its DynamoDB stream, or a Kinesis data stream.

The engine (`StreamEngine`, `ShardReader`) asks one `ChangeSources` for everything it reads:
the shard graph (`list_shards`), iterators, pages of records in `StreamsData.get_records`'
shape, which records of a page to hand on (`admit`) and what to remember at a start
(`recall`). It picks the source by the stream's ARN (`kinesis.is_kinesis`): a DynamoDB
stream (`DynamoDBStreams`: today's DescribeStream and Streams data plane) or a Kinesis data
stream (`kinesis.KinesisSource`, whose client is opened the first time one is named).
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Mapping, Protocol

from transforms.dynamo.endpoints import SourceSpec, kinesis_client, streams_client
from transforms.state.stream_checkpoints import ShardCheckpoint
from transforms.streams.kinesis import KinesisSource, is_kinesis
from transforms.streams.records import StreamsData, open_streams_data
from transforms.streams.shards import ShardTask, describe_shards


class ChangeSource(Protocol):
    async def list_shards(self, table: str, stream_arn: str, after: str | None) -> list[dict]:
        """The stream's shards listed after shard `after` (None: all), oldest first, each as
        DescribeStream gives it (ShardId, ParentShardId, AdjacentParentShardId, SequenceNumberRange)."""

    async def shard_iterator(self, task: ShardTask, after: str | None) -> str:
        """An iterator just after sequence number `after`, or at the shard's oldest record (None)."""

    async def get_records(self, task: ShardTask, iterator: str, limit: int) -> dict:
        """One page: {"Records": [...], "NextShardIterator": ... (absent or None once a closed shard
        ends), "MillisBehindLatest": ... (where an empty page is not the shard's end unless it is 0)}."""

    def admit(self, task: ShardTask, records: list[dict]) -> list[dict]:
        """The records of a window to hand on, in order (a source whose records can repeat and
        arrive out of order drops the ones older than a change of their key handed on before)."""

    async def recall(self, table: str, stream_arn: str, shards: list[dict],
                     done: Mapping[str, ShardCheckpoint]) -> None:
        """At a start: remember what was handed on before (`done`: the table's checkpoints)."""


class DynamoDBStreams:
    """A DynamoDB stream: DescribeStream on the SDK, the data plane on `StreamsData`. A key's
    changes stay in order in one shard lineage, so every record is handed on."""

    def __init__(self, client, data: StreamsData):
        self._client, self._data = client, data

    async def list_shards(self, table: str, stream_arn: str, after: str | None) -> list[dict]:
        return await describe_shards(self._client, table, stream_arn, after)

    async def shard_iterator(self, task: ShardTask, after: str | None) -> str:
        return await self._data.shard_iterator(task.stream_arn, task.shard_id, after)

    async def get_records(self, task: ShardTask, iterator: str, limit: int) -> dict:
        return await self._data.get_records(iterator, limit)

    def admit(self, task: ShardTask, records: list[dict]) -> list[dict]:
        return records

    async def recall(self, table: str, stream_arn: str, shards: list[dict],
                     done: Mapping[str, ShardCheckpoint]) -> None:
        return None


class ChangeSources:
    """Each call to the source of its stream's kind (see the module docstring)."""

    def __init__(self, spec: SourceSpec, streams: DynamoDBStreams, stack: contextlib.AsyncExitStack,
                 read_attempts: int):
        self._spec, self._streams, self._stack, self._attempts = spec, streams, stack, read_attempts
        self._kinesis: KinesisSource | None = None
        self._opening = asyncio.Lock()

    async def _source(self, stream_arn: str) -> ChangeSource:
        if not is_kinesis(stream_arn):
            return self._streams
        async with self._opening:
            if self._kinesis is None:
                client = await self._stack.enter_async_context(kinesis_client(self._spec))
                self._kinesis = KinesisSource(client, self._attempts)
        return self._kinesis

    async def list_shards(self, table: str, stream_arn: str, after: str | None) -> list[dict]:
        return await (await self._source(stream_arn)).list_shards(table, stream_arn, after)

    async def shard_iterator(self, task: ShardTask, after: str | None) -> str:
        return await (await self._source(task.stream_arn)).shard_iterator(task, after)

    async def get_records(self, task: ShardTask, iterator: str, limit: int) -> dict:
        return await (await self._source(task.stream_arn)).get_records(task, iterator, limit)

    def admit(self, task: ShardTask, records: list[dict]) -> list[dict]:
        """Synchronous, so the order windows are admitted in is the order they reach their sink."""
        if self._kinesis is None or not is_kinesis(task.stream_arn):
            return records
        return self._kinesis.admit(task, records)

    async def recall(self, table: str, stream_arn: str, shards: list[dict],
                     done: Mapping[str, ShardCheckpoint]) -> None:
        await (await self._source(stream_arn)).recall(table, stream_arn, shards, done)


@contextlib.asynccontextmanager
async def open_change_sources(spec: SourceSpec, read_attempts: int) -> AsyncIterator[ChangeSources]:
    """The source's change sources: DynamoDB Streams' clients now, Kinesis' when first needed."""
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(streams_client(spec))
        data = await stack.enter_async_context(open_streams_data(spec, client.meta.endpoint_url))
        yield ChangeSources(spec, DynamoDBStreams(client, data), stack, read_attempts)
