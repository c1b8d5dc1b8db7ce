"""Capture: follow the streams into the change spool while the snapshot is copied, then apply it.

A stream keeps a record 24 hours, and a large table takes longer than that to copy. So
the streams are followed from before the first Scan, by the same engine as replication
(every shard in flight, parents before children, loss detected), but each window goes
to the change spool (`state.change_spool`) instead of the target: applying a change
before the snapshot's write of an older version of its item would let the older one win
for good. `SpoolSink` buffers windows per table and writes them as one chunk at a time
(at `FLUSH_RECORDS` records, `FLUSH_BYTES` of JSON, or `LINGER_SECONDS` after the first
window waiting); a shard's capture position moves only once its records are in a written
chunk, so a restart reads again what was not yet durable (and the apply skips a record it
already applied). A closed shard's chunk is written at once, before its children are read.

After the snapshot, `SpoolApplier` applies each table's chunks in order: a chunk is one
window (the last change per key, chosen from the undecoded keys column; as puts and
deletes, the same `window_requests` as live replication), decoded and handed to the same
`WindowWriter` as live replication a shared write's worth (a slice) at a time, a few
slices ahead, so the target is written to without a pause between chunks, as live
replication writes. The writer never lets a slice pass an earlier one that names a key of
it, so a key's changes land in order; a chunk is marked applied once it and every chunk
before it are acknowledged (a run stopped before that applies it again, in order). In
memory: the chunk being handed on and the next one being read (as Arrow, undecoded) and
the slices in flight, however large the spool. `change_spool.hand_over` then makes the
capture's positions the replication checkpoints, and live replication continues from there.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Mapping

from transforms.dynamo.endpoints import source_client
from transforms.dynamo.write_requests import FailedWrite
from transforms.dynamo.writer import TargetWriter, open_writer
from transforms.errors import ChangesLost, WritesFailed
from transforms.state import change_spool, stream_checkpoints
from transforms.state.dead_letters import write_dead_letters
from transforms.state.stream_checkpoints import CheckpointWriter, ShardCheckpoint
from transforms.streams.engine import Replicator, ReplicationSettings, checkpoint_writer
from transforms.streams.shard_reader import RecordBudget, ShardIO, TableStats
from transforms.streams.shards import ShardTask, parents_of
from transforms.streams.sources import open_change_sources
from transforms.streams.windows import WindowWriter, window_requests
from transforms.table_pair import TablePair

FLUSH_RECORDS = 10_000
FLUSH_BYTES = 16 << 20  # of keys and images as JSON text: what a chunk holds in memory when applied
LINGER_SECONDS = 2.0
CAPTURE_IDLE_POLL_SECONDS = 5.0  # how often the capture reads a quiet shard again (see `idle_poll_seconds`)
READS_PER_RETENTION = 8  # a quiet shard is read at least this often within its stream's retention
SLICES_AHEAD = 3  # slices of the spool handed to the writer, not yet acknowledged: two shared writes and one queued


@dataclass(eq=False)
class _Buffer:
    """A table's windows taken and not yet written, as the spool's columns."""

    next_chunk: int | None = None  # found by listing the spool once
    chunk: change_spool.ChunkColumns = field(default_factory=change_spool.ChunkColumns)
    positions: dict[str, ShardCheckpoint] = field(default_factory=dict)  # per shard, after its last record here
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    timer: asyncio.Task | None = None


@dataclass
class SpoolFigures:
    chunks: int = 0    # chunks this process wrote
    bytes: int = 0     # their size, compressed


class SpoolSink:
    """Takes windows into the change spool (see the module docstring); one per event loop.

    A chunk is written whole with its positions moved after it, or not at all and nothing
    more is taken: the write runs in a task of its own that a cancelled shard (the end of a
    run) cannot interrupt half-way, and after a failed write every later `take` raises, so
    no position can ever move past records that are not in the spool.
    """

    def __init__(self, checkpoint_dir: str, checkpoints: CheckpointWriter, *, flush_records: int = FLUSH_RECORDS,
                 flush_bytes: int = FLUSH_BYTES, linger_seconds: float = LINGER_SECONDS):
        self._dir, self._checkpoints = checkpoint_dir, checkpoints
        self._flush_records, self._flush_bytes, self._linger = flush_records, flush_bytes, linger_seconds
        self._buffers: dict[str, _Buffer] = {}
        self._writes: set[asyncio.Task] = set()
        self.retries: dict[str, int] = {}  # nothing is written to the target here
        self.figures: dict[str, SpoolFigures] = collections.defaultdict(SpoolFigures)
        self.failure: BaseException | None = None  # a chunk could not be written: the capture stops

    async def take(self, task: ShardTask, table: TablePair, records: list[dict], checkpoint: ShardCheckpoint) -> None:
        if self.failure is not None:
            raise self.failure
        buffer = self._buffers.setdefault(table.source, _Buffer())
        buffer.chunk.append(task.shard_id, records)
        buffer.positions[task.shard_id] = checkpoint
        if len(buffer.chunk) >= self._flush_records or buffer.chunk.size >= self._flush_bytes:
            await self._flush(table.source)  # the spool keeps up, or the shards wait
        elif buffer.timer is None:
            buffer.timer = asyncio.create_task(self._flush_later(table.source))

    async def settle(self, table: str) -> None:
        await self._flush(table)

    async def _flush_later(self, table: str) -> None:
        await asyncio.sleep(self._linger)
        self._buffers[table].timer = None
        try:
            await self._flush(table)
        except Exception:  # noqa: BLE001 - kept in `failure`, raised to the next shard that hands a window in
            pass

    async def _flush(self, table: str) -> None:
        """Write what the table's buffer holds as its next chunk (see the class docstring)."""
        if self.failure is not None:
            raise self.failure
        write = asyncio.ensure_future(self._write(table))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        await asyncio.shield(write)

    async def _write(self, table: str) -> None:
        buffer = self._buffers[table]
        async with buffer.lock:  # chunks of a table are written one at a time, in order
            if not (len(buffer.chunk) or buffer.positions) or self.failure is not None:
                return
            chunk, positions = buffer.chunk, buffer.positions
            buffer.chunk, buffer.positions = change_spool.ChunkColumns(), {}
            if buffer.timer is not None and buffer.timer is not asyncio.current_task():
                buffer.timer.cancel()
                buffer.timer = None
            if len(chunk):  # else only windows whose every record was refused (`admit`): positions alone
                await self._write_chunk(table, buffer, chunk)
        for shard, checkpoint in positions.items():
            self._checkpoints.update(table, shard, checkpoint)

    async def _write_chunk(self, table: str, buffer: _Buffer, chunk: change_spool.ChunkColumns) -> None:
        try:
            if buffer.next_chunk is None:
                existing = await asyncio.to_thread(change_spool.chunks, self._dir, table)
                buffer.next_chunk = existing[-1].number + 1 if existing else 0
            size = await asyncio.to_thread(change_spool.write_chunk, self._dir, table, buffer.next_chunk,
                                           chunk.batch())
        except BaseException as exc:
            self.failure = exc
            raise
        buffer.next_chunk += 1
        figures = self.figures[table]
        figures.chunks += 1
        figures.bytes += size

    async def close(self) -> None:
        """Write what is buffered (also when the run is being cancelled), unless a write failed."""
        for buffer in self._buffers.values():
            if buffer.timer is not None:
                buffer.timer.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)
        if self.failure is None:
            for table in list(self._buffers):
                await self._flush(table)


