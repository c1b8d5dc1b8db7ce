"""Many shards in flight on one event loop: the replication engine.

`StreamEngine` runs every shard it knows as a task of its own through the worker's
one `ShardReader`:

- Width and fairness: a thousand shards are a thousand small tasks; what bounds them
  is the record budget (reads in flight plus records not yet acknowledged), served
  first come, first served, and the shared writer. A hot shard is read every 0.2 s and
  the quiet ones every second all the same: none waits behind another.
- Lineage: a child's task waits for its parents' tasks (two for a Kinesis merge), and
  starts the moment they are closed and fully applied (their finished checkpoints
  written), in the same pass. In a bounded pass a parent that is still open leaves its
  children for later.
- Discovery (streams added with `add_stream`): one full listing first (DescribeStream,
  or ListShards for a Kinesis data stream; it also finds checkpointed shards the stream
  trimmed away: changes lost, and lets the source recall what was handed on before),
  then incremental listings from the last shard seen: every `discover_seconds` while
  following, and at once when a shard closes (its children are due).
- Honest lag (`status`): for each shard not yet finished, the time since every change
  of the shard created before it is applied: since its last read that found its end
  (with everything before it applied), or since the creation of its last applied change
  (a shard's changes are created in sequence order, so any change not applied yet is
  younger), whichever is later. The table's lag is the largest. While a shard has
  neither, or a closed shard's children are still being looked for, the lag is unknown
  (None), never a guess that could be too small.
- Stops: a shard that cannot go on writes a stop note (how the launcher and a streaming
  job learn the exit code) and stops the run; what was acknowledged is checkpointed.

`open_replicator` opens what a worker needs once (clients, the shared writer,
checkpoints, the budget); the launcher's follower and the Beam DoFns of
`transforms.replicate` both run on it.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Mapping, Sequence

from transforms.dynamo.endpoints import SourceSpec, TargetSpec, source_client
from transforms.dynamo.retry import call_with_retry, error_code
from transforms.dynamo.writer import WriterSettings, open_writer
from transforms.errors import ExitCode, MigrateError
from transforms.state import stream_checkpoints
from transforms.state.storage import StorageOptions
from transforms.state.stream_checkpoints import CheckpointWriter, ShardCheckpoint
from transforms.streams.shard_reader import (IDLE_POLL_SECONDS, RecordBudget, ShardIO, ShardReader, ShardState,
                                             TableStats, TargetSink)
from transforms.streams.shards import ShardTask, parents_of, plan_shards
from transforms.streams.sources import open_change_sources
from transforms.streams.windows import WindowWriter
from transforms.table_pair import TablePair


DISCOVER_SECONDS = 10.0
HELD_RECORDS = 100_000  # ~100 MB of changes at 1 KB each


@dataclass(frozen=True)
class ReplicationSettings:
    """What a worker needs to replicate; picklable, so DoFns carry it to remote workers.

    Args:
        source: where the streams (and, for KEYS_ONLY/OLD_IMAGE streams, the items) are read.
        target: the Alternator cluster (or DynamoDB-API endpoint) to write to.
        pairs: per source table, its target table, key and renames.
        checkpoint_dir: where each shard's last applied sequence number is kept.
        dead_letter_dir: where changes that could not be written go.
        writer_settings: batch size, concurrency, this worker's rate, and attempts.
        read_attempts: attempts for each Streams or source read.
        idle_poll_seconds: how often a shard with nothing new is read again.
        discover_seconds: how often a follower looks for new shards.
        held_records: the most changes a worker holds read and not yet acknowledged.
        storage: the filesystem options for the two folders (S3 endpoint and keys...); a
            worker installs them before it touches either (see state.storage).
    """

    source: SourceSpec
    target: TargetSpec
    pairs: Mapping[str, TablePair]
    checkpoint_dir: str
    dead_letter_dir: str
    writer_settings: WriterSettings
    read_attempts: int
    idle_poll_seconds: float = IDLE_POLL_SECONDS
    discover_seconds: float = DISCOVER_SECONDS
    held_records: int = HELD_RECORDS
    storage: StorageOptions = StorageOptions()


@dataclass(frozen=True)
class TableStatus:
    applied: int           # changes applied since the worker started
    lag: float | None      # seconds; None: not known yet (see the module docstring)
    open_shards: int
    waiting: int           # shards whose parent is not applied yet
    unread: int            # shards with nothing applied that were never read to their end
    throttled: int = 0     # GetRecords calls the stream refused for its rate, retried
    write_retries: int = 0  # write requests retried
    dead_lettered: int = 0  # changes written to dead-letter files
    refused: int = 0       # records older than a change of their key handed on before (Kinesis)
    # Open shards not yet read to their end by this run: until then a lag from an earlier
    # run's checkpoint says nothing of changes made since, so the table is not caught up.
    unconfirmed: int = 0


@dataclass(eq=False)
class _Stream:
    arn: str
    seen: set[str] = field(default_factory=set)     # every shard listed so far
    open: set[str] = field(default_factory=set)     # listed without an end, and not seen to close
    last_seen: str | None = None
    due: bool = False           # a shard closed: its children are being looked for
    again: bool = False         # another listing is wanted once the current one ends
    listing: asyncio.Task | None = None


class StreamEngine:
    """Runs shards (see the module docstring); one run, then it is spent."""

    def __init__(self, reader: ShardReader, io: ShardIO, settings: ReplicationSettings):
        self._reader, self._io, self._settings = reader, io, settings
        self._shards: dict[tuple[str, str], ShardState] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task] = {}
        self._streams: dict[str, _Stream] = {}
        self._background: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._follow = self._running = self._stopping = False
        self.failure: MigrateError | None = None

    # --- what to run ---------------------------------------------------------------------

    async def add_stream(self, table: str, arn: str) -> None:
        """Every unfinished shard of the table's stream, and discovery for it from now on.
        Raises `StreamDisabled` or `ChangesLost` (a checkpointed shard trimmed away)."""
        shards = await self._describe(table, arn, None)
        done = stream_checkpoints.all_shards(self._io.checkpoint_dir, table)
        if self._io.coverage is not None:  # a capture: shards gone unread since its last listing?
            await self._io.coverage.listed(table, shards, done)
        plan = plan_shards(table, arn, shards, done)
        await self._io.source.recall(table, arn, shards, done)
        self._streams[table] = stream = _Stream(arn)
        self._note_listed(stream, shards)
        for task in plan.unfinished:
            self.add(task, done.get(task.shard_id))

    def add(self, task: ShardTask, checkpoint: ShardCheckpoint | None, state: ShardState | None = None) -> ShardState:
        """A shard to run (`checkpoint` None: never read before); `state` continues an earlier run."""
        key = (task.table, task.shard_id)
        if key not in self._shards:
            self._shards[key] = state or ShardState(task, checkpoint or ShardCheckpoint(), recorded=bool(checkpoint))
            if self._running:
                self._start(self._shards[key])
        return self._shards[key]

    # --- running -------------------------------------------------------------------------

    async def run(self, *, follow: bool) -> None:
        """Apply every shard up to its current end, children of shards that close included
        (`follow`: keep going until `stop`, a failure, or cancellation). Every acknowledged
        window is checkpointed when this returns."""
        self._follow, self._running = follow, True
        for state in list(self._shards.values()):
            self._start(state)
        if follow:
            for table in self._streams:
                self._spawn(self._discover_every_period(table))
        try:
            while not (self.failure or self._stopping or (not follow and not self._tasks and not self._listing())):
                await self._wake.wait()
                self._wake.clear()
        finally:
            self._running = False
            pending = list(self._tasks.values()) + list(self._background)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self._io.checkpoints.flush()

    def stop(self) -> None:
        """End a following run (what was acknowledged is checkpointed)."""
        self._stopping = True
        self._wake.set()

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda _: self._wake.set())
        return task

    def _listing(self) -> bool:
        return any(s.listing is not None and not s.listing.done() for s in self._streams.values())

    def _start(self, state: ShardState) -> None:
        key = (state.task.table, state.task.shard_id)
        if state.closed or key in self._tasks:
            return
        task = asyncio.create_task(self._run_shard(state))
        self._tasks[key] = task

        def ended(_) -> None:
            self._tasks.pop(key, None)
            self._wake.set()

        task.add_done_callback(ended)

    async def _run_shard(self, state: ShardState) -> None:
        task = state.task
        try:
            for parent_id in task.parents:
                parent = self._shards.get((task.table, parent_id))
                if parent is None or parent.closed:
                    continue
                running = self._tasks.get((task.table, parent_id))
                if running is not None:
                    await asyncio.wait({running})
                if not parent.closed:  # still open after a bounded pass: the child waits for a later one
                    return
            await self._reader.run(state, follow=self._follow)
            if state.closed and task.table in self._streams:
                stream = self._streams[task.table]
                stream.open.discard(task.shard_id)
                self._discover_soon(task.table, due=True)
        except MigrateError as exc:
            self._fail(task.table, exc)
        except Exception as exc:  # noqa: BLE001 - any other failure stops the run with one clear line
            error = MigrateError(f"{task.table}: replication of shard {task.shard_id} stopped: {type(exc).__name__}: "
                                 f"{exc}; the next run resumes from the checkpoints", ExitCode.FAILED)
            error.__cause__ = exc  # its traceback goes with the stop note, to the run's log file
            self._fail(task.table, error)

    def _fail(self, table: str, error: MigrateError) -> None:
        stream_checkpoints.write_stop(self._io.checkpoint_dir, table, error)
        self.failure = self.failure or error
        self._wake.set()

    # --- discovery -----------------------------------------------------------------------

    async def _describe(self, table: str, arn: str, after: str | None) -> list[dict]:
        try:
            return await call_with_retry(lambda: self._io.source.list_shards(table, arn, after),
                                         max_attempts=self._io.read_attempts)
        except Exception as exc:  # noqa: BLE001 - botocore builds exception classes per client
            if after is None or error_code(exc) not in ("ValidationException", "ResourceNotFoundException"):
                raise
        return await self._describe(table, arn, None)  # the last shard seen is gone: list them all

    def _note_listed(self, stream: _Stream, shards: list[dict]) -> list[dict]:
        """Record listed shards; the ones not seen before."""
        new = [shard for shard in shards if shard["ShardId"] not in stream.seen]
        for shard in new:
            stream.seen.add(shard["ShardId"])
            if "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                stream.open.add(shard["ShardId"])
        if shards:
            stream.last_seen = shards[-1]["ShardId"]
        return new

    def _discover_soon(self, table: str, *, due: bool) -> None:
        stream = self._streams[table]
        stream.due = stream.due or due
        if stream.listing is not None and not stream.listing.done():
            stream.again = True
        else:
            stream.listing = self._spawn(self._discover(table))

    async def _discover(self, table: str) -> None:
        stream = self._streams[table]
        try:
            while True:
                stream.again = False
                for shard in self._note_listed(stream, await self._describe(table, stream.arn, stream.last_seen)):
                    parents = parents_of(shard)
                    for parent in parents:
                        if parent and (table, parent) not in self._shards and self._io.coverage is not None:
                            await self._io.coverage.check_parent(table, shard["ShardId"], parent)
                    task = ShardTask(table, stream.arn, shard["ShardId"],
                                     *(parent if (table, parent) in self._shards else None for parent in parents))
                    self.add(task, stream_checkpoints.read_shard(self._io.checkpoint_dir, table, shard["ShardId"]))
                if not stream.again:
                    break
            stream.due = False
        except MigrateError as exc:
            self._fail(table, exc)
        except Exception as exc:  # noqa: BLE001 - one clear line, as for a shard
            error = MigrateError(f"{table}: looking for new shards failed: {type(exc).__name__}: {exc}; the next run "
                                 f"resumes from the checkpoints", ExitCode.FAILED)
            error.__cause__ = exc
            self._fail(table, error)

    async def _discover_every_period(self, table: str) -> None:
        while True:
            await asyncio.sleep(self._settings.discover_seconds)
            self._discover_soon(table, due=False)

    # --- what the launcher shows -----------------------------------------------------------

    def status(self, table: str) -> TableStatus:
        """Changes applied, the honest lag and the shard counts of one table, now."""
        now = time.time()
        active = [s for (t, _), s in self._shards.items() if t == table and not s.closed]
        stream = self._streams.get(table)
        bounds = [_applied_up_to(s) for s in active]
        unread = sum(1 for bound in bounds if bound is None)
        lag = None if unread or (stream is not None and stream.due) else \
            max((now - bound for bound in bounds), default=0.0)
        waiting = sum(1 for s in active if any(not self._shards[(table, parent)].closed for parent in s.task.parents
                                               if (table, parent) in self._shards))
        open_shards = len(stream.open) if stream is not None else len(active)
        stats = self._io.stats[table]
        return TableStatus(stats.applied, lag, open_shards, waiting, unread, stats.throttled,
                           self._io.sink.retries.get(table, 0), stats.dead_lettered, stats.refused,
                           unconfirmed=sum(1 for s in active if s.caught_up_at is None))


@dataclass(frozen=True)
class PassResult:
    failure: MigrateError | None              # the first error a shard stopped with
    closed: frozenset[tuple[str, str]]        # (table, shard) read to their close and fully applied


def _applied_up_to(shard: ShardState) -> float | None:
    """A time before which every change of the shard is applied: its last read that found
    its end, or the creation of its last applied change (a shard's changes are created in
    sequence order); the later of the two. None when neither is known yet."""
    known = [t for t in (shard.caught_up_at, shard.checkpoint.last_change_time) if t is not None]
    return max(known) if known else None


class Replicator:
    """A worker's open clients and shared state (see `open_replicator`); engines run on it."""

    def __init__(self, settings: ReplicationSettings, io: ShardIO):
        self.settings, self.io = settings, io
        self._reader = ShardReader(io, settings.pairs, settings.idle_poll_seconds)
        self._positions: dict[tuple[str, str], ShardState] = {}  # where shards stopped, for the next pass

    def engine(self) -> StreamEngine:
        return StreamEngine(self._reader, self.io, self.settings)

    async def run_pass(self, tasks: Sequence[ShardTask]) -> PassResult:
        """Apply these shards up to their current end (a child after its parent, if both are
        here); shards run before continue with their iterator when their checkpoint did not
        move meanwhile. A shard that stopped has written its stop note."""
        engine = self.engine()
        states = []
        for task in tasks:
            key = (task.table, task.shard_id)
            checkpoint = stream_checkpoints.read_shard(self.io.checkpoint_dir, task.table, task.shard_id)
            earlier = self._positions.pop(key, None)
            if earlier is not None and earlier.checkpoint == checkpoint:
                earlier.task = task
            else:
                earlier = None
            states.append(engine.add(task, checkpoint, earlier))
        await engine.run(follow=False)
        if engine.failure is None:
            self._positions.update({(s.task.table, s.task.shard_id): s for s in states if not s.closed})
        return PassResult(engine.failure, frozenset((s.task.table, s.task.shard_id) for s in states if s.closed))


