"""Replication from DynamoDB Streams (or Kinesis data streams): where it runs, and what the user sees of it.

On the local runner (the default) the launcher is the follower: one long-lived engine
(`transforms.streams.engine`) keeps every shard's iterator and the shard map for the
whole run, with hundreds of shards in flight on one event loop; a Beam pipeline per
round would pay its start-up, a new iterator per shard and a full DescribeStream every
time, and the DirectRunner adds no parallelism that the event loop does not already
have. It serves every mode: one pass (apply what the streams hold now), until caught
up, and `--follow`. Every 5 s it prints per table the honest lag (see
`StreamEngine.status`), changes applied and per second, and open shards.

Other runners run Beam pipelines on the same engine and checkpoints: a streaming
runner (`streaming: true`, e.g. Dataflow) with `--follow` runs one long-lived pipeline
(`FollowStreams`); a batch runner runs rounds of `ReplicateShards`, each applying every
unfinished shard (whole lineages together) up to its current end. A round's lag is at
most its duration, which is all a round can honestly claim.

A table that names a Kinesis data stream (`tables[].kinesis_stream_arn`) is followed there
instead of its DynamoDB stream, by the same engine, in the launcher only: the check that no
older change of a key lands over a newer one (`streams.change_order`) holds within one
process, so other runners are refused for it (exit 2) before anything is copied.

A shard that cannot go on (changes trimmed away, writes failing) leaves a stop note
under its table's checkpoints; the launcher ends with that note's exit code, whatever
ran the shard. Ctrl-C ends a run with what was acknowledged checkpointed; the caller
(the CLI) turns it into exit 130.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.commands import capture as capturing

from pipeline.checks import schema
from pipeline.checks.config import RunConfig
from pipeline.checks.launch import check_options, pipeline_options, run_pipeline
from pipeline.checks.tables import TablePlan, TableStepError, describe_error, pairs_by_source
from pipeline.output.logs import RUN_LOG
from transforms.dynamo.endpoints import kinesis_client, source_client, streams_client
from transforms.dynamo.retry import error_code
from transforms.errors import ExitCode, MigrateError
from transforms.state import stream_checkpoints
from transforms.state.dead_letters import count_dead_letters, run_folder
from transforms.state.storage import StorageOptions
from transforms.streams.engine import ReplicationSettings, StreamEngine, TableStatus, open_replicator
from transforms.streams.kinesis import retention_hours as kinesis_retention_hours
from transforms.streams.shards import ShardPlan, ShardTask, describe_shards, plan_shards
from transforms.table_pair import TablePair

if TYPE_CHECKING:
    from pipeline.output.metrics_server import RunMetrics  # served only with --metrics-port

log = logging.getLogger(__name__)

REPORT_SECONDS = 5.0   # a status line this often
# How often --until-caught-up looks at the lag: the cutover waits for its answer, and a look
# costs ~1.5 ms of CPU per 1,000 shards.
CHECK_SECONDS = 0.05
PUBLISH_SECONDS = 0.25  # how often the follower's figures are published otherwise (--metrics-port)


@dataclass(frozen=True)
class Stream:
    table: str
    arn: str                      # the table's DynamoDB stream, or the Kinesis data stream it names
    retention_hours: float = 24.0  # how long that stream keeps a record


# --- streams on, and which stream ---------------------------------------------------------

def _kinesis_arns(config: RunConfig) -> dict[str, str]:
    return {spec.source: spec.kinesis_stream_arn for spec in config.tables if spec.kinesis_stream_arn}


async def _kinesis_retentions(config: RunConfig, tables: Sequence[str]) -> dict[str, float]:
    """Per table that names a Kinesis data stream, its RetentionPeriodHours (DescribeStreamSummary).
    The first call to the stream: a refusal is told as a table's is, before anything is read (exit 2)."""
    arns = {table: arn for table, arn in _kinesis_arns(config).items() if table in tables}
    if not arns:
        return {}
    retentions = {}
    async with kinesis_client(config.source) as client:
        for table, arn in arns.items():
            try:
                retentions[table] = await kinesis_retention_hours(client, table, arn)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise describe_error(f"source Kinesis data stream {arn}", exc) from None
    return retentions