class CaptureCoverage:
    """What a capture may lose without losing a change (`change_spool.Coverage`), and the loud
    error for what it may not: a shard it needed that left the stream unread. `retention`: per
    table, how long its stream keeps a record, in seconds."""

    def __init__(self, checkpoint_dir: str, retention: Mapping[str, float]):
        self._dir, self._retention = checkpoint_dir, dict(retention)
        self._coverage: dict[str, change_spool.Coverage] = {}

    async def listed(self, table: str, shards: list[dict], done: Mapping[str, ShardCheckpoint]) -> None:
        coverage = await asyncio.to_thread(change_spool.coverage_of, self._dir, table)
        listed = {shard["ShardId"] for shard in shards}
        if coverage.first_listing is None:  # nothing read yet: the capture begins now
            now = time.time()
            coverage = change_spool.Coverage(now, now - self._retention[table], sorted(listed))
            await asyncio.to_thread(change_spool.record_coverage, self._dir, table, coverage)
        self._coverage[table] = coverage
        first = set(coverage.first_listing)
        for shard in shards:  # a parent gone before the first listing held changes made before the capture
            for parent in parents_of(shard):
                if parent and parent not in listed and shard["ShardId"] not in first:
                    await self.check_parent(table, shard["ShardId"], parent, done)
        for shard in sorted(first - listed - set(done)):
            if not await self.forgive(table, shard):
                raise _lost_unread(table, shard)

    async def check_parent(self, table: str, shard_id: str, parent_id: str,
                           done: Mapping[str, ShardCheckpoint] | None = None) -> None:
        if parent_id in self._coverage[table].first_listing:
            return  # the first listing's shards are judged by themselves (`forgive`)
        if done is None:
            checkpoint = await asyncio.to_thread(stream_checkpoints.read_shard, change_spool.root(self._dir), table,
                                                 parent_id)
        else:
            checkpoint = done.get(parent_id)
        if checkpoint is None:
            raise _lost_unread(table, parent_id, f" (the parent of {shard_id})")

    async def forgive(self, table: str, shard_id: str) -> bool:
        coverage = self._coverage[table]
        now = time.time()
        if shard_id not in coverage.first_listing or now - coverage.began >= self._retention[table]:
            return False  # it may have held changes made after the capture began
        coverage.covered_since = max(coverage.covered_since, now - self._retention[table])
        await asyncio.to_thread(change_spool.record_coverage, self._dir, table, coverage)
        return True


