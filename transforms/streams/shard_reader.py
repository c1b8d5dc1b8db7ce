"""Apply one shard of a table's stream to the target, window by window, in order, reading ahead.

For a shard: get an iterator (AFTER the last sequence number read or checkpointed, or
TRIM_HORIZON), then repeat: GetRecords (one window of up to 1,000 records), turn the
window into target writes (`windows.window_requests`), hand it to the shared
`WindowWriter`, and once the target acknowledged it, checkpoint its last sequence
number. The next page is fetched while a window is being written, but a window is
handed in only after the one before it was acknowledged, so a key's changes are
applied in order. The stream is a DynamoDB stream or a Kinesis data stream
(`sources.ChangeSources`); for the latter a window is first cut to the records not older
than a change of their key handed on before (`admit`).

Reads respect the streams' limits (the same for both): at most one GetRecords every 0.2 s
per shard (5 a second), an idle shard (at its end) polled once a second, and a throttled
read (LimitExceededException; Kinesis: ProvisionedThroughputExceededException) retried
with backoff, never given up on. What a shard holds in memory counts against a
`RecordBudget` shared by every shard of the worker.

A bounded run stops at the shard's current end (an empty page; for Kinesis, an empty page
with MillisBehindLatest 0) or its close (no next
iterator: the shard is finished, and its checkpoint says so before any child starts);
a following run goes on polling until its shard closes or the run is stopped. Each
read that reaches the end, once everything before it is applied, stamps the shard's
`caught_up_at`; with the creation time of the last applied change it bounds the
shard's lag (see `StreamEngine.status`).
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, Protocol, TypeVar

from transforms.dynamo.retry import call_with_retry, error_code
from transforms.errors import ChangesLost, MigrateError, WritesFailed
from transforms.state.dead_letters import write_dead_letters
from transforms.state.stream_checkpoints import CheckpointWriter, ShardCheckpoint
from transforms.streams.shards import ShardTask
from transforms.streams.sources import ChangeSource
from transforms.streams.windows import WindowWriter, window_requests
from transforms.table_pair import TablePair

T = TypeVar("T")

WINDOW_RECORDS = 1000
# DynamoDB Streams and Kinesis serve about 5 GetRecords calls per second per shard.
MIN_SECONDS_BETWEEN_READS = 0.2
IDLE_POLL_SECONDS = 1.0
# A read the stream refused for its rate: retried for as long as it takes (DynamoDB Streams, Kinesis).
THROTTLED_READ = frozenset({"LimitExceededException", "ProvisionedThroughputExceededException"})


@dataclass(eq=False)
class ShardState:
    """What a run knows of one shard; the next run of the same shard may continue from it."""

    task: ShardTask
    checkpoint: ShardCheckpoint
    iterator: str | None = None
    read_after: str | None = None      # the last sequence number read (may be ahead of the checkpoint)
    next_read_at: float = 0.0          # monotonic time before which the shard is not read again
    caught_up_at: float | None = None  # wall time a read found the shard's end, with all before it applied
    closed: bool = False               # read to its close and fully applied (its children may start)
    recorded: bool = True              # it has a checkpoint file (a shard read once must have one)


@dataclass
class TableStats:
    applied: int = 0     # changes applied
    throttled: int = 0   # GetRecords calls the stream refused for its rate
    dead_lettered: int = 0  # changes written to dead-letter files
    refused: int = 0     # records older than a change of their key handed on before (Kinesis)


class RecordBudget:
    """Records a worker may hold: read and not yet acknowledged, plus what reads in flight
    may return. Waiters are served first come, first served, so no shard starves.

    A waiter can be cancelled (every shard task is, at a pass's end) after `give` granted it
    but before its task ran, or before it was granted while budget comes back: a grant is
    handed back, and a cancelled waiter is never granted, so nothing is lost or leaked.
    """

    def __init__(self, capacity: int):
        self._free = capacity
        self._waiters: collections.OrderedDict[asyncio.Future, int] = collections.OrderedDict()  # arrival order

    async def take(self, count: int) -> None:
        if not self._waiters and self._free >= count:
            self._free -= count
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[waiter] = count
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted just as we were cancelled
                self.give(count)
            else:
                waiter.cancel()
                self._waiters.pop(waiter, None)  # `_serve` may have dropped it already
                self._serve()  # the ones behind it may fit now
            raise

    def give(self, count: int) -> None:
        self._free += count
        self._serve()

    def _serve(self) -> None:
        while self._waiters:
            waiter, count = next(iter(self._waiters.items()))
            if waiter.cancelled():  # its task has not run since: it leaves the queue with nothing
                self._waiters.popitem(last=False)
                continue
            if self._free < count:
                return
            self._waiters.popitem(last=False)
            self._free -= count
            waiter.set_result(None)


class ChangeCoverage(Protocol):
    """Which losses a capture can take: records of a shard it never read, trimmed away, held only
    changes made before it began, which the snapshot holds (see `state.change_spool.Coverage`)."""

    async def listed(self, table: str, shards: list[dict], done: Mapping[str, ShardCheckpoint]) -> None:
        """A full listing of the table's shards (`done`: their checkpoints); `ChangesLost` if a
        shard the capture needed left the stream unread."""

    async def check_parent(self, table: str, shard_id: str, parent_id: str) -> None:
        """A shard found while running whose parent is not known: `ChangesLost` if that parent
        was never read (it came and went between two listings)."""

    async def forgive(self, table: str, shard_id: str) -> bool:
        """Whether the records trimmed from this never-read shard were all made before the capture
        began (then it covers a little less before its start), else False: a loss."""


class ChangeSink(Protocol):
    """Where a shard's windows go: the target (`TargetSink`) or, while the snapshot is being
    copied, the change spool (`capture.SpoolSink`)."""

    retries: Mapping[str, int]  # write requests retried, by source table

    async def take(self, task: ShardTask, table: TablePair, records: list[dict],
                   checkpoint: ShardCheckpoint) -> None:
        """Accept a window (in the shard's order); the shard's checkpoint moves to `checkpoint`
        once the window is durable."""

    async def settle(self, table: str) -> None:
        """Return once everything taken for the table is durable (before a closed shard is finished)."""


@dataclass
class ShardIO:
    """What every shard of a worker shares: the change sources, where windows go, checkpoints
    (of the target's progress, or of the capture's), the budget, the figures."""

    source: ChangeSource
    sink: ChangeSink
    checkpoints: CheckpointWriter
    budget: RecordBudget
    checkpoint_dir: str
    read_attempts: int
    stats: dict[str, TableStats]
    coverage: ChangeCoverage | None = None  # a capture's; replication forgives no trimmed record


class ShardReader:
    """Runs shards (see the module docstring); one per worker, shared by all its shards."""

    def __init__(self, io: ShardIO, pairs: Mapping[str, TablePair], idle_poll_seconds: float = IDLE_POLL_SECONDS):
        self._io = io
        self._pairs = dict(pairs)
        self._idle = idle_poll_seconds

    async def run(self, shard: ShardState, *, follow: bool) -> None:
        """Apply the shard up to its current end (`follow`: until it closes); raises a
        `MigrateError` when it cannot go on (lost changes, writes that failed)."""
        table = self._pairs[shard.task.table]
        applying: asyncio.Task | None = None
        try:
            while True:
                await asyncio.sleep(max(0.0, shard.next_read_at - time.monotonic()))
                sent_at, sent = time.time(), time.monotonic()
                records, shard.iterator, at_end = await self._read(shard)
                shard.next_read_at = sent + (self._idle if at_end else MIN_SECONDS_BETWEEN_READS)
                if applying is not None:
                    await applying  # the window before this one is acknowledged (or its error raised)
                    applying = None
                if records or shard.iterator is None:
                    applying = asyncio.create_task(self._apply(shard, table, records, sent_at, shard.iterator is None))
                    applying.add_done_callback(lambda _, held=len(records): self._io.budget.give(held))
                elif at_end:  # the end of an open shard, everything read before it applied
                    shard.caught_up_at = sent_at
                if shard.iterator is None or (at_end and not follow):
                    if applying is not None:
                        await applying
                    return
        finally:
            if applying is not None and not applying.done():
                applying.cancel()
                await asyncio.gather(applying, return_exceptions=True)

    async def _retrying(self, call: Callable[[], Awaitable[T]],
                        on_retry: Callable[[BaseException], None] | None = None) -> T:
        """`call_with_retry` for Streams reads: waits start at the shard's minimum between reads."""
        return await call_with_retry(call, max_attempts=self._io.read_attempts, on_retry=on_retry,
                                     initial_wait=MIN_SECONDS_BETWEEN_READS)

    async def _iterator(self, shard: ShardState) -> str:
        task, after = shard.task, shard.read_after or shard.checkpoint.sequence_number
        try:
            return await self._retrying(lambda: self._io.source.shard_iterator(task, after))
        except Exception as exc:  # noqa: BLE001 - errors arrive as botocore ClientErrors
            raise _lost(task, after, exc) or exc

    async def _read(self, shard: ShardState) -> tuple[list[dict], str | None, bool]:
        """One page: (records, next iterator, whether it is the shard's current end); the
        budget holds room for the records."""
        stats = self._io.stats[shard.task.table]

        def count(exc: BaseException) -> None:
            if error_code(exc) in THROTTLED_READ:
                stats.throttled += 1

        await self._io.budget.take(WINDOW_RECORDS)
        renewals = 0
        try:
            if shard.iterator is None:  # within the budget: a thousand shards starting do not all ask at once
                try:
                    shard.iterator = await self._iterator(shard)
                except ChangesLost:
                    if not await self._forgiven(shard):
                        raise
                    self._io.budget.give(WINDOW_RECORDS)
                    return [], None, True  # gone whole, holding only changes the snapshot has: finished
            while True:
                try:
                    page = await self._retrying(
                        lambda: self._io.source.get_records(shard.task, shard.iterator, WINDOW_RECORDS), on_retry=count)
                except Exception as exc:  # noqa: BLE001 - errors arrive as botocore ClientErrors
                    code = error_code(exc)
                    if code in THROTTLED_READ:  # throttled every time: keep backing off, never give up
                        count(exc)
                        continue
                    if code == "ExpiredIteratorException" and renewals < self._io.read_attempts:
                        renewals += 1
                        shard.iterator = await self._iterator(shard)
                        continue
                    if code == "TrimmedDataAccessException" and await self._forgiven(shard):
                        shard.iterator = await self._iterator(shard)  # from its oldest record left
                        continue
                    raise _lost(shard.task, shard.read_after or shard.checkpoint.sequence_number, exc) or exc
                break
        except BaseException:
            self._io.budget.give(WINDOW_RECORDS)
            raise
        records = page["Records"]
        self._io.budget.give(WINDOW_RECORDS - len(records))
        if not shard.recorded:  # read once: if it leaves the stream unfinished from now on, that is a loss
            shard.recorded = True
            self._io.checkpoints.update(shard.task.table, shard.task.shard_id, shard.checkpoint)
        if records:
            shard.read_after = records[-1]["dynamodb"]["SequenceNumber"]
        return records, page.get("NextShardIterator"), not records and not page.get("MillisBehindLatest")

    async def _forgiven(self, shard: ShardState) -> bool:
        """Whether records trimmed from a shard never read cost no change (see `ChangeCoverage`)."""
        never_read = not shard.recorded and shard.read_after is None and shard.checkpoint.sequence_number is None
        return never_read and self._io.coverage is not None and \
            await self._io.coverage.forgive(shard.task.table, shard.task.shard_id)

    async def _apply(self, shard: ShardState, table: TablePair, records: list[dict], sent_at: float,
                     closed: bool) -> None:
        """Hand one window to the sink (the target, or the spool while capturing); once it is
        taken, the shard's position moves past it (past refused records too); a closed shard
        is finished durably. Nothing is awaited between `admit` and the sink's `take`, which
        queues the window before it first waits: windows reach the sink in the order admitted."""
        if records:
            last = records[-1]["dynamodb"]
            admitted = self._io.source.admit(shard.task, records)
            stats = self._io.stats[table.source]
            stats.refused += len(records) - len(admitted)
            checkpoint = ShardCheckpoint(last["SequenceNumber"], False, shard.checkpoint.applied + len(admitted),
                                         float(last["ApproximateCreationDateTime"]))
            await self._io.sink.take(shard.task, table, admitted, checkpoint)
            shard.checkpoint = checkpoint
            stats.applied += len(admitted)
        if closed:  # durable before any child of this shard may start
            await self._io.sink.settle(table.source)
            shard.checkpoint = dataclasses.replace(shard.checkpoint, finished=True)
            await self._io.checkpoints.write_now(table.source, shard.task.shard_id, shard.checkpoint)
            shard.closed = True
            shard.caught_up_at = sent_at


class TargetSink:
    """Applies windows to the target: puts and deletes through the shared `WindowWriter`;
    a window's checkpoint once the target acknowledged it."""

    def __init__(self, windows: WindowWriter, checkpoints: CheckpointWriter, stats: dict[str, TableStats], *,
                 source_items, dead_letter_dir: str, read_attempts: int, write_attempts: int):
        """`source_items`: a DynamoDB client of the source, for KEYS_ONLY/OLD_IMAGE streams."""
        self._windows, self._checkpoints, self._stats = windows, checkpoints, stats
        self._source_items, self._dead_letter_dir = source_items, dead_letter_dir
        self._read_attempts, self._write_attempts = read_attempts, write_attempts

    @property
    def retries(self) -> dict[str, int]:
        return self._windows.retries

    async def take(self, task: ShardTask, table: TablePair, records: list[dict], checkpoint: ShardCheckpoint) -> None:
        """Write one window; raise `WritesFailed` if any write failed (after dead-lettering it)."""
        requests, refused = await window_requests(table, records, self._source_items, self._read_attempts)
        failures = await self._windows.write(table, requests)
        if failures or refused:  # refused: renames cannot map them, a retry cannot either
            paths = write_dead_letters(self._dead_letter_dir, failures + refused,
                                       name=f"{task.shard_id}-{records[0]['dynamodb']['SequenceNumber']}")
            self._stats[table.source].dead_lettered += len(failures) + len(refused)
        failures = [failure for failure in failures if not failure.permanent]  # (too big: no retry helps)
        if failures:
            raise WritesFailed(f"{table.source}: {len(failures)} changes could not be written after "
                               f"{self._write_attempts} attempts (in {', '.join(paths)}); replication of "
                               f"this shard stopped before them and resumes there on the next run")
        self._checkpoints.update(table.source, task.shard_id, checkpoint)

    async def settle(self, table: str) -> None:
        """Nothing to wait for: a window is on the target once `take` returned."""


def _lost(task: ShardTask, after: str | None, exc: BaseException) -> MigrateError | None:
    """The loud error for changes the stream no longer holds, or None for any other error."""
    code = error_code(exc)
    if code == "TrimmedDataAccessException":
        return ChangesLost(f"{task.table}: shard {task.shard_id} no longer holds the changes after sequence number "
                           f"{after} (the stream keeps 24 hours): changes were lost; copy the table again with "
                           f"`migrate --streams --restart`")
    if code == "ResourceNotFoundException":
        return ChangesLost(f"{task.table}: shard {task.shard_id} was trimmed from the stream before it was fully "
                           f"applied: changes were lost; copy the table again with `migrate --streams --restart`")
    return None
