"""A cutover whose snapshot outlasts the stream: changes are captured from the first second.

DynamoDB Streams keeps a record 24 hours; a large table takes longer to copy. These tests
compress the day: the test Streams server keeps records `RETENTION` seconds
(`testbed/fake_streams.py`, as DynamoDB documents its 24-hour trim), and the source
table is read through `testbed/slow_source.py`, which holds every Scan page, so a
snapshot of a few hundred items lasts several retentions while `ChangingTable` writes to
the table (DynamoDB Local) and puts each change on the stream, rolling shards over as
DynamoDB does. The table itself, the target (the Alternator front) and the tool's every
request are real; only the stream's timing is compressed.
"""
from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from datetime import datetime, timezone

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from testbed import seed
from testbed.exports import LocalBucket, write_full_export
from testbed.fake_streams import shard_id
from testbed.slow_source import SlowSource
from tests.support.cli_runs import error_lines, interrupt, run_cli, start_script
from tests.support.controlled_streams import ChangingTable, controlled_stream, wait_for
from transforms.state import bulk_checkpoints, change_spool, stream_checkpoints
from transforms.state.files import read_json

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
    # The restart (a few seconds, more on a loaded machine) stays well within the retention.
    retention, slow_source.scan_delay = 10.0, 4.0
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


def _with_export(config, export: str) -> None:
    """Read the config's table from this export instead of scanning it."""
    raw = yaml.safe_load(config.read_text())
    raw["tables"] = [{"source": raw["tables"][0]["source"], "export": export}]
    config.write_text(yaml.safe_dump(raw))


def _capture_listed(checkpoint_dir, table: str) -> bool:
    coverage = change_spool.coverage_of(str(checkpoint_dir), table)
    return coverage is not None and coverage.first_listing is not None


def test_a_capture_started_before_an_export_brings_every_change_since(dynamodb_local, alternator_clean, tmp_path):
    """`capture` first, then the export, then `migrate --streams` from it: the changes made after
    the export's time are older than the stream's retention by then, and still reach the target.
    The table is written all along, until `migrate --streams` has taken the capture over."""
    retention = 8.0
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, retention_seconds=retention) as made:
        table = ChangingTable(made, dynamodb_local.endpoint, 200, rotate_seconds=2.0)
        table.seed()
        checkpoints = tmp_path / "checkpoints"
        capture = start_script("capture", "--config", str(made.config), cwd=tmp_path)
        try:
            wait_for(lambda: _capture_listed(checkpoints, made.table), timeout=300, process=capture,
                     what="the capture's first listing")
            table.run_until(lambda: _lease_holder(checkpoints, made.table) == change_spool.owner())
            time.sleep(retention)
            exported_at, before_export = datetime.now(timezone.utc), table.last_sequence
            export = write_full_export(LocalBucket(tmp_path / "exports"), "bucket", "exports",
                                       seed.scan_all(dynamodb_local.endpoint, made.table), files=2,
                                       export_time=exported_at)
            time.sleep(retention)  # changes made right after the export leave the stream
            stopped = interrupt(capture, lambda: True, sig=signal.SIGINT)
            _with_export(made.config, export)
            result = run_cli("migrate", "--config", str(made.config), "--streams", "--until-caught-up")
        finally:
            table.stop()

        assert capture.returncode == 130 and "the spool is consistent" in stopped, stopped
        assert result.exit_code == 0, result.output
        assert trimmed(made.stream, made.server.url, str(int(before_export) + 1).zfill(21))
        assert seed.assert_same_items(dynamodb_local.endpoint, made.target, made.table) > 0


def _lease_holder(checkpoint_dir, table: str) -> str | None:
    """Which process holds the table's capture (host:pid), if any."""
    lease = read_json(str(checkpoint_dir / "capture" / "spool" / table / "lease.json"))
    return lease and lease["owner"]


