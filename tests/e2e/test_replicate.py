"""Replication from DynamoDB Streams (DynamoDB Local has Streams) to the Alternator front."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from testbed import seed
from testbed.servers import REPO_ROOT
from tests.support.cli_runs import alternator_target, run_cli, run_script, unique, write_config
from transforms.state import stream_checkpoints

pytestmark = pytest.mark.integration

HASH_ONLY = seed.keyed_by("id")


def _streamed_table(source: str, view_type: str = "NEW_AND_OLD_IMAGES") -> str:
    table = unique("streamed")
    seed.create_table(source, table, **HASH_ONLY,
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type})
    return table


def _item(i: int, version: int = 0) -> dict:
    return {"id": {"S": f"k{i:05d}"}, "version": {"N": str(version)}, "payload": {"S": f"value {i}/{version}"},
            "blob": {"B": bytes([0, i % 256, version % 256])}}


def _changes(source: str, table: str, start: int, count: int) -> None:
    """Puts, updates, deletes and 100 rapid updates of one key."""
    client = seed.client_for(source)
    for i in range(start, start + count):
        client.put_item(TableName=table, Item=_item(i))
    for i in range(start, start + count, 3):
        client.update_item(TableName=table, Key={"id": {"S": f"k{i:05d}"}},
                           UpdateExpression="SET version = version + :one, tags = :tags",
                           ExpressionAttributeValues={":one": {"N": "1"}, ":tags": {"SS": ["x", str(i)]}})
    for i in range(start + 1, start + count, 5):
        client.delete_item(TableName=table, Key={"id": {"S": f"k{i:05d}"}})
    for version in range(100):
        client.put_item(TableName=table, Item=_item(99_999, version))


def _config(tmp_path, dynamodb_local, alternator, table, **sections):
    return write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator), [{"source": table}],
                        **sections)


def test_changes_before_during_and_after_the_snapshot(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    _changes(source, table, 0, 300)                     # before the snapshot
    config = _config(tmp_path, dynamodb_local, alternator_clean, table, scan={"page_size": 50})
    during = threading.Thread(target=_changes, args=(source, table, 300, 200))
    during.start()                                      # while the snapshot runs
    result = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress")
    during.join()
    assert result.exit_code == 0, result.output
    assert "caught up" in result.output
    _changes(source, table, 500, 100)                   # after the snapshot

    again = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert again.exit_code == 0, again.output
    assert "254 changes" in again.output and "1 open shard" in again.output
    assert seed.assert_same_items(source, alternator_clean.url, table) > 400
    target_item = seed.client_for(alternator_clean.url).get_item(TableName=table, Key={"id": {"S": "k99999"}})
    assert target_item["Item"]["version"] == {"N": "99"}  # the last of 100 rapid updates won


def test_caught_up_only_once_every_shard_was_read_by_this_run(dynamodb_local, alternator_clean, tmp_path):
    """The last step of a cutover: changes made just before `replicate --until-caught-up`
    starts are applied before it says "caught up", however recent the checkpoint's last
    change is (before, the lag was reckoned from an earlier run's checkpoint, under
    --max-lag before any read: caught up at once, the new changes not applied)."""
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up",
                   "--no-progress").exit_code == 0
    client = seed.client_for(source)
    client.put_item(TableName=table, Item=_item(1))
    assert run_cli("replicate", "--config", str(config), "--until-caught-up").exit_code == 0

    for round_ in range(1, 4):  # each within a second of the checkpoint's last change
        client.put_item(TableName=table, Item=_item(1, version=round_))
        result = run_cli("replicate", "--config", str(config), "--until-caught-up", "--max-lag", "600")
        assert result.exit_code == 0 and "caught up" in result.output, result.output
        item = seed.client_for(alternator_clean.url).get_item(TableName=table, Key={"id": {"S": "k00001"}})
        assert item["Item"]["version"] == {"N": str(round_)}, (round_, result.output)


def test_a_replicate_with_nothing_new_loads_neither_beam_nor_arrow(dynamodb_local, alternator_clean, tmp_path):
    """The cutover's last `replicate --until-caught-up`, with every change applied, starts at
    once: Beam's verdict on the options is kept, and pyarrow and numpy (the writer's encoders,
    the spool's chunks) are loaded only where something is written (docs/performance.md)."""
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # where Beam's verdict on the options is kept
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    _changes(source, table, 0, 10)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    # In its own process: a run in this one would find the verdict kept in memory, and write none.
    migrate = run_script("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress",
                         cwd=tmp_path, env=cache)
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    run = run_script("replicate", "--config", str(config), "--until-caught-up", cwd=tmp_path,
                     env={**cache, "PYTHONPROFILEIMPORTTIME": "1"})

    assert run.returncode == 0, run.stderr[-2000:]
    assert "0 changes" in run.stderr and "caught up" in run.stderr
    # The import times go to file descriptor 2, which the run's log file takes over once the config is read.
    written = run.stderr + "".join(path.read_text() for path in (tmp_path / "checkpoints" / "logs").glob("replicate-*"))
    imported = {line.rsplit("|", 1)[-1].strip() for line in written.splitlines() if line.startswith("import time:")}
    assert {"transforms.streams.engine", "transforms.dynamo.writer"} <= imported  # the follower ran here
    assert not sorted(name for name in imported if name.split(".")[0] in ("apache_beam", "pyarrow", "numpy"))