def _lost_unread(table: str, shard_id: str, what: str = "") -> ChangesLost:
    return ChangesLost(f"{table}: shard {shard_id}{what} left the stream before the capture read it (the stream "
                       f"keeps a record 24 hours, a Kinesis data stream its retention period; was the capture stopped "
                       f"longer than that?): changes were lost; "
                       f"start over with `migrate --streams --restart` (or `capture --restart`)")


def idle_poll_seconds(settings: ReplicationSettings, retention: Mapping[str, float]) -> float:
    """How often the capture reads a quiet shard again: every `CAPTURE_IDLE_POLL_SECONDS`, not every
    second as live replication does. What it finds waits in the spool until the snapshot is
    copied anyway, and at the hand-over replication reads on from the capture's positions; but a
    thousand quiet shards read every second take most of a core of the launcher (measured: the
    capture's thread held the GIL eight times as long as the spool's apply beside it), which the
    snapshot and the apply need. At most `1 / READS_PER_RETENTION` of the shortest retention
    apart (the tests compress it to seconds), and never more often than `settings` says."""
    shortest = min(retention.values(), default=float("inf"))
    return max(settings.idle_poll_seconds, min(CAPTURE_IDLE_POLL_SECONDS, shortest / READS_PER_RETENTION))


@contextlib.asynccontextmanager
async def open_capture(settings: ReplicationSettings, retention: Mapping[str, float],
                       **sink_options) -> AsyncIterator[Replicator]:
    """A worker whose shards go to the spool under `settings.checkpoint_dir` (no target needed);
    its positions are kept in the capture's own checkpoints (`change_spool.root`). `retention`:
    per table, how long its stream keeps a record, in seconds."""
    settings = dataclasses.replace(settings, idle_poll_seconds=idle_poll_seconds(settings, retention))
    async with contextlib.AsyncExitStack() as stack:
        sources = await stack.enter_async_context(open_change_sources(settings.source, settings.read_attempts))
        capture_dir = change_spool.root(settings.checkpoint_dir)
        checkpoints = await checkpoint_writer(stack, capture_dir)
        sink = SpoolSink(settings.checkpoint_dir, checkpoints, **sink_options)
        stack.push_async_callback(sink.close)  # before the checkpoints close: its positions follow its chunks
        io = ShardIO(sources, sink, checkpoints, RecordBudget(settings.held_records), capture_dir,
                     settings.read_attempts, collections.defaultdict(TableStats),
                     CaptureCoverage(settings.checkpoint_dir, retention))
        yield Replicator(settings, io)


# --- applying the spool --------------------------------------------------------------------

@dataclass
class ApplyFigures:
    chunks: int = 0     # chunks applied by this process
    changes: int = 0    # records applied (a record captured twice counts once)
    dead_lettered: int = 0


@dataclass(eq=False)
class _Slice:
    """Up to a shared write's worth of a chunk's requests, handed to the `WindowWriter`."""

    chunk: change_spool.Chunk
    write: asyncio.Task | None                  # its writes' failures; None: nothing to write
    refused: list[FailedWrite]
    done: change_spool.Applied | None = None    # on a chunk's last slice: the mark once it is acknowledged
    changes: int = 0                            # on a chunk's last slice: the chunk's records applied