def test_a_capture_reads_quiet_shards_every_few_seconds_within_the_retention(dynamodb_local, alternator_clean,
                                                                            tmp_path):
    """What a quiet shard gets waits in the spool until the snapshot is copied, so the capture
    reads it every 5 s with DynamoDB's 24 hours (a thousand read every second took the launcher
    a core the snapshot and the apply need), and eight times a retention when that is shorter
    (here 16 s: every 2 s)."""
    quiet = shard_id(900, "qqqqqqqq")
    runs = {}
    with contextlib.ExitStack() as stack:
        for retention in (None, 16.0):
            folder = tmp_path / f"retention-{retention}"
            folder.mkdir()
            made = stack.enter_context(controlled_stream(dynamodb_local, alternator_clean, folder,
                                                         retention_seconds=retention))
            made.stream.add_shard(quiet)
            runs[retention] = made, start_script("capture", "--config", str(made.config), cwd=folder)
        for made, capture in runs.values():
            wait_for(lambda: len(made.stream.read_times(quiet)) >= 1, timeout=120, process=capture,
                     what="the capture's first read of the quiet shard")
        time.sleep(11)
        for made, capture in runs.values():
            stopped = interrupt(capture, lambda: True, sig=signal.SIGINT)
            assert capture.returncode == 130, stopped

    def gaps(retention) -> list[float]:
        reads = runs[retention][0].stream.read_times(quiet)
        return [later - earlier for earlier, later in zip(reads, reads[1:])]

    day, short = gaps(None), gaps(16.0)
    assert len(day) >= 2 and min(day) >= 4.5, day  # not every second
    assert len(short) >= 4 and min(short) >= 1.5 and sorted(short)[len(short) // 2] < 3.5, short


def test_a_capture_down_longer_than_the_stream_keeps_changes_ends_with_exit_3(dynamodb_local, alternator_clean,
                                                                               tmp_path):
    retention = 2.0
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, retention_seconds=retention) as made:
        table = ChangingTable(made, dynamodb_local.endpoint, 50)
        table.seed()
        checkpoints = tmp_path / "checkpoints"
        capture = start_script("capture", "--config", str(made.config), cwd=tmp_path)
        table.run_until(lambda: False)
        try:
            wait_for(lambda: change_spool.chunks(str(checkpoints), made.table), timeout=60, process=capture,
                     what="the capture's first chunk")
            interrupt(capture, lambda: True, sig=signal.SIGINT)
            time.sleep(3 * retention)  # down: what it had not read yet leaves the stream
            again = start_script("capture", "--config", str(made.config), cwd=tmp_path)
            _, again_err = again.communicate(timeout=120)
            result = run_cli("migrate", "--config", str(made.config), "--streams", "--until-caught-up")
        finally:
            table.stop()

        for code, output in ((again.returncode, again_err), (result.exit_code, result.output)):
            assert code == 3, output
            line, = error_lines(output)
            assert made.table in line and "shard shardId-" in line and "changes were lost" in line
        assert seed.scan_all(made.target, made.table) == []  # nothing copied on a capture that lost changes


def test_changes_lost_during_the_snapshot_stop_it_with_exit_3(dynamodb_local, alternator_clean, slow_source,
                                                             tmp_path):
    """Records trimmed before the capture read them (it fell behind the stream): the snapshot, now
    in vain, stops at once with exit 3 naming the table and shard."""
    slow_source.scan_delay = 3.0  # 16 pages: a snapshot of well over 20 s if it ran to its end
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, source_endpoint=slow_source.url,
                           scan={"segments": 2, "page_size": 20}) as made:
        table = ChangingTable(made, dynamodb_local.endpoint, KEYS)
        table.seed()
        checkpoints = tmp_path / "checkpoints"

        trimmed_at: list[str] = []

        def trim_unread_changes() -> None:
            # Once the capture read the shard: DynamoDB trims by age, so records trimmed before a
            # shard's first read would be older than the capture (forgiven), not these.
            shard = table.open_shards[0]
            wait_for(lambda: stream_checkpoints.read_shard(change_spool.root(str(checkpoints)), made.table, shard),
                     timeout=600, what="the capture's first read of the shard")
            last = [made.stream.put_record(shard, "MODIFY", {"id": {"S": f"k{n:05d}"}},
                                           new_image={"id": {"S": f"k{n:05d}"}, "version": {"N": "9"}})
                    for n in range(5)][-1]
            made.stream.trim_before(int(last) + 1)
            trimmed_at.append(last)

        trimmer = threading.Thread(target=trim_unread_changes, daemon=True)
        trimmer.start()
        result = run_cli("migrate", "--config", str(made.config), "--streams", "--until-caught-up")
        trimmer.join()

        assert trimmed_at, "the changes were not trimmed"
        assert result.exit_code == 3, result.output
        assert "changes were lost" in error_lines(result.output)[-1] and table.open_shards[0] in result.output
        assert copied_share(checkpoints, made.table) < 1  # stopped, not run to its end


def test_plan_estimates_the_spool_from_a_sample_of_the_stream(dynamodb_local, alternator_clean, tmp_path):
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path,
                           write={"max_items_per_second": 100}) as made:
        table = ChangingTable(made, dynamodb_local.endpoint, 100)
        table.seed()
        table.run_until(lambda: False, every=0.05)  # up to 20 changes a second
        try:
            before = table.changes
            result = run_cli("plan", "--config", str(made.config), "--sample-seconds", "2")
            during = table.changes - before
        finally:
            table.stop()

    assert result.exit_code == 0, result.output
    rate = re.search(r"changes during the copy: ~([\d.,]+)/s \(its stream sampled for 2 s\); the spool grows "
                     r"~([\d.,]+) MiB an hour of copy \(~([\d,]+) bytes a change", result.output)
    assert rate, result.output
    assert 0 < float(rate.group(1)) * 2 <= during + 1  # what arrived in the 2 s, of what was written meanwhile
    assert 10 < int(rate.group(3).replace(",", "")) < 2000
    assert "spool over the copy's estimated ~1 s" in result.output  # 100 items at 100 items/s
