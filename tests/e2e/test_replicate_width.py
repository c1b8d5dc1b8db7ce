"""Replication at the width of real streams, against the test Streams server.

Hundreds of shards whose lineage changes while the follower runs, a hot shard beside
quiet ones, throttled reads, the honest lag, and Ctrl-C sent to the real command.
Assertions are on order, counts and generous bounds, never on how fast a loaded
machine is.
"""
from __future__ import annotations

import asyncio
import signal
import threading
import time

import pytest

from pipeline.checks import source_streams
from pipeline.checks.config import load_config
from pipeline.checks.tables import plan_tables
from pipeline.commands import replicate as replication
from testbed.fake_streams import shard_id
from tests.support.cli_runs import interrupt, run_cli, start_script
from tests.support.controlled_streams import controlled_stream, image, key, target_versions, wait_for
from transforms.state import stream_checkpoints
from transforms.streams.engine import open_replicator

pytestmark = pytest.mark.integration


def _follow(config, tmp_path):
    """`alternator-migrate replicate --follow` as a user runs it, in a process of its own."""
    return start_script("replicate", "--config", str(config), "--follow", cwd=tmp_path)


def _stopped_cleanly(follower, stderr: str) -> None:
    """After Ctrl-C: exit 130, one line saying how to go on, no traceback."""
    assert follower.returncode == 130, stderr
    assert "continues from them" in stderr.splitlines()[-1] and "Traceback" not in stderr, stderr


def test_hundreds_of_shards_and_lineage_changing_during_a_follow_run(dynamodb_local, alternator_clean, tmp_path):
    width = 300
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path) as c:
        shards = [shard_id(n) for n in range(width)]
        for n, shard in enumerate(shards):
            c.stream.add_shard(shard)
            c.stream.put_record(shard, "INSERT", key(f"k{n}"), new_image=image(f"k{n}", 1))
        expected = {f"k{n}": 1 for n in range(width)}
        follower = _follow(c.config, tmp_path)
        try:
            wait_for(lambda: target_versions(c.target, c.table) == expected, timeout=180, process=follower,
                     what="the backlog of 300 shards")
            # While it runs: a third of the shards take one more change, then split; the children
            # carry newer versions of the parent's key (wrong if applied before the parent's last
            # change) and keys of their own; half of the left children split again.
            next_id, records = width, width
            for n in range(0, width, 3):
                k = f"k{n}"
                c.stream.put_record(shards[n], "MODIFY", key(k), new_image=image(k, 2))
                left, right = shard_id(next_id), shard_id(next_id + 1)
                next_id += 2
                c.stream.split_shard(shards[n], left, right)
                c.stream.put_record(left, "MODIFY", key(k), new_image=image(k, 3))
                c.stream.put_record(right, "INSERT", key(f"r{n}"), new_image=image(f"r{n}", 1))
                expected.update({k: 3, f"r{n}": 1})
                records += 3
                if n % 2 == 0:
                    grandchild = shard_id(next_id)
                    next_id += 1
                    c.stream.split_shard(left, grandchild)
                    c.stream.put_record(grandchild, "MODIFY", key(k), new_image=image(k, 4))
                    expected[k] = 4
                    records += 1
            wait_for(lambda: target_versions(c.target, c.table) == expected, timeout=180, process=follower,
                     what="the changes of the new shards")
        finally:
            stderr = interrupt(follower, lambda: True, signal.SIGINT)
        _stopped_cleanly(follower, stderr)

        checkpoints = stream_checkpoints.all_shards(str(tmp_path / "checkpoints"), c.table)
        assert all(checkpoints[shards[n]].finished for n in range(0, width, 3))
        assert sum(cp.applied for cp in checkpoints.values()) == records  # every applied change checkpointed
        starts = c.stream.describe_starts
        assert starts.count(None) == 1  # one full listing; after it, only the shards after the last one seen
        assert starts[1:3] == [shards[99], shards[199]]  # the first listing's pages of 100


