"""`ReplicateShards`: the changes on a DynamoDB Local table's stream reach the target, and a
later round goes on from the checkpoints the first one left."""
from __future__ import annotations

import asyncio

import pytest
from apache_beam.testing import test_pipeline

from pipeline.checks.runners import LOCAL_RUNNER
from testbed import seed
from tests.support.cli_runs import unique
from transforms.dynamo.endpoints import SourceSpec, streams_client
from transforms.dynamo.writer import WriterSettings
from transforms.replicate import ReplicateShards
from transforms.state import stream_checkpoints
from transforms.state.storage import StorageOptions
from transforms.streams.shards import ShardTask, describe_shards, plan_shards
from transforms.table_pair import TablePair

pytestmark = pytest.mark.integration

KEYS = 40


async def _unfinished_shards(source: SourceSpec, table: str, checkpoint_dir: str) -> list[ShardTask]:
    arn = seed.client_for(source.endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    async with streams_client(source) as client:
        shards = await describe_shards(client, table, arn)
    return plan_shards(table, arn, shards, stream_checkpoints.all_shards(checkpoint_dir, table)).unfinished


def _round(source, target, pairs, table: str, tmp_path) -> None:
    """One round: every unfinished shard applied up to its current end."""
    checkpoints = str(tmp_path / "checkpoints")
    tasks = asyncio.run(_unfinished_shards(source, table, checkpoints))
    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        _ = p | ReplicateShards(source, target, pairs, tasks, checkpoint_dir=checkpoints,
                                dead_letter_dir=str(tmp_path / "dead-letter"), writer_settings=WriterSettings(),
                                read_attempts=3, storage=StorageOptions())


def _applied(table: str, tmp_path) -> int:
    return sum(shard.applied for shard in stream_checkpoints.all_shards(str(tmp_path / "checkpoints"), table).values())


def test_rounds_apply_the_streamed_changes_from_where_the_last_one_ended(source, target, alternator_clean,
                                                                        tmp_path):
    table, target_table = unique("transforms_streamed"), unique("transforms_replicated")
    seed.create_table(source.endpoint, table, **seed.STREAMED_TABLE)
    seed.create_table(alternator_clean.url, target_table, **seed.keyed_by("id"))
    pairs = {table: TablePair(table, target_table, ("id",))}
    changes = seed.stream_changes(source.endpoint, table, 0, KEYS)

    _round(source, target, pairs, table, tmp_path)

    assert seed.assert_same_items(source.endpoint, alternator_clean.url, table, target_table) == KEYS
    assert _applied(table, tmp_path) == changes
    client = seed.client_for(source.endpoint)
    for i in range(0, KEYS, 4):
        client.delete_item(TableName=table, Key={"id": {"S": f"k{i:05d}"}})
    more = seed.stream_changes(source.endpoint, table, KEYS, 10)

    _round(source, target, pairs, table, tmp_path)

    assert seed.assert_same_items(source.endpoint, alternator_clean.url, table, target_table) == KEYS - KEYS // 4 + 10
    assert _applied(table, tmp_path) == changes + KEYS // 4 + more  # the first round's changes not applied again
