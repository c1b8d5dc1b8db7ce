"""Continuous replication from DynamoDB Streams, as rounds of bounded pipelines.

A round: DescribeStream, pick the shards to read (not finished, parent finished or
gone), run one Beam pipeline that applies each of them up to its current end, then
read the checkpoints to report lag, changes applied and open shards. `--follow`
repeats rounds; `--until-caught-up` stops once every table's lag stayed under
`--max-lag` for two rounds in a row with no shard waiting on its parent. This is the
mode for every runner here: the local DirectRunner cannot run an unbounded source.

A shard that cannot go on (changes trimmed away, writes failing) leaves a stop note
under its table's checkpoints instead of failing the pipeline, so the launcher can
name the problem on any runner.

On a streaming runner (`streaming: true`, e.g. Dataflow), `--follow` instead runs one
long-lived pipeline (`transforms.replicate`) with the same shard reader made
splittable; it keeps the same checkpoints, so either mode can take over.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from pipeline import schema
from pipeline.config import RunConfig
from pipeline.runner import pipeline_options, run_pipeline
from pipeline.tables import TablePlan, TableStepError
from transforms.dynamo.endpoints import source_client, streams_client
from transforms.errors import ExitCode, MigrateError
from transforms.replicate import FollowStreams, ReplicateShards
from transforms.state import stream_checkpoints
from transforms.state.dead_letters import count_dead_letters, run_folder
from transforms.state.storage import StorageOptions
from transforms.streams.shards import ShardPlan, ShardTask, describe_shards, plan_shards

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Stream:
    table: str
    arn: str


@dataclass
class TableRound:
    applied: int
    lag_seconds: float
    open_shards: int
    waiting_shards: int


# --- streams on, and which stream ---------------------------------------------------------

async def _ensure_streams(config: RunConfig, plans: Sequence[TablePlan], enable: bool) -> list[Stream]:
    streams = []
    async with source_client(config.source) as source:
        for plan in plans:
            table = plan.spec.source
            description = await schema.describe(source, table)
            if description is None:
                raise TableStepError(f"source table {table} does not exist at {config.source.describe()}")
            spec = description.get("StreamSpecification") or {}
            if not spec.get("StreamEnabled"):
                if not enable:
                    raise TableStepError(
                        f"source table {table} has no stream; enable it with NEW_AND_OLD_IMAGES (aws dynamodb "
                        f"update-table --table-name {table} --stream-specification "
                        f"StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES) or pass --enable-streams")
                await source.update_table(TableName=table, StreamSpecification={
                    "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
                description = await schema.wait_active(source, table)
                log.info("%s: stream enabled (NEW_AND_OLD_IMAGES)", table)
            streams.append(Stream(table, description["LatestStreamArn"]))
    return streams


def ensure_streams(config: RunConfig, plans: Sequence[TablePlan], *, enable: bool) -> list[Stream]:
    """Each table's stream, switched on first with `enable`; an error when it is off."""
    return asyncio.run(_ensure_streams(config, plans, enable))


def bind_checkpoints(config: RunConfig, streams: Sequence[Stream], *, fresh: bool) -> None:
    """Tie checkpoints to the streams; `fresh` (a new snapshot) forgets earlier replication."""
    for stream in streams:
        if fresh:
            stream_checkpoints.forget(config.checkpoint_dir, stream.table)
        stream_checkpoints.bind_stream(config.checkpoint_dir, stream.table, stream.arn)
        stream_checkpoints.clear_stop(config.checkpoint_dir, stream.table)


# --- one round ----------------------------------------------------------------------------

async def _plan_shards(config: RunConfig, streams: Sequence[Stream]) -> dict[str, ShardPlan]:
    plans = {}
    async with streams_client(config.source) as client:
        for stream in streams:
            shards = await describe_shards(client, stream.table, stream.arn)
            done = stream_checkpoints.all_shards(config.checkpoint_dir, stream.table)
            plans[stream.table] = plan_shards(stream.table, stream.arn, shards, done)
    return plans


def plan_round(config: RunConfig, streams: Sequence[Stream]) -> dict[str, ShardPlan]:
    """Per table, the shards to read this round (a disabled stream is a usage error)."""
    return asyncio.run(_plan_shards(config, streams))


def _shard_args(p: beam.Pipeline, config: RunConfig) -> dict:
    """What both replication transforms take from the config (and the pipeline's storage options)."""
    return dict(checkpoint_dir=config.checkpoint_dir, dead_letter_dir=config.dead_letter_dir,
                writer=config.writer_settings(), read_attempts=config.scan.max_attempts,
                storage=StorageOptions.of(p.options))


def build_round(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan], tasks: list[ShardTask]) -> None:
    _ = p | "Replicate" >> ReplicateShards(config.source, config.target, {plan.spec.source: plan.pair for plan in plans},
                                           tasks, **_shard_args(p, config))


def run_round(config: RunConfig, plans: Sequence[TablePlan], tasks: list[ShardTask],
              beam_args: Sequence[str]) -> None:
    if not tasks:
        return
    p = beam.Pipeline(options=pipeline_options(config, beam_args))
    build_round(p, config, plans, tasks)
    run_pipeline(p)