def test_a_hot_shard_does_not_keep_the_quiet_ones_waiting(dynamodb_local, alternator_clean, tmp_path):
    quiet = [shard_id(n) for n in range(1, 201)]
    hot = shard_id(0, "hhhhhhhh")
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path) as c:
        c.stream.add_shard(hot)
        for n, shard in enumerate(quiet):
            c.stream.add_shard(shard)
            c.stream.put_record(shard, "INSERT", key(f"q{n}"), new_image=image(f"q{n}", 1))
        follower = _follow(c.config, tmp_path)
        try:
            wait_for(lambda: len(target_versions(c.target, c.table)) == len(quiet), timeout=180, process=follower,
                     what="the quiet shards' backlog")
            began, version = time.monotonic(), 0
            while time.monotonic() < began + 8:  # 50 changes a second on one shard, for 8 s
                version += 1
                c.stream.put_record(hot, "MODIFY", key("hot"), new_image=image("hot", version))
                time.sleep(max(0.0, began + version / 50 - time.monotonic()))
            ended = time.monotonic()
            wait_for(lambda: target_versions(c.target, c.table).get("hot") == version, timeout=120,
                     process=follower, what="the hot shard's last change")
        finally:
            stderr = interrupt(follower, lambda: True, signal.SIGINT)
        _stopped_cleanly(follower, stderr)

        def reads_while_hot(shard: str) -> int:
            return sum(1 for at in c.stream.read_times(shard) if began <= at <= ended)

        # Read about every second while the hot shard is busy (8 or so); 2 leaves room for a slow machine.
        assert min(reads_while_hot(shard) for shard in quiet) >= 2
        assert reads_while_hot(hot) >= 8  # and the hot shard is read more often than once a second
        assert target_versions(c.target, c.table)["hot"] == version


def test_throttled_reads_back_off_and_lose_nothing(dynamodb_local, alternator_clean, tmp_path):
    # One GetRecords a second per shard: a shard's second read (0.2 s after its first) is refused.
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, reads_per_second=1) as c:
        expected = {}
        for n in range(30):
            c.stream.add_shard(shard_id(n))
            for version in (1, 2):
                c.stream.put_record(shard_id(n), "MODIFY", key(f"k{n}"), new_image=image(f"k{n}", version))
            expected[f"k{n}"] = 2
        big = shard_id(30)
        c.stream.add_shard(big)
        for i in range(2500):  # three pages
            c.stream.put_record(big, "INSERT", key(f"b{i}"), new_image=image(f"b{i}", 1))
            expected[f"b{i}"] = 1

        result = run_cli("replicate", "--config", str(c.config))

        assert result.exit_code == 0, result.output
        assert target_versions(c.target, c.table) == expected
        assert c.stream.calls["LimitExceeded"] > 0
        assert "reads throttled by the stream" in result.output


def test_ctrl_c_while_writes_are_in_flight_leaves_consistent_checkpoints(dynamodb_local, alternator_clean, tmp_path):
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path, write={"concurrency": 2}) as c:
        sequence: dict[str, dict[int, int]] = {}  # shard -> sequence number -> version
        for n in range(40):
            shard = shard_id(n)
            c.stream.add_shard(shard)
            sequence[shard] = {}
            for version in range(1, 31):
                number = c.stream.put_record(shard, "MODIFY", key(f"k{n}"), new_image=image(f"k{n}", version))
                sequence[shard][int(number)] = version
        alternator_clean.front.set_faults(slow=1.0, slow_seconds=0.5, ops=["BatchWriteItem"])
        checkpoint_dir = str(tmp_path / "checkpoints")
        follower = _follow(c.config, tmp_path)
        try:
            wait_for(lambda: any(cp.applied for cp in stream_checkpoints.all_shards(checkpoint_dir, c.table).values()),
                     timeout=120, process=follower, what="a first checkpoint")
        finally:
            stderr = interrupt(follower, lambda: True, signal.SIGINT)
        _stopped_cleanly(follower, stderr)
        alternator_clean.front.set_faults()

        checkpoints = stream_checkpoints.all_shards(checkpoint_dir, c.table)
        versions = target_versions(c.target, c.table)
        for n in range(40):  # the target holds at least what each checkpoint says was applied
            checkpoint = checkpoints.get(shard_id(n))
            if checkpoint is not None and checkpoint.sequence_number is not None:
                assert versions[f"k{n}"] >= sequence[shard_id(n)][int(checkpoint.sequence_number)]
        assert run_cli("replicate", "--config", str(c.config)).exit_code == 0
        assert target_versions(c.target, c.table) == {f"k{n}": 30 for n in range(40)}


