"""Capturing the streams while the snapshot is copied, and handing the spool over to replication.

`migrate --streams` starts a `Capture` before its first Scan (or first export file): the
launcher follows every shard on a thread of its own and writes what it reads to the
change spool (`transforms.streams.capture`), so no change made during a copy longer
than the stream's 24 hours is lost. `capture` runs the same thing alone, started before
an export is requested or a copy begins. After the snapshot, `drain` applies the spool
while the capture goes on, stops the capture once the apply has caught up with it,
applies the rest and makes the capture's positions the replication checkpoints; live
replication then continues from there on any runner.

The capture always runs in the launcher, whatever the runner: it is one event loop
polling shards (the same engine the local follower uses), and the snapshot's workers may
be far away. A lost change stops everything at whatever stage it is found, with exit 3.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Callable, Mapping, Sequence

from botocore.exceptions import ClientError

from pipeline.checks import schema
from pipeline.checks.config import RunConfig
from pipeline.checks.source_streams import Stream, kinesis_arns
from transforms.dynamo.endpoints import source_client
from transforms.dynamo.retry import error_code
from transforms.errors import MigrateError
from transforms.state import bulk_checkpoints, change_spool, stream_checkpoints
from transforms.streams.capture import SpoolFigures, open_capture, open_spool_applier
from transforms.streams.engine import ReplicationSettings, TableStatus
from transforms.streams.sample import ChangeSample, sample_changes
from transforms.table_pair import TablePair

log = logging.getLogger(__name__)

LEASE_RENEW_SECONDS = 10.0
WATCH_SECONDS = 0.5


def prepare(settings: ReplicationSettings, streams: Sequence[Stream], *, restart: bool) -> None:
    """Claim each table's capture (one capture at a time) and tie it to the table's stream;
    `restart` drops an earlier one first."""
    checkpoint_dir = settings.checkpoint_dir
    for stream in streams:
        if restart:
            change_spool.forget(checkpoint_dir, stream.table)
        change_spool.take_lease(checkpoint_dir, stream.table)
        change_spool.start(checkpoint_dir, stream.table, stream.arn, stream.retention_hours * 3600)
        stream_checkpoints.clear_stop(change_spool.root(checkpoint_dir), stream.table)


def unplanned_pairs(config: RunConfig) -> dict[str, TablePair]:
    """The tables of a capture that has not described them (`capture` needs no target): known by
    name alone, which is all a capture uses (it reads keys and images, it does not map them)."""
    return {spec.source: TablePair(spec.source, spec.target, ()) for spec in config.tables}


def check_not_replicating(config: RunConfig, tables: Sequence[str]) -> None:
    """A capture is for before a snapshot: refuse (exit 2) a table replication already follows."""
    for table in tables:
        applied = stream_checkpoints.applied_changes(config.checkpoint_dir, table)
        if applied is not None:
            raise MigrateError(f"{table}: replication already follows its stream ({applied:,} changes applied): a "
                               f"capture is for before a snapshot; use `alternator-migrate replicate`, or start over "
                               f"with `migrate --streams --restart`")


def covered_since(config: RunConfig, tables: Sequence[str], retention_hours: Mapping[str, float], *,
                  restart: bool) -> dict[str, float]:
    """Per table, the time since which its capture holds every change: an earlier capture's
    (kept unless `restart`), or a new one's, which starts at each shard's oldest record and so
    holds what the stream keeps (`retention_hours`, per table) before now."""
    now = time.time()
    earlier = {table: None if restart else change_spool.coverage_of(config.checkpoint_dir, table) for table in tables}
    return {table: coverage.covered_since if coverage else now - retention_hours[table] * 3600
            for table, coverage in earlier.items()}


def pending(config: RunConfig, streams: Sequence[Stream]) -> list[Stream]:
    """The streams whose capture has not been handed over to replication yet."""
    return [s for s in streams if change_spool.has_capture(config.checkpoint_dir, s.table)]


def check_snapshot_copied(config: RunConfig, streams: Sequence[Stream]) -> None:
    """A spool is applied only over a snapshot: refuse (exit 2) to replicate a captured table
    whose snapshot is not finished."""
    for stream in streams:
        progress = bulk_checkpoints.progress(config.checkpoint_dir, stream.table)
        if progress is None or not progress.finished:
            raise MigrateError(
                f"{stream.table}: its changes are being captured, but its snapshot is not copied yet; run "
                f"`alternator-migrate migrate --streams` (with --resume if a copy was interrupted): it copies the "
                f"snapshot, then applies the captured changes")


class Capture:
    """The streams captured into the spool on a thread and event loop of its own, until `stop`."""

    def __init__(self, streams: Sequence[Stream], settings: ReplicationSettings):
        self.streams, self._settings = list(streams), settings
        self._thread = threading.Thread(target=self._main, name="capture", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._engine = None
        self._sink = None
        self.failure: BaseException | None = None
        self.on_failure: Callable[[BaseException], None] | None = None  # called on the capture's thread

    def start(self) -> "Capture":
        """Return once every stream is listed and its shards are being read; the capture's
        error if it could not start."""
        self._thread.start()
        self._ready.wait()
        if self.failure is not None:
            self._thread.join()
            raise self.failure
        return self

    def stop(self) -> None:
        """Stop following; what was read is in the spool when this returns. Raises the
        capture's failure (lost changes: exit 3), if it had one."""
        if self._thread.is_alive() and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        if self.failure is not None:
            raise self.failure

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, less if the capture stops meanwhile."""
        self._thread.join(seconds)

    def statuses(self) -> dict[str, tuple[TableStatus, SpoolFigures]]:
        """Per table, the capture's figures now (changes captured, lag, shards) and the spool written."""
        if self._loop is None or not self._thread.is_alive() or self._engine is None:
            return {}

        async def read() -> dict:
            return {s.table: (self._engine.status(s.table), self._sink.figures[s.table]) for s in self.streams}

        try:
            return asyncio.run_coroutine_threadsafe(read(), self._loop).result(timeout=5)
        except Exception:  # noqa: BLE001 - figures are best effort while the capture stops
            return {}

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - handed to the launcher's thread
            self.failure = self.failure or exc
            log.debug("the capture stopped", exc_info=True)
            if self.on_failure is not None:
                self.on_failure(exc)
        finally:
            self._ready.set()
            for stream in self.streams:
                try:
                    change_spool.release_lease(self._settings.checkpoint_dir, stream.table)
                except MigrateError:
                    log.debug("could not release the capture's lease of %s", stream.table, exc_info=True)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        retention = {stream.table: stream.retention_hours * 3600 for stream in self.streams}
        async with open_capture(self._settings, retention) as replicator:
            engine = self._engine = replicator.engine()
            self._sink = replicator.io.sink
            for stream in self.streams:
                await engine.add_stream(stream.table, stream.arn)
            running = asyncio.create_task(engine.run(follow=True))
            self._ready.set()
            renewed = time.monotonic()
            try:
                while not running.done() and not self._stop.is_set() and self._sink.failure is None:
                    await asyncio.wait({running, asyncio.create_task(self._stop.wait())}, timeout=WATCH_SECONDS,
                                       return_when=asyncio.FIRST_COMPLETED)
                    if time.monotonic() - renewed >= LEASE_RENEW_SECONDS:
                        renewed = time.monotonic()
                        for stream in self.streams:
                            await asyncio.to_thread(change_spool.take_lease, self._settings.checkpoint_dir,
                                                    stream.table)
            finally:
                engine.stop()
                await running
            if engine.failure is not None:
                raise engine.failure
            if self._sink.failure is not None:
                raise self._sink.failure