def test_streams_must_be_on_or_enabled(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = unique("nostream")
    seed.create_table(source, table, **HASH_ONLY)
    seed.put_items(source, table, [_item(i) for i in range(20)])
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)

    refused = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress")
    assert refused.exit_code == 2
    assert f"source table {table} has no stream" in refused.output and "--enable-streams" in refused.output
    assert table not in seed.table_names(alternator_clean.url) or \
        seed.scan_all(alternator_clean.url, table) == []  # nothing copied

    enabled = run_cli("migrate", "--config", str(config), "--streams", "--enable-streams", "--until-caught-up",
                      "--no-progress")
    assert enabled.exit_code == 0, enabled.output
    spec = seed.client_for(source).describe_table(TableName=table)["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    seed.client_for(source).delete_item(TableName=table, Key={"id": {"S": "k00003"}})
    assert run_cli("replicate", "--config", str(config), "--until-caught-up").exit_code == 0
    assert seed.assert_same_items(source, alternator_clean.url, table) == 19


def test_keys_only_stream_replicates_current_items(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _streamed_table(source, "KEYS_ONLY")
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    _changes(source, table, 0, 60)

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 0, result.output
    assert seed.assert_same_items(source, alternator_clean.url, table) > 40


def test_killed_replication_resumes_and_checkpoints_only_move_forward(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table, write={"concurrency": 1})
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    client = seed.client_for(source)
    for i in range(3000):  # three windows of 1,000 changes
        client.put_item(TableName=table, Item=_item(i % 700, i))
    alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.3, ops=["BatchWriteItem"])
    checkpoint_dir = str(tmp_path / "checkpoints")
    before = stream_checkpoints.all_shards(checkpoint_dir, table)
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "replicate", "--config", str(config),
                                "--until-caught-up"], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while stream_checkpoints.all_shards(checkpoint_dir, table) == before:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    middle = stream_checkpoints.all_shards(checkpoint_dir, table)
    alternator_clean.front.set_faults()

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 0, result.output
    after = stream_checkpoints.all_shards(checkpoint_dir, table)
    for shard, checkpoint in middle.items():
        assert int(after[shard].sequence_number) >= int(checkpoint.sequence_number)
        assert after[shard].applied >= checkpoint.applied
    assert sum(cp.applied for cp in middle.values()) < sum(cp.applied for cp in after.values())
    assert seed.assert_same_items(source, alternator_clean.url, table) == 700


def test_writes_of_one_partition_key_go_to_one_node(dynamodb_local, alternator_clean, tmp_path):
    """Through /localnodes, every write of a key (over three rounds) reaches the same node."""
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    alternator_clean.front.reset_stats()
    client = seed.client_for(source)
    for version in range(3):
        for i in range(40):
            client.put_item(TableName=table, Item=_item(i, version))
        assert run_cli("replicate", "--config", str(config)).exit_code == 0

    writers = {key: addresses for key, addresses in
               alternator_clean.front.stats()["write_addresses_by_key"].items() if key.startswith(table)}
    assert len(writers) == 40
    assert all(len(addresses) == 1 for addresses in writers.values())
    assert len({addresses[0] for addresses in writers.values()}) > 1  # and the keys are spread over nodes
    assert seed.assert_same_items(source, alternator_clean.url, table) == 40


def test_renames_apply_to_changes_and_throttling_is_retried(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    config = write_config(tmp_path, source, alternator_target(alternator_clean),
                          [{"source": table, "renames": {"payload": "body"}}], write={"max_attempts": 30})
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    _changes(source, table, 0, 1500)  # three windows of changes
    alternator_clean.front.set_faults(throttle=0.4, server_error=0.3, ops=["BatchWriteItem"], seed=11)

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 0, result.output
    faults = alternator_clean.front.stats()["faults_injected"]
    assert faults.get("throttle", 0) > 0 and faults.get("server_error", 0) > 0
    seed.assert_same_items(source, alternator_clean.url, table, renames={"payload": "body"})


def test_a_recreated_stream_means_changes_were_lost(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table)
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    client = seed.client_for(source)
    client.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
    client.put_item(TableName=table, Item=_item(1))  # made while no stream recorded it
    client.update_table(TableName=table, StreamSpecification={"StreamEnabled": True,
                                                              "StreamViewType": "NEW_AND_OLD_IMAGES"})

    lost = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert lost.exit_code == 3
    assert "disabled and enabled again" in lost.output and "Traceback" not in lost.output
    assert "migrate --streams --restart" in lost.output
    fresh = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--restart",
                    "--no-progress")
    assert fresh.exit_code == 0, fresh.output
    assert seed.assert_same_items(source, alternator_clean.url, table) == 1


def test_failed_writes_stop_the_shard_without_skipping_them(dynamodb_local, alternator_clean, tmp_path):
    source = dynamodb_local.endpoint
    table = _streamed_table(source)
    config = _config(tmp_path, dynamodb_local, alternator_clean, table, write={"max_attempts": 2})
    assert run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress").exit_code == 0
    checkpoint_dir = str(tmp_path / "checkpoints")
    before = stream_checkpoints.all_shards(checkpoint_dir, table)
    _changes(source, table, 0, 30)
    alternator_clean.front.set_faults(throttle=1.0, ops=["BatchWriteItem"])

    failed = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert failed.exit_code == 1
    assert "could not be written after 2 attempts" in failed.output
    assert list((tmp_path / "dead-letter").glob(f"run-*/{table}/shardId-*.jsonl"))
    assert stream_checkpoints.all_shards(checkpoint_dir, table) == before  # nothing skipped
    alternator_clean.front.set_faults()
    assert run_cli("replicate", "--config", str(config), "--until-caught-up").exit_code == 0
    assert seed.assert_same_items(source, alternator_clean.url, table) > 20
