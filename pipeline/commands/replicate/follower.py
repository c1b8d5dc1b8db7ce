"""Local runner: the launcher is the follower.

One long-lived engine (`transforms.streams.engine`) keeps every shard's iterator and the
shard map for the whole run, with hundreds of shards in flight on one event loop; a Beam
pipeline per round would pay its start-up, a new iterator per shard and a full
DescribeStream every time, and the DirectRunner adds no parallelism that the event loop
does not already have. It serves every mode: one pass (apply what the streams hold now),
until caught up, and `--follow`. Every 5 s it prints per table the honest lag (see
`StreamEngine.status`), changes applied and per second, and open shards.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from pipeline.checks.config import RunConfig
from pipeline.checks.source_streams import Stream, replication_settings
from pipeline.checks.tables import TablePlan
from pipeline.commands.replicate.reporting import caught_up, publish, status_line, stop_code
from transforms.errors import ExitCode
from transforms.streams.engine import ReplicationSettings, StreamEngine, TableStatus, open_replicator

if TYPE_CHECKING:
    from pipeline.output.metrics_server import RunMetrics  # served only with --metrics-port

REPORT_SECONDS = 5.0   # a status line this often
# How often --until-caught-up looks at the lag: the cutover waits for its answer, and a look
# costs ~1.5 ms of CPU per 1,000 shards.
CHECK_SECONDS = 0.05
PUBLISH_SECONDS = 0.25  # how often the follower's figures are published otherwise (--metrics-port)


def follow_locally(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
                   until_caught_up: bool, max_lag: float, echo: Callable[[str], None] = print,
                   metrics: RunMetrics | None = None, **settings) -> ExitCode:
    """One pass, until caught up, or `follow` until interrupted, on one long-lived engine.
    `settings` override `ReplicationSettings` fields (tests: shorter periods)."""
    # The whole job's write rate: here one process is every worker.
    writer_settings = dataclasses.replace(config.writer_settings(),
                                          max_items_per_second=config.write.max_items_per_second)
    with _ctrl_c_cancels():
        return asyncio.run(_follow_locally(replication_settings(config, plans, writer_settings=writer_settings,
                                                                **settings), streams,
                                           follow=follow, until_caught_up=until_caught_up, max_lag=max_lag,
                                           echo=echo, config=config, metrics=metrics))


@contextlib.contextmanager
def _ctrl_c_cancels() -> Iterator[None]:
    """Let asyncio handle Ctrl-C: it cancels the follower's task at its next await (the
    engine stops, acknowledged windows are checkpointed) and then raises KeyboardInterrupt,
    instead of a KeyboardInterrupt thrown into whatever code runs at that moment. asyncio
    does so only while Python's default SIGINT handler is in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def _follow_locally(settings: ReplicationSettings, streams: Sequence[Stream], *, follow: bool,
                          until_caught_up: bool, max_lag: float, echo: Callable[[str], None],
                          config: RunConfig, metrics: RunMetrics | None) -> ExitCode:
    started = time.monotonic()
    async with open_replicator(settings) as replicator:
        engine = replicator.engine()
        for stream in streams:
            await engine.add_stream(stream.table, stream.arn)
        running = asyncio.create_task(engine.run(follow=follow or until_caught_up))
        report = _Reporter(engine, [s.table for s in streams], started, echo)
        try:
            while not running.done():
                await asyncio.wait({running}, timeout=CHECK_SECONDS if until_caught_up else PUBLISH_SECONDS)
                statuses = report.statuses()
                publish(metrics, statuses)
                if metrics is not None and engine.failure is not None:
                    metrics.fail(str(engine.failure))
                if until_caught_up and not running.done() and caught_up(statuses, max_lag):
                    engine.stop()
                    await running
                    report.show()
                    if engine.failure is None:
                        echo(f"caught up: every table's lag is under {max_lag:g} s and nothing is pending; "
                             f"safe to cut over")
                    break
                report.show_every(REPORT_SECONDS)
            else:
                running.result()  # an unexpected error of the engine itself
                report.show()
        finally:
            if not running.done():  # interrupted: stop the engine; it checkpoints what was acknowledged
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            publish(metrics, report.statuses())
    return stop_code(config, streams, echo) or ExitCode.OK


class _Reporter:
    """Status lines: per table the honest lag, changes applied and their rate since the last line."""

    def __init__(self, engine: StreamEngine, tables: list[str], started: float, echo: Callable[[str], None]):
        self._engine, self._tables, self._started, self._echo = engine, tables, started, echo
        self._shown_at = started
        self._shown_applied = {table: 0 for table in tables}

    def statuses(self) -> dict[str, TableStatus]:
        return {table: self._engine.status(table) for table in self._tables}

    def show_every(self, seconds: float) -> None:
        if time.monotonic() - self._shown_at >= seconds:
            self.show()

    def show(self) -> None:
        now = time.monotonic()
        statuses = self.statuses()
        rates = {table: (status.applied - self._shown_applied[table]) / max(now - self._shown_at, 1e-3)
                 for table, status in statuses.items()}
        self._echo(status_line(now - self._started, statuses, rates))
        self._shown_at, self._shown_applied = now, {table: s.applied for table, s in statuses.items()}