def retention_hours(config: RunConfig, tables: Sequence[str]) -> dict[str, float]:
    """Per table, how long the stream it is followed on keeps a record."""
    kinesis = asyncio.run(_kinesis_retentions(config, tables))
    return {table: kinesis.get(table, config.source.stream_retention_hours) for table in tables}


async def _ensure_streams(config: RunConfig, tables: Sequence[str], enable: bool) -> list[Stream]:
    streams, kinesis = [], await _kinesis_retentions(config, tables)
    async with source_client(config.source) as source:
        for table in tables:
            description = await schema.describe(source, table)
            if description is None:
                raise TableStepError(f"source table {table} does not exist at {config.source.describe()}")
            if table in kinesis:  # its changes are read from the Kinesis data stream it names
                streams.append(Stream(table, _kinesis_arns(config)[table], kinesis[table]))
                continue
            if schema.stream_arn(description) is None:
                if not enable:
                    raise _stream_off(table)
                await _enable_stream(source, table)
                description = await schema.wait_active(source, table)
                log.info("%s: stream enabled (NEW_AND_OLD_IMAGES)", table)
            streams.append(Stream(table, description["LatestStreamArn"], config.source.stream_retention_hours))
    return streams


def _stream_off(table: str) -> TableStepError:
    return TableStepError(f"source table {table} has no stream; enable it with NEW_AND_OLD_IMAGES (aws dynamodb "
                          f"update-table --table-name {table} --stream-specification "
                          f"StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES) or pass --enable-streams")


async def _enable_stream(source, table: str) -> None:
    """Turn the stream on; a table that cannot stream (an Alternator tablets table, ScyllaDB
    2025.4-2026.1) is the user's to re-create, said in one line with Alternator's reason."""
    try:
        await source.update_table(TableName=table, StreamSpecification=schema.NEW_AND_OLD_IMAGES)
    except ClientError as exc:
        reason = exc.response.get("Error", {}).get("Message", "")
        if error_code(exc) != "ValidationException" or "tablets" not in reason:
            raise
        raise TableStepError(f"cannot enable the stream of source table {table}: {reason}; a rollback needs "
                             f"Alternator tables created by a config with target.streams: true (see the "
                             f"user guide's rollback runbook, docs/guide.md)") from None


def ensure_streams(config: RunConfig, tables: Sequence[str], *, enable: bool) -> list[Stream]:
    """Each source table's stream (switched on first with `enable`; an error when it is off), or
    the Kinesis data stream it names (an error when that is missing)."""
    return asyncio.run(_ensure_streams(config, tables, enable))


def streams_of(config: RunConfig, plans: Sequence[TablePlan]) -> list[Stream]:
    """Each source table's stream as the table step described it (no DescribeTable again);
    an error when one is off. Tables followed on a Kinesis data stream are described here (its
    retention is the Kinesis stream's)."""
    if _kinesis_arns(config):
        return ensure_streams(config, [plan.spec.source for plan in plans], enable=False)
    streams = []
    for plan in plans:
        if plan.stream_arn is None:
            raise _stream_off(plan.spec.source)
        streams.append(Stream(plan.spec.source, plan.stream_arn))
    return streams


def check_runner(config: RunConfig, beam_args: Sequence[str] = ()) -> None:
    """Refuse (exit 2) a runner other than the local one for tables followed on a Kinesis data stream."""
    tables = sorted(_kinesis_arns(config))
    if tables and not check_options(config, beam_args).local:
        raise MigrateError(f"{tables[0]}: changes from a Kinesis data stream (tables[].kinesis_stream_arn) are "
                           f"applied by the launcher: run replication with the default local runner (its check "
                           f"that no older change lands over a newer one holds within one process)")


