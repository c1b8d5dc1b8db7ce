"""Replication from DynamoDB Streams: bounded rounds (`ReplicateShards`) and one
long-running streaming pipeline (`FollowStreams`, for Dataflow and other streaming runners).

`ReplicateShards` applies the given shard tasks, each up to its shard's current end:
`Create(tasks) -> Reshuffle -> ReplicateShardFn`. `FollowStreams`:

    PeriodicImpulse ─► DiscoverShards (DescribeStream + checkpoints: the ready shards)
      ─► OncePerShard (stateful: each shard is started once) ─► Reshuffle
      ─► FollowShard (splittable: apply up to the shard's end, then defer and poll again)

FollowShard is the rounds' `ReplicateShardFn` made splittable: each claimed position is
one poll of its shard, and at the end of an open shard (or while its parent is not
applied yet) it self-checkpoints with `defer_remainder`, so a streaming runner resumes
it later. Its progress lives in the
same checkpoint files as the rounds', so the two modes can take over from each other.
The local DirectRunner does not honour the deferral delay; `max_polls` bounds a local
run (tests), where the rounds of `pipeline.replicate` are the normal mode. A shard that
cannot go on leaves a stop note; the next discovery tick fails the job with it, so a
streaming job never runs on silently with a stopped shard.

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

from transforms.dynamo.endpoints import SourceSpec, TargetSpec, streams_client
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.writer import WriterSettings
from transforms.errors import MigrateError
from transforms.state import stream_checkpoints
from transforms.state.storage import StorageOptions
from transforms.streams.shard_reader import ReplicateShardFn
from transforms.streams.shards import ShardTask, describe_shards, plan_shards
from transforms.table_pair import TablePair

__all__ = ["ReplicateShards", "FollowStreams"]

UNBOUNDED_POLLS = 2**62


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


class _FollowShardFn(ReplicateShardFn):
    def __init__(self, *args, poll_seconds: float = 1.0, max_polls: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._poll_seconds = poll_seconds
        self._max_polls = max_polls

    def process(self, task: ShardTask, tracker=beam.DoFn.RestrictionParam(_Polls())):
        position = tracker.current_restriction().start
        if not tracker.try_claim(position):
            return
        parent_pending = task.parent_id is not None and not (
            stream_checkpoints.read_shard(self._checkpoint_dir, task.table, task.parent_id)
            or stream_checkpoints.ShardCheckpoint()).finished
        done = (not parent_pending and self._replicate_or_stop(task)) or (
            self._max_polls is not None and position + 1 >= self._max_polls)
        if done:
            tracker.try_claim(tracker.current_restriction().stop - 1)  # nothing left to read
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
        tasks: the shards to apply now (their parents already applied).
        checkpoint_dir: where each shard's last applied sequence number is kept.
        dead_letter_dir: where changes that could not be written go.
        writer: batch size, concurrency, this worker's rate, and attempts.
        read_attempts: attempts for each Streams or source read.
        storage: the filesystem options for the two folders (S3 endpoint and keys...).
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 tasks: Sequence[ShardTask], *, checkpoint_dir: str, dead_letter_dir: str,
                 writer: WriterSettings, read_attempts: int, storage: StorageOptions):
        super().__init__()
        self._tasks = list(tasks)
        self._fn = ReplicateShardFn(source, target, pairs, checkpoint_dir, dead_letter_dir, writer, read_attempts,
                                    storage)

    def display_data(self):
        return {"shards": DisplayDataItem(len(self._tasks), label="Shards")}

    def expand(self, pbegin):
        return (pbegin
                | "ShardTasks" >> beam.Create(self._tasks)
                | "SpreadShards" >> beam.Reshuffle()
                | "ApplyShards" >> beam.ParDo(self._fn))


class FollowStreams(beam.PTransform):
    """Follow DynamoDB Streams for ever (a streaming pipeline); arguments as `ReplicateShards`,
    plus the streams to follow as (table, stream ARN) pairs and the polling periods.

    `stop_after_seconds` and `max_polls` bound a run, for tests on the local runner.
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 streams: Sequence[tuple[str, str]], *, checkpoint_dir: str, dead_letter_dir: str,
                 writer: WriterSettings, read_attempts: int, storage: StorageOptions,
                 discover_seconds: float = 10.0, poll_seconds: float = 1.0,
                 stop_after_seconds: float | None = None, max_polls: int | None = None):
        super().__init__()
        self._source, self._streams, self._checkpoint_dir = source, tuple(streams), checkpoint_dir
        self._storage = storage
        self._discover_seconds = discover_seconds
        self._stop_after = stop_after_seconds
        self._follow = _FollowShardFn(source, target, pairs, checkpoint_dir, dead_letter_dir, writer, read_attempts,
                                      storage, poll_seconds=poll_seconds, max_polls=max_polls)

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
