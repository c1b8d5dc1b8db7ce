"""Other runners: Beam pipelines on the same engine and checkpoints as the local follower.

A streaming runner (`streaming: true`, e.g. Dataflow) with `--follow` runs one long-lived
pipeline (`FollowStreams`); a batch runner runs rounds of `ReplicateShards`, each applying
every unfinished shard (whole lineages together) up to its current end. A round's lag is
at most its duration, which is all a round can honestly claim. Beam is imported here only,
in the functions that build a pipeline.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.checks.config import RunConfig
from pipeline.checks.launch import pipeline_options, run_pipeline
from pipeline.checks.source_streams import Stream
from pipeline.checks.tables import TablePlan, pairs_by_source
from pipeline.commands.replicate.reporting import caught_up, publish, status_line, stop_code
from transforms.dynamo.endpoints import streams_client
from transforms.errors import ExitCode
from transforms.state import stream_checkpoints
from transforms.state.dead_letters import count_dead_letters
from transforms.state.storage import StorageOptions
from transforms.streams.engine import TableStatus
from transforms.streams.shards import ShardPlan, ShardTask, describe_shards, plan_shards

if TYPE_CHECKING:
    from pipeline.output.metrics_server import RunMetrics  # served only with --metrics-port


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
        stopped = stop_code(config, streams, echo)
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
        publish(metrics, {table: dataclasses.replace(status, applied=applied_total[table],
                                                      dead_lettered=dead.get(targets[table], 0))
                           for table, status in statuses.items()})
        echo(f"[round {number}] " + status_line(ended - began, statuses, {
            table: status.applied / max(ended - started, 1e-3) for table, status in statuses.items()}))
        if until_caught_up and caught_up(statuses, max_lag):
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
    return stop_code(config, streams, echo) or ExitCode.OK


PLACEHOLDER_STREAM = "<stream ARN, found at run time>"


def describe_dry_run(config: RunConfig, beam_args: Sequence[str], *, follow: bool) -> str:
    """`replicate --dry-run` (and `migrate --streams --dry-run`): one round's Dataflow job, or the
    streaming job where `--follow` runs one, built offline from placeholder plans and streams
    and described (`checks.dry_run`)."""
    from apache_beam.options.pipeline_options import StandardOptions  # noqa: PLC0415

    from pipeline.checks.dry_run import dataflow_job, offline_plans, state_lines  # noqa: PLC0415 - imports Beam

    plans = offline_plans(config)
    streams = [Stream(plan.spec.source, PLACEHOLDER_STREAM) for plan in plans]
    streaming = follow and pipeline_options(config, beam_args).view_as(StandardOptions).streaming
    if streaming:
        title = "replication (one streaming pipeline)"

        def build(p):
            build_follow(p, config, plans, streams)
    else:
        title = "replication (one round; the launcher runs rounds until done)"
        tasks = [ShardTask(stream.table, stream.arn, "<shard, found at run time>") for stream in streams]

        def build(p):
            build_round(p, config, plans, tasks)
    return dataflow_job(config, beam_args, build, title=title, streaming=streaming,
                        state=state_lines(config, f"shard checkpoints {config.checkpoint_dir}/streams/<table>/"))