def bind_checkpoints(config: RunConfig, streams: Sequence[Stream], *, fresh: bool) -> None:
    """Tie checkpoints to the streams; `fresh` (a new snapshot) forgets earlier replication."""
    for stream in streams:
        if fresh:
            stream_checkpoints.forget(config.checkpoint_dir, stream.table)
        stream_checkpoints.bind_stream(config.checkpoint_dir, stream.table, stream.arn)
        stream_checkpoints.clear_stop(config.checkpoint_dir, stream.table)


# --- where it runs ----------------------------------------------------------------------

def replicate(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
              until_caught_up: bool, max_lag: float, beam_args: Sequence[str] = (),
              echo: Callable[[str], None] = print, metrics: RunMetrics | None = None,
              capture: capturing.Capture | None = None) -> ExitCode:
    """Replicate as the flags say; the exit code (OK caught up or done, INCOMPLETE some changes
    dead-lettered, CHANGES_LOST). Dead letters go to this run's own folder. KeyboardInterrupt
    (Ctrl-C) leaves consistent checkpoints behind. `metrics`: where the figures are served
    (`--metrics-port`): the local follower's as they change, a round's after it. `capture`:
    the capture of the tables whose snapshot was just copied (or is copied): its spool is
    applied first, then replication goes on from where it got to."""
    config = dataclasses.replace(config, dead_letter_dir=run_folder(config.dead_letter_dir))
    if metrics is not None:
        metrics.add_tables({plan.spec.source: plan.spec.target for plan in plans})
    if capture is not None:
        capturing.drain(replication_settings(config, plans), capture.streams, capture, echo)
    options = check_options(config, beam_args)
    if options.local:
        code = follow_locally(config, plans, streams, follow=follow, until_caught_up=until_caught_up,
                              max_lag=max_lag, echo=echo, metrics=metrics)
    elif follow and options.streaming:
        code = follow_streaming(config, plans, streams, beam_args, echo=echo)
    else:
        code = replicate_in_rounds(config, plans, streams, follow=follow, until_caught_up=until_caught_up,
                                   max_lag=max_lag, beam_args=beam_args, echo=echo, metrics=metrics)
    dead = sum(count_dead_letters(config.dead_letter_dir).values())
    if dead:
        echo(f"error: {dead} changes could not be applied; they are in {config.dead_letter_dir}")
        return max(code, ExitCode.INCOMPLETE)
    return code


def replication_settings(config: RunConfig, plans: Sequence[TablePlan], **overrides) -> ReplicationSettings:
    """The engine's settings from the config; `overrides` replace fields (tests: shorter periods)."""
    return settings_for(config, pairs_by_source(plans), **overrides)


def settings_for(config: RunConfig, pairs: Mapping[str, TablePair], **overrides) -> ReplicationSettings:
    """`replication_settings` for tables known by their pairs (source name -> TablePair)."""
    return dataclasses.replace(ReplicationSettings(
        config.source, config.target, dict(pairs), config.checkpoint_dir,
        config.dead_letter_dir, config.writer_settings(), config.scan.max_attempts), **overrides)


def _stop_code(config: RunConfig, streams: Sequence[Stream], echo: Callable[[str], None]) -> ExitCode | None:
    """The exit code for the stop notes shards left (the most serious wins), or None. The
    traceback a note carries (an unexpected error on a worker) goes to the run's log file."""
    stops = [stop for s in streams if (stop := stream_checkpoints.read_stop(config.checkpoint_dir, s.table))]
    for stop in stops:
        echo(f"error: {stop}")
        see_the_log = RUN_LOG.record_worker_failure(str(stop), stop.details) if stop.details else None
        if see_the_log:
            echo(see_the_log)
    return max((stop.code for stop in stops), default=None)


