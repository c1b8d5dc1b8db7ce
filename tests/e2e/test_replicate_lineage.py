"""Shard lineage, trimmed changes, expired iterators and disabled streams.

DynamoDB Local has a single stream shard per table and never trims it, so these tests
read a stream whose shards they control: `testbed/fake_streams.py`, a test-only
DynamoDB Streams server on 127.0.0.1 spoken to over HTTP by the real aiobotocore client
(via `source.streams_endpoint`). The table itself lives in DynamoDB Local and the
target is the Alternator front, as everywhere else.
"""
from __future__ import annotations

import pytest

from pipeline.checks import source_streams
from pipeline.checks.config import load_config
from pipeline.checks.tables import plan_tables
from pipeline.commands import replicate as replication
from tests.support.cli_runs import run_cli
from tests.support.controlled_streams import controlled_stream, image as _image, key as _key, target_versions
from transforms.state import stream_checkpoints

pytestmark = pytest.mark.integration

PARENT = "shardId-00000000000000000001-aaaaaaaa"
LEFT = "shardId-00000000000000000002-bbbbbbbb"
RIGHT = "shardId-00000000000000000003-cccccccc"
GRANDCHILD = "shardId-00000000000000000004-dddddddd"


@pytest.fixture
def controlled(dynamodb_local, alternator_clean, tmp_path):
    """(fake stream, config path, table, target url): a DynamoDB Local table whose stream is ours."""
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path) as made:
        yield made.stream, made.config, made.table, made.target


def test_children_are_applied_only_after_their_parent(controlled, tmp_path):
    stream, config, table, target = controlled
    stream.add_shard(PARENT)
    stream.put_record(PARENT, "INSERT", _key("a"), new_image=_image("a", 1))
    stream.put_record(PARENT, "INSERT", _key("b"), new_image=_image("b", 1))
    stream.close_shard(PARENT)                                           # a closed shard
    stream.add_shard(LEFT, parent=PARENT)                                # two children
    stream.add_shard(RIGHT, parent=PARENT)
    stream.put_record(LEFT, "MODIFY", _key("a"), new_image=_image("a", 2))  # wrong if applied before the parent
    stream.put_record(LEFT, "REMOVE", _key("b"), old_image=_image("b", 1))
    stream.close_shard(LEFT)
    stream.add_shard(GRANDCHILD, parent=LEFT)
    stream.put_record(GRANDCHILD, "MODIFY", _key("a"), new_image=_image("a", 3))
    stream.put_record(RIGHT, "INSERT", _key("c"), new_image=_image("c", 1))  # RIGHT stays open

    result = run_cli("replicate", "--config", str(config))  # one pass: children start as their parent ends

    assert result.exit_code == 0, result.output
    assert target_versions(target, table) == {"a": 3, "c": 1}
    shards = stream_checkpoints.all_shards(str(tmp_path / "checkpoints"), table)
    assert shards[PARENT].finished and shards[LEFT].finished
    assert not shards[RIGHT].finished and not shards[GRANDCHILD].finished
    assert "6 changes" in result.output and "2 open shards" in result.output

    stream.put_record(RIGHT, "MODIFY", _key("c"), new_image=_image("c", 2))
    assert run_cli("replicate", "--config", str(config)).exit_code == 0
    assert target_versions(target, table) == {"a": 3, "c": 2}