@contextlib.asynccontextmanager
async def open_replicator(settings: ReplicationSettings) -> AsyncIterator[Replicator]:
    """Open the clients, the shared writer and the checkpoint writer of one worker."""
    async with contextlib.AsyncExitStack() as stack:
        sources = await stack.enter_async_context(open_change_sources(settings.source, settings.read_attempts))
        source_items = await stack.enter_async_context(source_client(settings.source))
        writer = await stack.enter_async_context(open_writer(settings.target, settings.writer_settings))
        batches = settings.writer_settings
        windows = WindowWriter(writer, max_items_per_batch=batches.max_items_per_batch,
                               max_requests=batches.max_items_per_batch * batches.concurrency)
        stack.push_async_callback(windows.close)
        checkpoints = await checkpoint_writer(stack, settings.checkpoint_dir)
        stats = collections.defaultdict(TableStats)
        sink = TargetSink(windows, checkpoints, stats, source_items=source_items,
                          dead_letter_dir=settings.dead_letter_dir, read_attempts=settings.read_attempts,
                          write_attempts=settings.writer_settings.max_attempts)
        io = ShardIO(sources, sink, checkpoints, RecordBudget(settings.held_records), settings.checkpoint_dir,
                     settings.read_attempts, stats)
        yield Replicator(settings, io)


async def checkpoint_writer(stack: contextlib.AsyncExitStack, checkpoint_dir: str) -> CheckpointWriter:
    checkpoints = CheckpointWriter(checkpoint_dir)
    stack.push_async_callback(checkpoints.close)
    return checkpoints
