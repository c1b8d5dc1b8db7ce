"""Replication from DynamoDB Streams on Beam: bounded rounds (`ReplicateShards`) and one
long-running streaming pipeline (`FollowStreams`, for Dataflow and other streaming runners).

Both run the same engine (`transforms.streams.engine`) as the local follower, on the
same checkpoints, so any mode can take over from another.

`ReplicateShards` applies shard tasks, each up to its shard's current end, whole
lineages together so a child starts in the same round as its parent:
`Create(lineage groups) -> Reshuffle -> ApplyShardGroups`, each group's shards in
flight together on the worker's event loop. `FollowStreams`:

    PeriodicImpulse ─► DiscoverShards (DescribeStream + checkpoints: unfinished shards)
      ─► OncePerShard (stateful: each shard is started once) ─► Reshuffle
      ─► FollowShard (splittable: apply up to the shard's end, then defer and poll again)

FollowShard is a one-shard pass made splittable: each claimed position is one poll of
its shard (the worker keeps the shard's iterator between polls), and at the end of an
open shard (or while its parent is not applied yet) it self-checkpoints with
`defer_remainder`, so a streaming runner resumes it later. The local DirectRunner does
not honour the deferral delay; `max_polls` bounds a local run (tests), where the
launcher's follower is the normal mode. A shard that cannot go on leaves a stop note;
the next discovery tick fails the job with it, so a streaming job never runs on
silently with a stopped shard.
"""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.display import DisplayDataItem
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.timestamp import MAX_TIMESTAMP, Duration

from transforms import metrics
from transforms.dynamo.endpoints import SourceSpec, TargetSpec, streams_client
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.writer import WriterSettings
from transforms.errors import MigrateError
from transforms.metrics import Figure
from transforms.state import stream_checkpoints
from transforms.state.storage import StorageOptions
from transforms.streams.engine import PassResult, ReplicationSettings, open_replicator
from transforms.streams.shards import ShardTask, describe_shards, lineage_groups, plan_shards
from transforms.table_pair import TablePair

__all__ = ["ReplicateShards", "FollowStreams"]

UNBOUNDED_POLLS = 2**62
SHARDS_PER_GROUP = 256  # shards one worker keeps in flight in a round


class _ApplyShardGroupsFn(LoopDoFn):
    """Applies a group of shard tasks up to their current end, all in flight together."""

    def __init__(self, settings: ReplicationSettings):
        self._settings = settings

    def open_clients(self):
        self._settings.storage.install()
        self._replicator = self.loop.enter(open_replicator(self._settings))

    def _pass(self, tasks: Sequence[ShardTask]) -> PassResult:
        stats = self._replicator.io.stats
        before = {table: stats[table].applied for table in self._settings.pairs}
        result = self.loop.run(self._replicator.run_pass(tasks))
        for table, applied in before.items():  # Beam counters only from Beam's thread
            if stats[table].applied > applied:
                metrics.counter(table, Figure.CHANGES_APPLIED).inc(stats[table].applied - applied)
        return result

    def process(self, group: list[ShardTask]):
        self._pass(group)


class _Polls(beam.transforms.core.RestrictionProvider):
    """A shard's restriction: the polls still to make (effectively endless)."""

    def initial_restriction(self, task: ShardTask) -> OffsetRange:
        return OffsetRange(0, UNBOUNDED_POLLS)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, task: ShardTask, restriction: OffsetRange) -> int:
        return restriction.size()

    def split(self, task: ShardTask, restriction: OffsetRange):
        yield restriction  # a shard is read in order by one reader: never split


class _FollowShardFn(_ApplyShardGroupsFn):
    def __init__(self, settings: ReplicationSettings, poll_seconds: float = 1.0, max_polls: int | None = None):
        super().__init__(settings)
        self._poll_seconds = poll_seconds
        self._max_polls = max_polls

    def process(self, task: ShardTask, tracker=beam.DoFn.RestrictionParam(_Polls())):
        position = tracker.current_restriction().start
        if not tracker.try_claim(position):
            return
        checkpoint_dir = self._settings.checkpoint_dir
        parent_pending = any(not (stream_checkpoints.read_shard(checkpoint_dir, task.table, parent)
                                  or stream_checkpoints.ShardCheckpoint()).finished for parent in task.parents)
        if not parent_pending:
            result = self._pass([task])
            if result.failure is not None or result.closed:
                tracker.try_claim(tracker.current_restriction().stop - 1)  # nothing left to read
                return
        if self._max_polls is not None and position + 1 >= self._max_polls:
            tracker.try_claim(tracker.current_restriction().stop - 1)
            return
        tracker.defer_remainder(Duration(seconds=self._poll_seconds))