def test_the_lag_never_understates_the_real_lag(dynamodb_local, alternator_clean, tmp_path):
    """While writes are slow, the figure stays at or above the age of the oldest change the
    target does not hold yet (checked after the figure was read, so it was missing then too)."""
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path) as c:
        shards = [shard_id(n) for n in range(20)]
        for shard in shards:
            c.stream.add_shard(shard)
        config = load_config(c.config)
        plans = plan_tables(config, create=False)
        stream = source_streams.ensure_streams(config, [p.spec.source for p in plans], enable=False)[0]
        settings = source_streams.replication_settings(config, plans)
        alternator_clean.front.set_faults(slow=1.0, slow_seconds=1.5, ops=["BatchWriteItem"])
        created: dict[str, float] = {}
        samples: list[tuple[float, float | None, float | None]] = []  # (at, tool's lag, oldest missing change)

        async def follow_and_watch():
            async with open_replicator(settings) as replicator:
                engine = replicator.engine()
                await engine.add_stream(stream.table, stream.arn)
                running = asyncio.create_task(engine.run(follow=True))
                for wave in range(6):
                    for n, shard in enumerate(shards[wave::3]):
                        name = f"w{wave}-{n}"
                        created[name] = time.time()
                        c.stream.put_record(shard, "INSERT", key(name), new_image=image(name, 1),
                                            created=created[name])
                    for _ in range(5):
                        await asyncio.sleep(0.2)
                        at, lag = time.time(), engine.status(stream.table).lag
                        present = await asyncio.to_thread(target_versions, c.target, c.table)
                        missing = [when for name, when in created.items() if name not in present]
                        samples.append((at, lag, min(missing) if missing else None))
                while len(await asyncio.to_thread(target_versions, c.target, c.table)) < len(created):
                    await asyncio.sleep(0.2)
                engine.stop()
                await running

        asyncio.run(follow_and_watch())
        alternator_clean.front.set_faults()

    compared = [(at, lag, oldest) for at, lag, oldest in samples if lag is not None and oldest is not None]
    assert compared, samples  # the figure was known while changes were still on their way
    for at, lag, oldest in compared:
        assert lag >= at - oldest - 1.0, (at, lag, oldest)


def test_until_caught_up_means_every_earlier_change_is_on_the_target(dynamodb_local, alternator_clean, tmp_path):
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path) as c:
        expected = {}
        for n in range(50):
            c.stream.add_shard(shard_id(n))
            for version in range(1, 4):
                c.stream.put_record(shard_id(n), "MODIFY", key(f"k{n}"), new_image=image(f"k{n}", version))
            expected[f"k{n}"] = 3
        alternator_clean.front.set_faults(slow=1.0, slow_seconds=1.0, ops=["BatchWriteItem"])
        more = threading.Event()

        def keep_writing():
            """A trickle on one shard while it catches up, then the application stops, as at a
            cutover: a shard written to faster than the target takes one write is never read to
            its end, so the command would wait for ever (docs/guide.md, "Replication and cutover")."""
            version, stop_at = 3, time.monotonic() + 3.0
            while not more.wait(0.5) and time.monotonic() < stop_at:
                version += 1
                c.stream.put_record(shard_id(0), "MODIFY", key("k0"), new_image=image("k0", version))

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            result = run_cli("replicate", "--config", str(c.config), "--until-caught-up", "--max-lag", "3")
        finally:
            more.set()
            writer.join()
            alternator_clean.front.set_faults()

        assert result.exit_code == 0, result.output
        assert "caught up" in result.output
        versions = target_versions(c.target, c.table)
        assert all(versions[k] >= v for k, v in expected.items())  # nothing from before the run is missing


def test_a_stream_disabled_while_following_stops_the_follower(dynamodb_local, alternator_clean, tmp_path):
    with controlled_stream(dynamodb_local, alternator_clean, tmp_path) as c:
        c.stream.add_shard(shard_id(0))
        c.stream.put_record(shard_id(0), "INSERT", key("a"), new_image=image("a", 1))
        config = load_config(c.config)
        plans = plan_tables(config, create=False)
        streams = source_streams.ensure_streams(config, [p.spec.source for p in plans], enable=False)
        lines: list[str] = []
        threading.Timer(2.0, c.stream.disable).start()

        code = replication.follow_locally(config, plans, streams, follow=True, until_caught_up=False, max_lag=2,
                                          echo=lines.append, discover_seconds=0.5)

        assert code == 2, lines
        assert any(f"the stream of {c.table} is disabled" in line for line in lines), lines
        assert target_versions(c.target, c.table) == {"a": 1}