def _status_line(elapsed: float, statuses: dict[str, TableStatus], rates: dict[str, float]) -> str:
    def lag(status: TableStatus) -> str:
        if status.lag is not None:
            return f"lag {status.lag:.1f} s"
        return f"lag unknown ({status.unread:,} shards not read yet)" if status.unread \
            else "lag unknown (looking for new shards)"

    def table(name: str, status: TableStatus) -> str:
        waiting = f", {status.waiting:,} waiting for their parent" if status.waiting else ""
        throttled = f", {status.throttled:,} reads throttled by the stream" if status.throttled else ""
        refused = f", {status.refused:,} late changes skipped (older than one applied)" if status.refused else ""
        return (f"{name}: {lag(status)}, {status.applied:,} changes ({rates[name]:,.0f}/s), "
                f"{status.open_shards:,} open shard{'s' if status.open_shards != 1 else ''}{waiting}{throttled}"
                f"{refused}")

    return f"[{elapsed:.0f} s] " + " | ".join(table(name, status) for name, status in statuses.items())


def _publish(metrics: RunMetrics | None, statuses: dict[str, TableStatus]) -> None:
    """The tables' replication figures, for `--metrics-port`."""
    if metrics is None:
        return
    for table, status in statuses.items():
        metrics.set(table, changes_applied=status.applied, replication_lag_seconds=status.lag,
                    open_shards=status.open_shards, write_retries=status.write_retries,
                    items_dead_lettered=status.dead_lettered)


def _caught_up(statuses: dict[str, TableStatus], max_lag: float) -> bool:
    return all(s.lag is not None and s.lag < max_lag and not s.waiting and not s.unconfirmed
               for s in statuses.values())


# --- local: the launcher is the follower ---------------------------------------------------

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
                _publish(metrics, statuses)
                if metrics is not None and engine.failure is not None:
                    metrics.fail(str(engine.failure))
                if until_caught_up and not running.done() and _caught_up(statuses, max_lag):
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
            _publish(metrics, report.statuses())
    return _stop_code(config, streams, echo) or ExitCode.OK


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
        self._echo(_status_line(now - self._started, statuses, rates))
        self._shown_at, self._shown_applied = now, {table: s.applied for table, s in statuses.items()}


# --- other runners: Beam pipelines on the same engine (Beam imported here only) -------------

def _shard_args(p, config: RunConfig) -> dict:
    """What both Beam replication transforms take from the config (and the pipeline's storage options)."""
    return dict(checkpoint_dir=config.checkpoint_dir, dead_letter_dir=config.dead_letter_dir,
                writer_settings=config.writer_settings(), read_attempts=config.scan.max_attempts,
                storage=StorageOptions.of(p.options))


def build_round(p, config: RunConfig, plans: Sequence[TablePlan], tasks: Sequence[ShardTask]) -> None:
    """One round's pipeline (`p`, a Beam pipeline): every task applied up to its shard's current end."""
    from transforms.replicate import ReplicateShards  # noqa: PLC0415 - imports Beam

    _ = p | "Replicate" >> ReplicateShards(config.source, config.target, pairs_by_source(plans),
                                           tasks, **_shard_args(p, config))


def build_follow(p, config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], **bounds) -> None:
    """The streaming pipeline; `bounds` (stop_after_seconds, max_polls, discover_seconds) as `FollowStreams`."""
    from transforms.replicate import FollowStreams  # noqa: PLC0415 - imports Beam

    _ = p | "FollowStreams" >> FollowStreams(
        config.source, config.target, pairs_by_source(plans),
        [(s.table, s.arn) for s in streams], **bounds, **_shard_args(p, config))


async def _plan_shards(config: RunConfig, streams: Sequence[Stream]) -> dict[str, ShardPlan]:
    plans = {}
    async with streams_client(config.source) as client:
        for stream in streams:
            shards = await describe_shards(client, stream.table, stream.arn)
            done = stream_checkpoints.all_shards(config.checkpoint_dir, stream.table)
            plans[stream.table] = plan_shards(stream.table, stream.arn, shards, done)
    return plans