class SpoolApplier:
    """Applies tables' spools to the target in order, without a pause between chunks (see the
    module docstring)."""

    def __init__(self, settings: ReplicationSettings, writer: TargetWriter, source_items):
        self._settings, self._source_items = settings, source_items
        batches = settings.writer_settings
        self._slice_rows = batches.max_items_per_batch * batches.concurrency
        self.windows = WindowWriter(writer, max_items_per_batch=batches.max_items_per_batch,
                                    max_requests=self._slice_rows)
        self.figures: dict[str, ApplyFigures] = collections.defaultdict(ApplyFigures)

    async def apply_available(self, table: str) -> int:
        """Apply every chunk of the table's spool not applied yet; the number applied.
        Raises `WritesFailed` (after dead-lettering) when writes failed: that chunk and the
        ones after it stay unapplied."""
        pair = self._settings.pairs[table]
        checkpoint_dir = self._settings.checkpoint_dir
        mark = await asyncio.to_thread(change_spool.applied, checkpoint_dir, table)
        pending = await asyncio.to_thread(change_spool.chunks, checkpoint_dir, table, mark.chunk)
        planned = dataclasses.replace(mark, positions=dict(mark.positions))  # as if all handed on were acknowledged
        in_flight: collections.deque[_Slice] = collections.deque()
        letters: list[FailedWrite] = []
        reading = asyncio.create_task(asyncio.to_thread(change_spool.read_chunk, pending[0].path)) if pending else None
        try:
            for i, chunk in enumerate(pending):
                batch = await reading
                reading = asyncio.create_task(asyncio.to_thread(change_spool.read_chunk, pending[i + 1].path)) \
                    if i + 1 < len(pending) else None
                rows, changes = await asyncio.to_thread(_rows_to_apply, batch, planned)
                planned.chunk = chunk.number
                slices = [rows[at:at + self._slice_rows] for at in range(0, len(rows), self._slice_rows)] or [[]]
                for n, picked in enumerate(slices):
                    handed = await self._hand_on(pair, chunk, batch, picked)
                    if n == len(slices) - 1:
                        handed.done = dataclasses.replace(planned, positions=dict(planned.positions))
                        handed.changes = changes
                    in_flight.append(handed)
                    while len(in_flight) > SLICES_AHEAD:
                        await self._settle(pair, in_flight.popleft(), letters)
            while in_flight:
                await self._settle(pair, in_flight.popleft(), letters)
        finally:
            left = [task for task in (reading, *(s.write for s in in_flight)) if task is not None]
            for task in left:
                task.cancel()  # a write handed on goes on in the `WindowWriter` (shielded); it is not marked
            await asyncio.gather(*left, return_exceptions=True)
        return len(pending)

    async def _hand_on(self, pair: TablePair, chunk: change_spool.Chunk, batch, rows: list[int]) -> _Slice:
        """Decode `rows` of a chunk and hand their requests to the writer, not waiting for them."""
        if not rows:
            return _Slice(chunk, None, [])
        spooled = await asyncio.to_thread(change_spool.batch_to_records, batch, rows)
        requests, refused = await window_requests(pair, [s.record for s in spooled], self._source_items,
                                                  self._settings.read_attempts)
        return _Slice(chunk, asyncio.create_task(self.windows.write(pair, requests)), refused)

    async def _settle(self, pair: TablePair, done: _Slice, letters: list[FailedWrite]) -> None:
        """Wait for a slice's writes; after a chunk's last one, dead-letter what failed and mark the
        chunk applied, or raise `WritesFailed` for failures a retry may cure."""
        letters += done.refused + (await done.write if done.write is not None else [])
        if done.done is None:
            return
        figures = self.figures[pair.source]
        if letters:
            paths = write_dead_letters(self._settings.dead_letter_dir, letters, name=f"spool-{done.chunk.number}")
            figures.dead_lettered += len(letters)
            failures = [failure for failure in letters if not (failure.permanent or failure.source_naming)]
            letters.clear()
            if failures:
                raise WritesFailed(
                    f"{pair.source}: {len(failures)} captured changes could not be written after "
                    f"{self._settings.writer_settings.max_attempts} attempts (in {', '.join(paths)}); applying the "
                    f"spool stopped before them and resumes there on the next run")
        await asyncio.to_thread(change_spool.mark_applied, self._settings.checkpoint_dir, pair.source, done.done)
        figures.chunks += 1
        figures.changes += done.changes


def _rows_to_apply(batch, planned: change_spool.Applied) -> tuple[list[int], int]:
    """The rows of a chunk to write, in order, and how many of its records are new: the new ones
    (a record captured twice is applied once), only the last of each key (the chunk is one
    window; two records of a key whose keys text differs are both kept, in order, which is
    still right). Moves `planned`'s positions past them."""
    shards, sequences, keys = change_spool.positions_and_keys(batch)
    last: dict[str, int] = {}    # keys text -> its last new row
    moved: dict[str, str] = {}   # shard -> its last new record
    changes = 0
    for row, (shard, sequence) in enumerate(zip(shards, sequences)):
        if planned.is_new(shard, sequence):
            last[keys[row]] = row
            moved[shard] = sequence
            changes += 1
    planned.positions.update(moved)
    return sorted(last.values()), changes


@contextlib.asynccontextmanager
async def open_spool_applier(settings: ReplicationSettings) -> AsyncIterator[SpoolApplier]:
    async with source_client(settings.source) as source_items, \
            open_writer(settings.target, settings.writer_settings) as writer:
        applier = SpoolApplier(settings, writer, source_items)
        try:
            yield applier
        finally:
            await applier.windows.close()
