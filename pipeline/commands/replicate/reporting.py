"""What replication tells, however it runs: a status line per table, the figures served for
`--metrics-port`, whether every table is caught up, and the exit code of the stop notes a
shard left (the local follower and the Beam jobs both end through `stop_code`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.checks.config import RunConfig
from pipeline.checks.source_streams import Stream
from pipeline.output.logs import RUN_LOG
from transforms.errors import ExitCode
from transforms.state import stream_checkpoints
from transforms.streams.engine import TableStatus

if TYPE_CHECKING:
    from pipeline.output.metrics_server import RunMetrics  # served only with --metrics-port


def stop_code(config: RunConfig, streams: Sequence[Stream], echo: Callable[[str], None]) -> ExitCode | None:
    """The exit code for the stop notes shards left (the most serious wins), or None. The
    traceback a note carries (an unexpected error on a worker) goes to the run's log file."""
    stops = [stop for s in streams if (stop := stream_checkpoints.read_stop(config.checkpoint_dir, s.table))]
    for stop in stops:
        echo(f"error: {stop}")
        see_the_log = RUN_LOG.record_worker_failure(str(stop), stop.details) if stop.details else None
        if see_the_log:
            echo(see_the_log)
    return max((stop.code for stop in stops), default=None)


def status_line(elapsed: float, statuses: dict[str, TableStatus], rates: dict[str, float]) -> str:
    """Per table the honest lag, changes applied and their rate, open shards (and what holds some back)."""
    def lag(status: TableStatus) -> str:
        if status.lag is not None:
            return f"lag {status.lag:.1f} s"
        return f"lag unknown ({status.unread:,} shards not read yet)" if status.unread \
            else "lag unknown (looking for new shards)"

    def table(name: str, status: TableStatus) -> str:
        waiting = f", {status.waiting:,} waiting for their parent" if status.waiting else ""
        throttled = f", {status.throttled:,} reads throttled by the stream" if status.throttled else ""
        refused = f", {status.refused:,} late changes skipped (older than one applied)" if status.refused else ""
        unconfirmed = f", {status.unconfirmed:,} not read to their end yet" if status.unconfirmed else ""
        return (f"{name}: {lag(status)}, {status.applied:,} changes ({rates[name]:,.0f}/s), "
                f"{status.open_shards:,} open shard{'s' if status.open_shards != 1 else ''}{waiting}{unconfirmed}"
                f"{throttled}{refused}")

    return f"[{elapsed:.0f} s] " + " | ".join(table(name, status) for name, status in statuses.items())


def publish(metrics: RunMetrics | None, statuses: dict[str, TableStatus]) -> None:
    """The tables' replication figures, for `--metrics-port`."""
    if metrics is None:
        return
    for table, status in statuses.items():
        metrics.set(table, changes_applied=status.applied, replication_lag_seconds=status.lag,
                    open_shards=status.open_shards, write_retries=status.write_retries,
                    items_dead_lettered=status.dead_lettered)


def caught_up(statuses: dict[str, TableStatus], max_lag: float) -> bool:
    """Every table under `max_lag` with nothing pending (no shard waiting or unconfirmed)."""
    return all(s.lag is not None and s.lag < max_lag and not s.waiting and not s.unconfirmed
               for s in statuses.values())
