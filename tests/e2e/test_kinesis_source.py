"""Tables followed on a Kinesis data stream (`tables[].kinesis_stream_arn`) instead of their DynamoDB stream.

The source table is DynamoDB Local's (the truth the target is compared with); its changes go
to a Kinesis data stream in moto's server (`testbed/moto_kinesis.py`: moto with its
resharding amended to behave as Kinesis documents), written by `KinesisTable` as DynamoDB
writes them, delivered more than once and out of order as DynamoDB documents they may be.
Each history ends with an older change of some key arriving after a newer one, so a target
equal to the source shows that no older change was applied over a newer one.

What these tests cannot show, because moto does not do it: a record trimmed by the stream's
retention (moto never trims; a checkpoint the shard no longer holds is tested with a
sequence number the shard never held, in tests/streams/test_kinesis.py), an expired shard,
throttling (ProvisionedThroughputExceededException), and the pages Kinesis returns empty
although records follow (moto's pages are never empty before the end).
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import yaml

from testbed import seed
from testbed.kinesis_changes import KinesisTable
from tests.support.cli_runs import alternator_target, error_lines, run_cli, unique, write_config

pytestmark = pytest.mark.integration

HASH_KEY = seed.keyed_by("id")
FILLER = 1500  # records ahead of the tie in the merge's adjacent parent: two GetRecords pages


def _item(name: str, version: int) -> dict:
    return {"id": {"S": name}, "version": {"N": str(version)}, "note": {"S": f"{name} version {version}"}}


def _streamed(dynamodb_local, kinesis, alternator, tmp_path, *, precision: str = "MILLISECOND"):
    """A table, its Kinesis data stream (two shards), its target table, and a config naming the stream."""
    table = unique("kinesis")
    seed.create_table(dynamodb_local.endpoint, table, **HASH_KEY)
    made = KinesisTable(dynamodb_local.endpoint, kinesis.endpoint, table, precision=precision)
    config = write_config(tmp_path, dynamodb_local.endpoint, alternator_target(alternator),
                          [{"source": table, "kinesis_stream_arn": made.arn}])
    raw = yaml.safe_load(config.read_text())
    raw["source"]["kinesis_endpoint"] = kinesis.endpoint
    config.write_text(yaml.safe_dump(raw))
    assert run_cli("create-tables", "--config", str(config)).exit_code == 0
    return made, config


def _history(made: KinesisTable) -> tuple[dict, str]:
    """Changes delivered as DynamoDB may deliver them, with a split and a merge on the way; an
    older change of a key, and a shard never resharded."""
    first, second = sorted(made.open_shards())
    made.deliver(*(made.put(_item(f"k{i:02d}", 1)) for i in range(40)))
    # Out of order across shards: the newer change first, on one shard; the older later, on the other.
    older, newer = made.put(_item("late", 1)), made.put(_item("late", 2))
    made.deliver(newer, shard=first)
    made.deliver(older, shard=second)
    # Repeated after a newer change of its key, on the same shard.
    once, twice = made.put(_item("again", 1)), made.put(_item("again", 2))
    made.deliver(once, twice, once, shard=second)
    # Deleted; the put before the delete arrives after it.
    put, removed = made.put(_item("gone", 1)), made.delete({"id": {"S": "gone"}})
    made.deliver(removed, shard=first)
    made.deliver(put, shard=second)
    # Another table's change on the same stream: not this table's.
    made.deliver(made.record("INSERT", {"id": {"S": "k00"}}, new=_item("k00", 99), table="another_table"))
    # A split: the parent keeps its records, new ones go to the children; the older change
    # of a key arrives on a child after its newer one went to the parent.
    stale, fresh = made.put(_item("split", 1)), made.put(_item("split", 2))
    made.deliver(fresh, shard=first)
    low, high = made.split(first)
    made.deliver(stale, shard=low)
    made.deliver(*(made.put(_item(f"k{i:02d}", 2)) for i in range(0, 40, 2)))
    # A merge of the two children: the merged shard waits for both parents. Two changes of
    # one key made in the same millisecond (a tie) are applied in the order the lineage
    # gives: the adjacent parent's (behind two pages of other changes), then the child's.
    tie = made.put(_item("tie", 1))
    made.deliver(*made.put_new([_item(f"f{i:04d}", 1) for i in range(FILLER)]), tie, shard=high)
    merged = made.merge(low, high)
    made.deliver(made.put(_item("tie", 2), created=tie["dynamodb"]["ApproximateCreationDateTime"]), shard=merged)
    made.deliver(*(made.put(_item(f"k{i:02d}", 3)) for i in range(1, 40, 2)))
    return older, second


def _skipped(output: str) -> bool:
    return "late changes skipped (older than one applied)" in output


def test_replicate_from_kinesis_applies_the_newest_change_of_every_key(dynamodb_local, kinesis, alternator_clean,
                                                                       tmp_path):
    made, config = _streamed(dynamodb_local, kinesis, alternator_clean, tmp_path)
    older, unsplit = _history(made)

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 0, result.output
    assert "caught up" in result.output and _skipped(result.output)
    assert seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, made.table) == 40 + 4 + FILLER
    checkpoints = list((tmp_path / "checkpoints" / "streams" / made.table / "shards").glob("*.json"))
    assert len(checkpoints) == 5  # two shards, the split's two children, the merge's child

    # A new run recalls what was applied from the stream: an older change repeated now is refused.
    made.deliver(older, shard=unsplit)
    again = run_cli("replicate", "--config", str(config))
    assert again.exit_code == 0, again.output
    assert "1 late changes skipped" in again.output
    seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, made.table)


def test_migrate_streams_from_kinesis_copies_and_catches_up(dynamodb_local, kinesis, alternator_clean, tmp_path):
    """The capture reads the Kinesis stream from its oldest record into the spool while the
    snapshot is copied, then applies it: a table whose stream stamps changes in microseconds."""
    made, config = _streamed(dynamodb_local, kinesis, alternator_clean, tmp_path, precision="MICROSECOND")
    _history(made)
    planned = run_cli("plan", "--config", str(config))
    assert planned.exit_code == 0, planned.output
    assert f"changes from Kinesis data stream {made.arn}" in planned.output

    result = run_cli("migrate", "--config", str(config), "--streams", "--until-caught-up")

    assert result.exit_code == 0, result.output
    assert "caught up" in result.output
    assert seed.assert_same_items(dynamodb_local.endpoint, alternator_clean.url, made.table) == 40 + 4 + FILLER


def test_plan_samples_the_kinesis_stream_counting_only_the_tables_changes(dynamodb_local, kinesis,
                                                                          alternator_clean, tmp_path):
    """`plan` reads what arrives on the Kinesis stream while it samples: the table's changes, and
    four times as many of another table that sends to the same stream, which are not counted."""
    made, config = _streamed(dynamodb_local, kinesis, alternator_clean, tmp_path)
    made.deliver(*(made.put(_item(f"before{i}", 1)) for i in range(30)))  # before the sample: not counted
    stop, delivered = threading.Event(), []

    def write_meanwhile() -> None:
        while not stop.is_set():
            n = len(delivered)
            made.deliver(*(made.put(_item(f"k{i}", 1)) for i in (n, n + 1)),
                         *(made.record("INSERT", {"id": {"S": f"o{n + i}"}}, new=_item(f"o{n + i}", 1),
                                       table="another_table") for i in range(8)))
            delivered.extend((n, n + 1))
            time.sleep(0.1)

    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    try:
        planned = run_cli("plan", "--config", str(config), "--sample-seconds", "2", "--output", "json")
    finally:
        stop.set()
        writer.join()

    assert planned.exit_code == 0, planned.output
    changes = json.loads(planned.stdout)["tables"][0]["changes"]
    assert changes["stream"] is True and 50 < changes["bytes_per_change"] < 2000, changes
    # What arrived in the 2 s, of the table's changes delivered meanwhile (the other table's
    # would make it five times as many)
    assert 0 < changes["changes_per_second"] * 2 <= len(delivered) + 2, (changes, len(delivered))


def test_replication_from_kinesis_refuses_another_runner_before_anything_is_read(tmp_path):
    """Nothing listens at the config's endpoints: the refusal comes first, with exit 2."""
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-changes"
    config = write_config(tmp_path, "http://127.0.0.1:9", {"endpoint": "http://127.0.0.1:9"},
                          [{"source": "orders", "kinesis_stream_arn": arn}],
                          pipeline_options={"runner": "DataflowRunner", "project": "p", "region": "us-east1"})
    for command in (["replicate"], ["migrate", "--streams"]):
        result = run_cli(*command, "--config", str(config))
        assert result.exit_code == 2, result.output
        assert error_lines(result.output) == [
            "error: orders: changes from a Kinesis data stream (tables[].kinesis_stream_arn) are applied by the "
            "launcher: run replication with the default local runner (its check that no older change lands over a "
            "newer one holds within one process)"]