def _applied(config: RunConfig, table: str) -> int:
    return sum(cp.applied for cp in stream_checkpoints.all_shards(config.checkpoint_dir, table).values())


def replicate_in_rounds(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
                        until_caught_up: bool, max_lag: float, beam_args: Sequence[str] = (),
                        echo: Callable[[str], None] = print, metrics: RunMetrics | None = None) -> ExitCode:
    """Rounds of `ReplicateShards` (batch runners): each applies every unfinished shard up to its end.

    A round's lag is at most its own duration when it read every unfinished shard to its
    end (none left waiting on a parent, no new shard found after it); otherwise unknown.
    """
    import apache_beam as beam  # noqa: PLC0415

    shard_plans = asyncio.run(_plan_shards(config, streams))
    number, began = 0, time.monotonic()
    applied_total: dict[str, int] = {}  # for the metrics: since the run started
    targets = {plan.spec.source: plan.spec.target for plan in plans}
    while True:
        number += 1
        started = time.monotonic()
        before = {s.table: _applied(config, s.table) for s in streams}
        tasks = [task for plan in shard_plans.values() for task in plan.unfinished]
        if tasks:
            pipeline = beam.Pipeline(options=pipeline_options(config, beam_args))
            build_round(pipeline, config, plans, tasks)
            run_pipeline(pipeline)
        ended = time.monotonic()
        stopped = _stop_code(config, streams, echo)
        if stopped is not None:
            return stopped
        ran = {(task.table, task.shard_id) for task in tasks}
        shard_plans = asyncio.run(_plan_shards(config, streams))  # the next round's, and what this one left
        statuses = {}
        for stream in streams:
            plan = shard_plans[stream.table]
            unread = sum(1 for t in plan.unfinished if t.parents or (t.table, t.shard_id) not in ran)
            applied = _applied(config, stream.table) - before[stream.table]
            statuses[stream.table] = TableStatus(applied, None if unread else ended - started, plan.open_shards,
                                                 plan.waiting, unread)
        for table, status in statuses.items():
            applied_total[table] = applied_total.get(table, 0) + status.applied
        dead = count_dead_letters(config.dead_letter_dir) if metrics is not None else {}
        _publish(metrics, {table: dataclasses.replace(status, applied=applied_total[table],
                                                      dead_lettered=dead.get(targets[table], 0))
                           for table, status in statuses.items()})
        echo(f"[round {number}] " + _status_line(ended - began, statuses, {
            table: status.applied / max(ended - started, 1e-3) for table, status in statuses.items()}))
        if until_caught_up and _caught_up(statuses, max_lag):
            echo(f"caught up: every table's lag is under {max_lag:g} s and nothing is pending; safe to cut over")
            return ExitCode.OK
        if not (follow or until_caught_up):
            return ExitCode.OK
        if not any(status.applied for status in statuses.values()):
            time.sleep(1.0)  # nothing new: do not spin on DescribeStream


def follow_streaming(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream],
                     beam_args: Sequence[str] = (), *, stop_after_seconds: float | None = None,
                     max_polls: int | None = None, discover_seconds: float = 10.0,
                     echo: Callable[[str], None] = print) -> ExitCode:
    """One long-running pipeline (`streaming` runners such as Dataflow); bounded only for tests."""
    import apache_beam as beam  # noqa: PLC0415

    echo("following the streams in one streaming pipeline; progress is in the checkpoints")
    with beam.Pipeline(options=pipeline_options(config, beam_args)) as p:
        build_follow(p, config, plans, streams, stop_after_seconds=stop_after_seconds, max_polls=max_polls,
                     discover_seconds=discover_seconds)
    return _stop_code(config, streams, echo) or ExitCode.OK