class _DiscoverShardsFn(LoopDoFn):
    def __init__(self, source: SourceSpec, streams: Sequence[tuple[str, str]], checkpoint_dir: str,
                 storage: StorageOptions):
        self._source = source
        self._streams = tuple(streams)  # (table, stream arn)
        self._checkpoint_dir = checkpoint_dir
        self._storage = storage

    def open_clients(self):
        self._storage.install()
        self._client = self.loop.enter(streams_client(self._source))

    def process(self, _tick):
        for table, _ in self._streams:  # a shard that could not go on stops the whole job, loudly
            stopped = stream_checkpoints.read_stop(self._checkpoint_dir, table)
            if stopped is not None:
                raise RuntimeError(f"replication stopped (exit code {int(stopped.code)}): {stopped}")
        for table, arn in self._streams:
            try:
                shards = self.loop.run(describe_shards(self._client, table, arn))
                plan = plan_shards(table, arn, shards, stream_checkpoints.all_shards(self._checkpoint_dir, table))
            except MigrateError as exc:
                stream_checkpoints.write_stop(self._checkpoint_dir, table, exc)
                continue
            for task in plan.unfinished:  # a child waits for its parent in FollowShard
                yield f"{table}/{task.shard_id}", task


class _OncePerShardFn(beam.DoFn):
    """Discovery sees a shard on every tick; start its reader only the first time."""

    STARTED = ReadModifyWriteStateSpec("started", BooleanCoder())

    def process(self, keyed, started=beam.DoFn.StateParam(STARTED)):
        if not started.read():
            started.write(True)
            yield keyed[1]


class ReplicateShards(beam.PTransform):
    """Apply shards of DynamoDB Streams to the target, each up to its current end.

    Args:
        source: where the streams (and, for KEYS_ONLY/OLD_IMAGE streams, the items) are read.
        target: the Alternator cluster (or DynamoDB-API endpoint) to write to.
        pairs: per source table, its target table, key and renames.
        tasks: the unfinished shards; a task's `parents` name shards among them to apply first.
        checkpoint_dir: where each shard's last applied sequence number is kept.
        dead_letter_dir: where changes that could not be written go.
        writer_settings: batch size, concurrency, this worker's rate, and attempts.
        read_attempts: attempts for each Streams or source read.
        shards_per_group: shards one worker keeps in flight (lineages are never split).
        storage: the filesystem options for the two folders (S3 endpoint and keys...).
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 tasks: Sequence[ShardTask], *, checkpoint_dir: str, dead_letter_dir: str,
                 writer_settings: WriterSettings, read_attempts: int, storage: StorageOptions,
                 shards_per_group: int = SHARDS_PER_GROUP):
        super().__init__()
        self._groups = lineage_groups(tasks, shards_per_group)
        self._fn = _ApplyShardGroupsFn(ReplicationSettings(source, target, dict(pairs), checkpoint_dir, dead_letter_dir,
                                                           writer_settings, read_attempts, storage=storage))

    def display_data(self):
        return {"shards": DisplayDataItem(sum(map(len, self._groups)), label="Shards"),
                "groups": DisplayDataItem(len(self._groups), label="Shard groups")}

    def expand(self, pbegin):
        return (pbegin
                | "ShardGroups" >> beam.Create(self._groups)
                | "SpreadGroups" >> beam.Reshuffle()
                | "ApplyShardGroups" >> beam.ParDo(self._fn))


class FollowStreams(beam.PTransform):
    """Follow DynamoDB Streams for ever (a streaming pipeline); arguments as `ReplicateShards`,
    plus the streams to follow as (table, stream ARN) pairs and the polling periods.

    `stop_after_seconds` and `max_polls` bound a run, for tests on the local runner.
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 streams: Sequence[tuple[str, str]], *, checkpoint_dir: str, dead_letter_dir: str,
                 writer_settings: WriterSettings, read_attempts: int, storage: StorageOptions,
                 discover_seconds: float = 10.0, poll_seconds: float = 1.0,
                 stop_after_seconds: float | None = None, max_polls: int | None = None):
        super().__init__()
        self._source, self._streams, self._checkpoint_dir = source, tuple(streams), checkpoint_dir
        self._storage = storage
        self._discover_seconds = discover_seconds
        self._stop_after = stop_after_seconds
        self._follow = _FollowShardFn(ReplicationSettings(source, target, dict(pairs), checkpoint_dir, dead_letter_dir,
                                                          writer_settings, read_attempts, storage=storage),
                                      poll_seconds=poll_seconds, max_polls=max_polls)

    def display_data(self):
        return {"streams": DisplayDataItem(", ".join(table for table, _ in self._streams), label="Tables"),
                "discover_seconds": DisplayDataItem(self._discover_seconds, label="Shard discovery period")}

    def expand(self, pbegin):
        now = time.time()
        stop = now + self._stop_after if self._stop_after is not None else MAX_TIMESTAMP
        return (pbegin
                | "Tick" >> PeriodicImpulse(start_timestamp=now, stop_timestamp=stop,
                                            fire_interval=self._discover_seconds)
                | "DiscoverShards" >> beam.ParDo(_DiscoverShardsFn(self._source, self._streams, self._checkpoint_dir,
                                                                     self._storage))
                | "OncePerShard" >> beam.ParDo(_OncePerShardFn())
                | "SpreadShards" >> beam.Reshuffle()
                | "FollowShard" >> beam.ParDo(self._follow))
