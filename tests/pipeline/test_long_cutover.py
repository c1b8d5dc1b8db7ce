"""A cutover whose snapshot outlasts the stream: changes are captured from the first second.

DynamoDB Streams keeps a record 24 hours; a large table takes longer to copy. These tests
compress the day: the test Streams server keeps records `RETENTION` seconds
(`tests/support/fake_streams.py`, as DynamoDB documents its 24-hour trim), and the source
table is read through `tests/support/slow_source.py`, which holds every Scan page, so a
snapshot of a few hundred items lasts several retentions while `ChangingTable` writes to
the table (DynamoDB Local) and puts each change on the stream, rolling shards over as
DynamoDB does. The table itself, the target (the Alternator front) and the tool's every
request are real; only the stream's timing is compressed.
"""
from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support import seed
from tests.support.cli_runs import interrupt, run_cli, start_script
from tests.support.controlled_streams import ChangingTable, controlled_stream
from tests.support.slow_source import SlowSource
from transforms.state import bulk_checkpoints, change_spool

pytestmark = pytest.mark.integration

RETENTION = 2.5     # seconds a stream record is kept (DynamoDB: 24 hours; `source.stream_retention_hours`)
SCAN_DELAY = 1.0    # seconds each Scan page is held
KEYS = 320          # 16 pages of 20: 8 a segment, 8 s or more of snapshot: over three retentions


@pytest.fixture
def slow_source(dynamodb_local):
    with SlowSource(dynamodb_local.endpoint, scan_delay=SCAN_DELAY) as front:
        yield front


def copied_share(checkpoint_dir, table: str) -> float:
    progress = bulk_checkpoints.progress(str(checkpoint_dir), table)
    return progress.items / KEYS if progress else 0.0


def trimmed(stream, server_url: str, sequence: str) -> bool:
    """Whether the stream no longer holds the record numbered `sequence` (its shard, or the record)."""
    client = boto3.client("dynamodbstreams", endpoint_url=server_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    for shard in stream.shard_ids:
        try:
            client.get_shard_iterator(StreamArn=stream.stream_arn, ShardId=shard,
                                      ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=sequence)
            return False
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TrimmedDataAccessException":
                return True
    return True  # its shard left the stream whole


def test_changes_during_a_snapshot_longer_than_the_stream_keeps_them_all_reach_the_target(
        dynamodb_local, alternator_clean, slow_source, tmp_path):
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, retention_seconds=RETENTION,
                           source_endpoint=slow_source.url, scan={"segments": 2, "page_size": 20}) as made:
        table = ChangingTable(made, dynamodb_local.endpoint, KEYS)
        table.seed()
        # Writes go on for most of the snapshot and stop before it ends, so every one of them
        # is older than the copy's end: exit 0 must then mean all of them are on the target.
        table.run_until(lambda: copied_share(tmp_path / "checkpoints", made.table) >= 0.75)
        began = time.monotonic()
        try:
            result = run_cli("migrate", "--config", str(made.config), "--streams", "--until-caught-up")
        finally:
            table.stop()
        took = time.monotonic() - began

        assert result.exit_code == 0, result.output
        assert "caught up" in result.output
        assert took >= 3 * RETENTION and table.changes >= 100
        # The stream itself no longer holds the first changes: only the spool could bring them.
        assert trimmed(made.stream, made.server.url, table.first_sequence)
        assert seed.assert_same_items(dynamodb_local.endpoint, made.target, made.table) > 0


def test_a_run_killed_during_the_snapshot_resumes_and_loses_no_change(dynamodb_local, alternator_clean, slow_source,
                                                                     tmp_path):
    """SIGKILL in the middle of the snapshot (the capture's buffer and everything in flight lost),
    then `--resume` at once: the capture continues from what its spool holds durably."""
    retention, slow_source.scan_delay = 6.0, 2.4  # the restart (a second or two) stays well within the retention
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, retention_seconds=retention,
                           source_endpoint=slow_source.url, scan={"segments": 2, "page_size": 20}) as made:
        table = ChangingTable(made, dynamodb_local.endpoint, KEYS, rotate_seconds=2.0)
        table.seed()
        checkpoints = tmp_path / "checkpoints"
        table.run_until(lambda: copied_share(checkpoints, made.table) >= 0.8)
        began = time.monotonic()
        try:
            process = start_script("migrate", "--config", str(made.config), "--streams", "--until-caught-up",
                                   cwd=tmp_path)
            interrupt(process, lambda: copied_share(checkpoints, made.table) >= 0.35)
            assert change_spool.chunks(str(checkpoints), made.table), "nothing was spooled before the kill"
            result = run_cli("migrate", "--config", str(made.config), "--streams", "--resume", "--until-caught-up")
        finally:
            table.stop()

        assert result.exit_code == 0, result.output
        assert time.monotonic() - began >= 3 * retention
        assert trimmed(made.stream, made.server.url, table.first_sequence)
        assert seed.assert_same_items(dynamodb_local.endpoint, made.target, made.table) > 0
        assert not change_spool.has_capture(str(checkpoints), made.table)  # handed over to replication