def test_an_expired_iterator_is_renewed_from_the_checkpoint(controlled):
    stream, config, table, target = controlled
    stream.add_shard(PARENT)
    for version in range(5):
        stream.put_record(PARENT, "MODIFY", _key("a"), new_image=_image("a", version))
    stream.expire_iterators_once(2)

    result = run_cli("replicate", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert stream.calls["GetShardIterator"] >= 3  # the first, then one per expiry
    assert target_versions(target, table) == {"a": 4}


def test_changes_trimmed_before_they_were_applied_stop_loudly(controlled):
    stream, config, table, target = controlled
    stream.add_shard(PARENT)
    stream.put_record(PARENT, "INSERT", _key("a"), new_image=_image("a", 1))
    assert run_cli("replicate", "--config", str(config)).exit_code == 0
    unseen = [stream.put_record(PARENT, "MODIFY", _key("a"), new_image=_image("a", v)) for v in (2, 3, 4)]
    stream.trim_before(unseen[-1])  # versions 2 and 3 are gone before replication saw them

    result = run_cli("replicate", "--config", str(config), "--until-caught-up")

    assert result.exit_code == 3
    assert "changes were lost" in result.output and "migrate --streams" in result.output
    assert target_versions(target, table) == {"a": 1}  # nothing after the gap was applied


def test_a_shard_trimmed_away_before_it_was_finished_stops_loudly(controlled):
    stream, config, table, _ = controlled
    stream.add_shard(PARENT)
    stream.put_record(PARENT, "INSERT", _key("a"), new_image=_image("a", 1))
    assert run_cli("replicate", "--config", str(config)).exit_code == 0
    last = stream.put_record(PARENT, "MODIFY", _key("a"), new_image=_image("a", 2))
    stream.close_shard(PARENT)
    stream.add_shard(LEFT, parent=PARENT)
    stream.put_record(LEFT, "MODIFY", _key("a"), new_image=_image("a", 3))
    stream.trim_before(str(int(last) + 1))  # the parent, half applied, leaves the stream

    result = run_cli("replicate", "--config", str(config))

    assert result.exit_code == 3
    assert f"shard {PARENT} was trimmed from the stream before it was fully applied" in result.output


def test_a_disabled_stream_is_a_clear_error(controlled):
    stream, config, table, _ = controlled
    stream.add_shard(PARENT)
    stream.disable()

    result = run_cli("replicate", "--config", str(config))

    assert result.exit_code == 2
    assert f"the stream of {table} is disabled" in result.output
    assert "Traceback" not in result.output


def test_streaming_mode_follows_the_shard_graph_with_a_splittable_reader(controlled, tmp_path):
    """The streaming-runner mode, run on the DirectRunner: bounded by time and polls here."""
    stream, config_path, table, target = controlled
    stream.add_shard(PARENT)
    stream.put_record(PARENT, "INSERT", _key("a"), new_image=_image("a", 1))
    stream.close_shard(PARENT)
    stream.add_shard(LEFT, parent=PARENT)
    stream.add_shard(RIGHT, parent=PARENT)
    stream.put_record(LEFT, "MODIFY", _key("a"), new_image=_image("a", 2))
    stream.put_record(RIGHT, "INSERT", _key("b"), new_image=_image("b", 1))
    config = load_config(config_path)
    plans = plan_tables(config, create=False)
    streams = source_streams.ensure_streams(config, [p.spec.source for p in plans], enable=False)
    source_streams.bind_checkpoints(config, streams, fresh=True)

    code = replication.follow_streaming(config, plans, streams, stop_after_seconds=4, max_polls=20,
                                        echo=lambda line: None)

    assert code == 0
    assert target_versions(target, table) == {"a": 2, "b": 1}
    shards = stream_checkpoints.all_shards(str(tmp_path / "checkpoints"), table)
    assert shards[PARENT].finished and not shards[LEFT].finished
    # The rounds take over from the streaming mode's checkpoints.
    stream.put_record(LEFT, "MODIFY", _key("a"), new_image=_image("a", 3))
    assert run_cli("replicate", "--config", str(config_path)).exit_code == 0
    assert target_versions(target, table) == {"a": 3, "b": 1}


def test_batch_runner_rounds_apply_whole_lineages_in_one_round(controlled):
    """Rounds of `ReplicateShards` (the mode of batch runners such as Dataflow), run on the DirectRunner."""
    stream, config_path, table, target = controlled
    stream.add_shard(PARENT)
    stream.put_record(PARENT, "INSERT", _key("a"), new_image=_image("a", 1))
    stream.close_shard(PARENT)
    stream.add_shard(LEFT, parent=PARENT)
    stream.put_record(LEFT, "MODIFY", _key("a"), new_image=_image("a", 2))
    stream.close_shard(LEFT)
    stream.add_shard(GRANDCHILD, parent=LEFT)
    stream.put_record(GRANDCHILD, "MODIFY", _key("a"), new_image=_image("a", 3))
    config = load_config(config_path)
    plans = plan_tables(config, create=False)
    streams = source_streams.ensure_streams(config, [p.spec.source for p in plans], enable=False)
    source_streams.bind_checkpoints(config, streams, fresh=True)
    lines: list[str] = []

    code = replication.replicate_in_rounds(config, plans, streams, follow=False, until_caught_up=False, max_lag=2,
                                           echo=lines.append)

    assert code == 0
    assert target_versions(target, table) == {"a": 3}
    assert len(lines) == 1 and lines[0].startswith("[round 1]"), lines
    assert "3 changes" in lines[0] and "lag unknown" not in lines[0]  # every shard read to its end in the round
