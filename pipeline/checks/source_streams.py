"""The stream step: which stream each source table's changes are read from, switched on if
asked, and tied to the replication checkpoints; and the settings the stream engine follows
them with.

Settled before a snapshot is read or a change applied, like the table step (`tables`),
and shared the same way: `migrate --streams`, `replicate` and `capture` all start here,
and `--dry-run` names the streams of a replication job. A table that names a Kinesis data
stream (`tables[].kinesis_stream_arn`) is followed there instead of its DynamoDB stream,
by the launcher only (`check_runner`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from pipeline.checks import schema
from pipeline.checks.config import RunConfig
from pipeline.checks.launch import check_options
from pipeline.checks.tables import TablePlan, TableStepError, describe_error, pairs_by_source
from transforms.dynamo.endpoints import kinesis_client, source_client
from transforms.dynamo.retry import error_code
from transforms.errors import MigrateError
from transforms.state import stream_checkpoints
from transforms.streams.engine import ReplicationSettings
from transforms.streams.kinesis import retention_hours as kinesis_retention_hours
from transforms.table_pair import TablePair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    table: str
    arn: str                      # the table's DynamoDB stream, or the Kinesis data stream it names
    retention_hours: float = 24.0  # how long that stream keeps a record


def kinesis_arns(config: RunConfig) -> dict[str, str]:
    """Per table that names a Kinesis data stream (`tables[].kinesis_stream_arn`), its ARN."""
    return {spec.source: spec.kinesis_stream_arn for spec in config.tables if spec.kinesis_stream_arn}


async def _kinesis_retentions(config: RunConfig, tables: Sequence[str]) -> dict[str, float]:
    """Per table that names a Kinesis data stream, its RetentionPeriodHours (DescribeStreamSummary).
    The first call to the stream: a refusal is told as a table's is, before anything is read (exit 2)."""
    arns = {table: arn for table, arn in kinesis_arns(config).items() if table in tables}
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
                streams.append(Stream(table, kinesis_arns(config)[table], kinesis[table]))
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
    if kinesis_arns(config):
        return ensure_streams(config, [plan.spec.source for plan in plans], enable=False)
    streams = []
    for plan in plans:
        if plan.stream_arn is None:
            raise _stream_off(plan.spec.source)
        streams.append(Stream(plan.spec.source, plan.stream_arn))
    return streams


def check_runner(config: RunConfig, beam_args: Sequence[str] = ()) -> None:
    """Refuse (exit 2) a runner other than the local one for tables followed on a Kinesis data stream."""
    tables = sorted(kinesis_arns(config))
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


def replication_settings(config: RunConfig, plans: Sequence[TablePlan], **overrides) -> ReplicationSettings:
    """The engine's settings from the config; `overrides` replace fields (tests: shorter periods)."""
    return settings_for(config, pairs_by_source(plans), **overrides)


def settings_for(config: RunConfig, pairs: Mapping[str, TablePair], **overrides) -> ReplicationSettings:
    """`replication_settings` for tables known by their pairs (source name -> TablePair)."""
    return dataclasses.replace(ReplicationSettings(
        config.source, config.target, dict(pairs), config.checkpoint_dir,
        config.dead_letter_dir, config.writer_settings(), config.scan.max_attempts), **overrides)