def start(streams: Sequence[Stream], settings: ReplicationSettings, *, restart: bool = False) -> Capture:
    """Claim the tables' captures and start capturing."""
    prepare(settings, streams, restart=restart)
    return Capture(streams, settings).start()


# --- after the snapshot -------------------------------------------------------------------------

def drain(settings: ReplicationSettings, streams: Sequence[Stream], capture: Capture,
          echo: Callable[[str], None] = print) -> None:
    """Apply the spool while `capture` goes on, stop it once the apply caught up, apply the rest,
    and hand the capture's positions over to replication. Raises the capture's failure (exit 3
    for lost changes) or `WritesFailed` (exit 1): the spool stays, the next run continues it."""
    started = time.monotonic()
    try:
        figures = asyncio.run(_drain(settings, streams, capture, echo))
    finally:
        capture.stop()  # a no-op when `_drain` stopped it; raises its failure either way
    for stream in streams:
        change_spool.hand_over(settings.checkpoint_dir, stream.table, stream.arn)
    seconds = time.monotonic() - started
    changes = sum(f.changes for f in figures.values())
    echo(f"captured changes applied: {changes:,} in {seconds:.1f} s ({changes / max(seconds, 1e-3):,.0f}/s); "
         f"replicating from where the capture got to")


async def _drain(settings: ReplicationSettings, streams: Sequence[Stream], capture: Capture,
                 echo: Callable[[str], None]):
    async with open_spool_applier(settings) as applier:
        async def apply_all() -> list[int]:
            return await asyncio.gather(*(applier.apply_available(s.table) for s in streams))

        shown = time.monotonic()
        while capture.failure is None and max(await apply_all(), default=0) > 1:  # still more than a chunk behind
            if time.monotonic() - shown >= 5:
                shown = time.monotonic()
                echo(f"applying captured changes: {sum(f.changes for f in applier.figures.values()):,} so far")
        await asyncio.to_thread(capture.stop)
        await apply_all()
        return applier.figures