def _progress(config: RunConfig, table: str) -> tuple[int, float | None]:
    shards = stream_checkpoints.all_shards(config.checkpoint_dir, table).values()
    times = [cp.last_change_time for cp in shards if cp.last_change_time is not None]
    return sum(cp.applied for cp in shards), max(times) if times else None


def _stop_code(config: RunConfig, streams: Sequence[Stream], echo: Callable[[str], None]) -> ExitCode | None:
    """The exit code for the stop notes shards left (the most serious wins), or None."""
    stops: list[MigrateError] = [stop for s in streams
                                 if (stop := stream_checkpoints.read_stop(config.checkpoint_dir, s.table))]
    for stop in stops:
        echo(f"error: {stop}")
    return max((stop.code for stop in stops), default=None)


def follow_streaming(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream],
                     beam_args: Sequence[str] = (), *, stop_after_seconds: float | None = None,
                     max_polls: int | None = None, discover_seconds: float = 10.0,
                     echo: Callable[[str], None] = print) -> ExitCode:
    """One long-running pipeline (`streaming` runners such as Dataflow); bounded only for tests."""
    echo("following the streams in one streaming pipeline; progress is in the checkpoints")
    with beam.Pipeline(options=pipeline_options(config, beam_args)) as p:
        build_follow(p, config, plans, streams, stop_after_seconds=stop_after_seconds, max_polls=max_polls,
                     discover_seconds=discover_seconds)
    return _stop_code(config, streams, echo) or ExitCode.OK


def build_follow(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream],
                 **bounds) -> None:
    """The streaming pipeline; `bounds` (stop_after_seconds, max_polls, discover_seconds) as `FollowStreams`."""
    _ = p | "FollowStreams" >> FollowStreams(
        config.source, config.target, {plan.spec.source: plan.pair for plan in plans},
        [(s.table, s.arn) for s in streams], **bounds, **_shard_args(p, config))


# --- rounds -------------------------------------------------------------------------------

def replicate(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
              until_caught_up: bool, max_lag: float, beam_args: Sequence[str] = (),
              echo: Callable[[str], None] = print) -> ExitCode:
    """Replicate; returns the exit code (OK caught up or done, INCOMPLETE some changes dead-lettered,
    CHANGES_LOST). Dead letters go to this run's own folder.

    `--follow` on a streaming runner (pipeline option `streaming`) runs one streaming
    pipeline instead of rounds.
    """
    config = dataclasses.replace(config, dead_letter_dir=run_folder(config.dead_letter_dir))
    if follow and pipeline_options(config, beam_args).view_as(StandardOptions).streaming:
        code = follow_streaming(config, plans, streams, beam_args, echo=echo)
    else:
        code = _rounds(config, plans, streams, follow=follow, until_caught_up=until_caught_up, max_lag=max_lag,
                       beam_args=beam_args, echo=echo)
    dead = sum(count_dead_letters(config.dead_letter_dir).values())
    if dead:
        echo(f"error: {dead} changes could not be applied; they are in {config.dead_letter_dir}")
        return max(code, ExitCode.INCOMPLETE)
    return code


def _rounds(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
            until_caught_up: bool, max_lag: float, beam_args: Sequence[str], echo: Callable[[str], None]) -> ExitCode:
    calm_rounds, number = 0, 0
    while True:
        number += 1
        before = {s.table: _progress(config, s.table)[0] for s in streams}
        started = time.time()
        shard_plans = plan_round(config, streams)
        run_round(config, plans, [task for plan in shard_plans.values() for task in plan.ready], beam_args)
        ended = time.time()
        report = {}
        for stream in streams:
            applied, last_change = _progress(config, stream.table)
            delta = applied - before[stream.table]
            lag = max(0.0, ended - last_change) if delta and last_change is not None else 0.0
            report[stream.table] = TableRound(delta, lag, shard_plans[stream.table].open_shards,
                                              shard_plans[stream.table].waiting)
        echo(f"[round {number}] " + " | ".join(
            f"{table}: lag {r.lag_seconds:.1f} s, {r.applied:,} changes ({r.applied / max(ended - started, 1e-3):,.0f}/s), "
            f"{r.open_shards} open shard{'s' if r.open_shards != 1 else ''}" for table, r in report.items()))
        stopped = _stop_code(config, streams, echo)
        if stopped is not None:
            return stopped
        calm = all(r.lag_seconds < max_lag and not r.waiting_shards for r in report.values())
        calm_rounds = calm_rounds + 1 if calm else 0
        if until_caught_up and calm_rounds >= 2:
            echo(f"caught up: every table's lag is under {max_lag:g} s and nothing is pending; safe to cut over")
            return ExitCode.OK
        if not (follow or until_caught_up):
            return ExitCode.OK
        if not any(r.applied for r in report.values()):
            time.sleep(1.0)  # nothing new: do not spin on DescribeStream
