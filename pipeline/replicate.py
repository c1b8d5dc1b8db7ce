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
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import apache_beam as beam

from pipeline.bulk import pipeline_options
from pipeline.config import RunConfig
from pipeline.tables import TablePlan, TableStepError
from transforms import stream_checkpoints, table_schema
from transforms.endpoints import source_client, streams_client
from transforms.replicate_shards import ReplicateShardFn, ShardTask, StreamTable

log = logging.getLogger(__name__)

EXIT_CAUGHT_UP = 0
EXIT_WRITES_FAILED = 1
EXIT_CHANGES_LOST = 3


@dataclass(frozen=True)
class Stream:
    table: str
    arn: str
    view_type: str


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
            description = await table_schema.describe(source, table)
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
                description = await table_schema.wait_active(source, table)
                log.info("%s: stream enabled (NEW_AND_OLD_IMAGES)", table)
            streams.append(Stream(table, description["LatestStreamArn"],
                                  (description.get("StreamSpecification") or {}).get("StreamViewType",
                                                                                     "NEW_AND_OLD_IMAGES")))
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

async def _describe_shards(config: RunConfig, streams: Sequence[Stream]) -> dict[str, tuple[str, list[dict]]]:
    shards = {}
    async with streams_client(config.source) as client:
        for stream in streams:
            listed, start = [], None
            while True:
                kwargs = {"StreamArn": stream.arn, **({"ExclusiveStartShardId": start} if start else {})}
                description = (await client.describe_stream(**kwargs))["StreamDescription"]
                listed.extend(description.get("Shards", []))
                start = description.get("LastEvaluatedShardId")
                if not start:
                    break
            if description.get("StreamStatus") in ("DISABLED", "DISABLING"):
                raise TableStepError(f"the stream of {stream.table} is disabled: changes are no longer recorded; "
                                     f"enable it and copy the table again with `migrate --streams`")
            shards[stream.table] = (stream.arn, listed)
    return shards


def plan_round(config: RunConfig, streams: Sequence[Stream]) -> tuple[list[ShardTask], dict[str, int], dict[str, int]]:
    """The shards to read this round; open shards and shards waiting on a parent, per table."""
    tasks, open_shards, waiting = [], {}, {}
    for table, (arn, shards) in asyncio.run(_describe_shards(config, streams)).items():
        done = stream_checkpoints.all_shards(config.checkpoint_dir, table)
        listed = {shard["ShardId"] for shard in shards}
        lost = sorted(s for s, cp in done.items() if s not in listed and not cp.finished)
        if lost:
            raise stream_checkpoints.StreamChanged(
                f"{table}: shard {lost[0]} was trimmed from the stream before it was fully applied: changes "
                f"were lost; copy the table again with `migrate --streams`")
        open_shards[table] = sum(1 for shard in shards if "EndingSequenceNumber" not in shard["SequenceNumberRange"])
        waiting[table] = 0
        for shard in shards:
            if done.get(shard["ShardId"], stream_checkpoints.ShardCheckpoint()).finished:
                continue
            parent = shard.get("ParentShardId")
            if parent in listed and not done.get(parent, stream_checkpoints.ShardCheckpoint()).finished:
                waiting[table] += 1
                continue
            tasks.append(ShardTask(table, arn, shard["ShardId"]))
    return tasks, open_shards, waiting


def stream_tables(plans: Sequence[TablePlan]) -> dict[str, StreamTable]:
    return {plan.spec.source: StreamTable(plan.spec.source, plan.spec.target, plan.key.names,
                                          plan.target_key.names, dict(plan.spec.renames)) for plan in plans}


def run_round(config: RunConfig, plans: Sequence[TablePlan], tasks: list[ShardTask],
              beam_args: Sequence[str]) -> None:
    if not tasks:
        return
    with beam.Pipeline(options=pipeline_options(config, beam_args)) as p:
        _ = (p
             | "ShardTasks" >> beam.Create(tasks)
             | "SpreadShards" >> beam.Reshuffle()
             | "ApplyShards" >> beam.ParDo(ReplicateShardFn(
                 config.source, config.target, stream_tables(plans), config.checkpoint_dir, config.dead_letter_dir,
                 batch_size=config.batch_size, concurrency=config.write.concurrency,
                 max_attempts=config.write.max_attempts, items_per_second=config.write.max_items_per_second)))


def _progress(config: RunConfig, table: str) -> tuple[int, float | None]:
    shards = stream_checkpoints.all_shards(config.checkpoint_dir, table).values()
    times = [cp.last_change_time for cp in shards if cp.last_change_time is not None]
    return sum(cp.applied for cp in shards), max(times) if times else None


# --- rounds -------------------------------------------------------------------------------

def replicate(config: RunConfig, plans: Sequence[TablePlan], streams: Sequence[Stream], *, follow: bool,
              until_caught_up: bool, max_lag: float, beam_args: Sequence[str] = (),
              echo: Callable[[str], None] = print) -> int:
    """Run rounds; returns the exit code (0 caught up or done, 1 writes failed, 3 changes lost)."""
    calm_rounds, number = 0, 0
    while True:
        number += 1
        before = {s.table: _progress(config, s.table)[0] for s in streams}
        started = time.time()
        tasks, open_shards, waiting = plan_round(config, streams)
        run_round(config, plans, tasks, beam_args)
        ended = time.time()
        stops = {s.table: note for s in streams if (note := stream_checkpoints.read_stop(config.checkpoint_dir, s.table))}
        report = {}
        for stream in streams:
            applied, last_change = _progress(config, stream.table)
            delta = applied - before[stream.table]
            lag = max(0.0, ended - last_change) if delta and last_change is not None else 0.0
            report[stream.table] = TableRound(delta, lag, open_shards[stream.table], waiting[stream.table])
        echo(f"[round {number}] " + " | ".join(
            f"{table}: lag {r.lag_seconds:.1f} s, {r.applied:,} changes ({r.applied / max(ended - started, 1e-3):,.0f}/s), "
            f"{r.open_shards} open shard{'s' if r.open_shards != 1 else ''}" for table, r in report.items()))
        if stops:
            for table, note in stops.items():
                echo(f"error: {note['message']}")
            return EXIT_CHANGES_LOST if any(n["kind"] == "changes_lost" for n in stops.values()) else EXIT_WRITES_FAILED
        calm = all(r.lag_seconds < max_lag and not r.waiting_shards for r in report.values())
        calm_rounds = calm_rounds + 1 if calm else 0
        if until_caught_up and calm_rounds >= 2:
            echo(f"caught up: every table's lag is under {max_lag:g} s and nothing is pending; safe to cut over")
            return EXIT_CAUGHT_UP
        if not (follow or until_caught_up):
            return EXIT_CAUGHT_UP
        if not any(r.applied for r in report.values()):
            time.sleep(1.0)  # nothing new: do not spin on DescribeStream