def follow(capture: Capture, echo: Callable[[str], None], report_seconds: float = 5.0) -> None:
    """The `capture` command: capture until interrupted (Ctrl-C) or failed, a status line every
    `report_seconds`; the capture is stopped (its buffer written) however this ends."""
    started, shown = time.monotonic(), {}
    try:
        while capture.running:
            capture.wait(report_seconds)
            statuses, now = capture.statuses(), time.monotonic()
            if statuses:
                echo(f"[{now - started:.0f} s] " + " | ".join(
                    _capture_line(table, status, spool, status.applied - shown.get(table, 0), report_seconds)
                    for table, (status, spool) in statuses.items()))
                shown = {table: status.applied for table, (status, _) in statuses.items()}
    finally:
        capture.stop()


def _capture_line(table: str, status: TableStatus, spool: SpoolFigures, new: int, seconds: float) -> str:
    lag = f"lag {status.lag:.1f} s" if status.lag is not None else "lag unknown"
    return (f"{table}: {status.applied:,} changes captured ({new / seconds:,.0f}/s), {spool.bytes / 2**20:,.1f} MiB "
            f"spooled in {spool.chunks:,} chunks, {lag}, {status.open_shards:,} open shards")


def sample_streams(config: RunConfig, tables: Sequence[str], seconds: float
                   ) -> dict[str, ChangeSample | str | None]:
    """Per table, its changes sampled for `seconds` from its stream (or the Kinesis data stream it
    names): None when the stream is off, the reason when it could not be sampled (no permission
    to read it: `plan` goes on)."""
    async def sample(table: str, arn: str) -> ChangeSample | str:
        try:
            return await sample_changes(config.source, table, arn, seconds)
        except ClientError as exc:
            return f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}"

    async def run() -> dict[str, ChangeSample | str | None]:
        async with source_client(config.source) as source:
            descriptions = [await schema.describe(source, table) for table in tables]
        arns = {table: (d or {}).get("LatestStreamArn") if ((d or {}).get("StreamSpecification") or {}).get(
            "StreamEnabled") else None for table, d in zip(tables, descriptions)}
        arns.update((table, arn) for table, arn in kinesis_arns(config).items() if table in arns)
        streamed = [table for table, arn in arns.items() if arn]
        samples = await asyncio.gather(*(sample(table, arns[table]) for table in streamed))
        found = dict(zip(streamed, samples))
        return {table: found.get(table) for table in tables}

    return asyncio.run(run())


def spool_line(statuses: dict[str, tuple[TableStatus, SpoolFigures]], table: str) -> str:
    """What a progress line says of a table's capture: changes captured, spool size, lag."""
    if table not in statuses:
        return ""
    status, spool = statuses[table]
    lag = f"lag {status.lag:.1f} s" if status.lag is not None else "lag unknown"
    return f", {status.applied:,} changes captured ({spool.bytes / 2**20:,.1f} MiB spooled, {lag})"
