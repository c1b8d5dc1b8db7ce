"""The table step, run by the launcher before any pipeline: describe, plan, create.

Everything a run needs to know about its tables is found here with a few DescribeTable
calls, so `plan` can show it without writing, and a bad table (missing source, target
with another key) stops the run before any item moves.
"""
from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Iterable

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, SSLError

from pipeline.checks import schema
from pipeline.checks.config import RunConfig, TableSpec
from transforms.dynamo.endpoints import source_client, target_client
from transforms.dynamo.retry import error_code
from transforms.errors import MigrateError, service_message
from transforms.items.expiry import Expiry
from transforms.settings import PAGES_IN_FLIGHT
from transforms.table_pair import TablePair

log = logging.getLogger(__name__)

MAX_SEGMENTS = 1_000_000
BYTES_PER_SEGMENT = 64 * 1024 * 1024


class TableStepError(MigrateError):
    """A table or endpoint problem found before writing; the message names it and the fix."""


@dataclass(frozen=True)
class TablePlan:
    spec: TableSpec
    key: schema.KeySchema          # source key schema
    target_key: schema.KeySchema   # after renames
    item_count: int
    size_bytes: int
    segments: int
    target_exists: bool
    indexes: tuple[str, ...]
    created: bool = False  # this run created the target table
    exports: object = None  # pipeline.checks.dynamodb_exports.TableExports when the table is read from exports
    expiry: Expiry | None = None  # with skip_expired: the source's TTL attribute and the run's cut-off
    scan_latency: float | None = None  # seconds a small Scan of the source took (`plan` measures it)
    stream_arn: str | None = None  # the source's stream when it is on (its LatestStreamArn)

    @property
    def pair(self) -> TablePair:
        """The source/target pair the pipelines work with."""
        return TablePair(self.spec.source, self.spec.target, self.target_key.names, dict(self.spec.renames),
                         self.expiry)


def pairs_by_source(plans: Iterable[TablePlan]) -> dict[str, TablePair]:
    """Each table's pair under its source's name: how the pipelines find the pair of a page or change."""
    return {plan.spec.source: plan.pair for plan in plans}


def pairs_by_target(plans: Iterable[TablePlan]) -> dict[str, TablePair]:
    """Each table's pair under its target's name: dead letters are filed by the target table."""
    return {plan.spec.target: plan.pair for plan in plans}


def auto_segments(item_count: int, size_bytes: int, page_size: int, workers: int,
                  pages_in_flight: int = PAGES_IN_FLIGHT, task_holds_output: bool = False) -> int:
    """Enough segments to give every worker `pages_in_flight` of them (one page of each in
    flight: what hides a far source's latency) and each segment near 64 MiB, but no empty
    ones. Where a task holds all its output in memory (Dask), a task's group of segments is
    kept near 64 MiB instead. DynamoDB refreshes ItemCount only every few hours, so a count
    of 0 says nothing: then every worker gets its segments (an empty one costs one Scan call)."""
    segment_bytes = BYTES_PER_SEGMENT // pages_in_flight if task_holds_output else BYTES_PER_SEGMENT
    wanted = max(workers * pages_in_flight, math.ceil(size_bytes / segment_bytes))
    useful = math.ceil(item_count / page_size) if item_count else wanted
    return max(1, min(wanted, useful, MAX_SEGMENTS))


_AUTH_ERRORS = {"UnrecognizedClientException", "MissingAuthenticationTokenException", "InvalidSignatureException",
                "IncompleteSignatureException"}
_DENIED = {"AccessDeniedException", "AccessDenied"}  # known credentials, lacking a permission (IAM or a GRANT)


def describe_error(where: str, exc: BaseException) -> TableStepError:
    side = where.split()[0]  # "source ..." or "target ...": point at that side's settings
    if isinstance(exc, NoCredentialsError):
        return TableStepError(f"no AWS credentials found for {where}; set {side}.credentials in the config "
                              f"or configure the AWS default chain (AWS_ACCESS_KEY_ID, a profile, ...)")
    if isinstance(exc, SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        reason = re.search(r"certificate verify failed: ([^(\]]+)", str(exc))
        reason = reason.group(1).strip() if reason else str(exc)
        hint = ("the certificate does not name the host you connect to: use the host name or address it was "
                "issued for" if "mismatch" in reason.lower() else
                f"set {side}.ca_file to the CA that signed the server's certificate")
        return TableStepError(f"cannot verify the TLS certificate of {where}: {reason}; {hint} "
                              f"({side}.insecure_skip_verify: true turns the check off, for tests only)")
    if isinstance(exc, ClientError):
        code = error_code(exc)
        reason = service_message(exc.response.get("Error", {}).get("Message", ""))
        message = f"{where} refused the request: {code}: {reason}"
        if code in _AUTH_ERRORS:
            message += (f"; check {side}.credentials: a wrong key id or secret, or (without credentials) the "
                        f"cluster enforces authorization and needs them")
        elif code in _DENIED:
            message += (f"; grant the permission to {side}.credentials (docs/permissions.md for AWS, "
                        f"docs/alternator-auth.md for Alternator)")
        return TableStepError(message)
    return TableStepError(f"cannot reach {where}: {exc}; check the endpoint, port and network")


async def _describe_sources(config: RunConfig, source) -> list[dict]:
    """Every source table's description, checked before any target is touched."""
    descriptions = []
    for i, spec in enumerate(config.tables):
        try:
            description = await schema.describe(source, spec.source)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise describe_error(f"source {config.source.describe()}", exc) from None
        if description is None:
            raise TableStepError(f"source table {spec.source} does not exist at {config.source.describe()}; "
                                 f"check tables[].source and source.region/endpoint")
        taken = schema.key_attributes(description)
        for old, new in spec.renames.items():
            if new in taken and new not in spec.renames:
                raise TableStepError(
                    f"tables[{i}].renames maps {old!r} to {new!r}, but {new!r} is {taken[new]} of {spec.source}: "
                    f"items would be written under another item's key; rename {new!r} away too, or choose "
                    f"another name")
        descriptions.append(description)
    return descriptions


async def _expiry(config: RunConfig, source, index: int, cutoff: float) -> Expiry | None:
    """With `skip_expired`, the source's TTL attribute (it must have TTL enabled) and the cut-off."""
    spec = config.tables[index]
    if not spec.skip_expired:
        return None
    try:
        ttl = (await source.describe_time_to_live(TableName=spec.source))["TimeToLiveDescription"]
    except (BotoCoreError, ClientError, OSError) as exc:
        raise describe_error(f"source {config.source.describe()}", exc) from None
    if ttl.get("TimeToLiveStatus") != "ENABLED" or not ttl.get("AttributeName"):
        raise TableStepError(f"tables[{index}].skip_expired is set, but source table {spec.source} has no TTL "
                             f"enabled (TimeToLiveStatus {ttl.get('TimeToLiveStatus', 'DISABLED')}): no item "
                             f"can expire; remove skip_expired or enable TTL on the source")
    return Expiry(ttl["AttributeName"], cutoff)


async def _scan_latency(config: RunConfig, source, table: str) -> float:
    """How long one small Scan (Limit 1) of the source takes: what every Scan page waits on
    besides its own size, once the connection is open (DescribeTable opened it)."""
    try:
        started = time.perf_counter()
        await source.scan(TableName=table, Limit=1)
        return time.perf_counter() - started
    except (BotoCoreError, ClientError, OSError) as exc:
        raise describe_error(f"source {config.source.describe()}", exc) from None


async def _plan_tables(config: RunConfig, create: bool, cutoff: float, measure_latency: bool,
                       check_target: bool) -> list[TablePlan]:
    plans = []
    async with source_client(config.source) as source, target_client(config.target) as target:
        descriptions = await _describe_sources(config, source)
        expiries = [await _expiry(config, source, i, cutoff) for i in range(len(config.tables))]
        for spec, description, expiry in zip(config.tables, descriptions, expiries):
            where = f"target {config.target.describe()}"
            try:
                if create:
                    target_description, created = await schema.ensure_target_table(
                        source, target, description, spec.target, spec.renames, spec.create,
                        stream=config.target.streams, vnodes=config.target.streams and not config.target.is_dynamodb)
                    if created:
                        log.info("created target table %s", spec.target)
                    isolation = await schema.write_isolation(target, target_description)
                    if isolation == "always_use_lwt":
                        log.warning("target table %s uses write isolation always_use_lwt: every write is a "
                                    "Paxos round, far slower for a bulk load; consider only_rmw_uses_lwt",
                                    spec.target)
                    exists = not created
                else:
                    created = False
                    existing = await schema.describe(target, spec.target)
                    exists = existing is not None
                    if check_target:
                        schema.check_target(existing, description, spec.target, spec.renames, spec.create)
            except (BotoCoreError, ClientError, OSError) as exc:
                raise describe_error(where, exc) from None
            item_count = int(description.get("ItemCount", 0))
            size_bytes = int(description.get("TableSizeBytes", 0))
            segments = config.scan.segments or auto_segments(
                item_count, size_bytes, config.scan.page_size, config.workers, config.scan.pages_in_flight,
                task_holds_output=config.task_holds_output)
            indexes = tuple(ix["IndexName"] for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
                            for ix in description.get(kind) or [])
            latency = await _scan_latency(config, source, spec.source) if measure_latency else None
            plans.append(TablePlan(spec, schema.key_schema(description),
                                   schema.key_schema(description, spec.renames),
                                   item_count, size_bytes, segments, exists, indexes, created, expiry=expiry,
                                   scan_latency=latency, stream_arn=schema.stream_arn(description)))
    return plans


def plan_tables(config: RunConfig, *, create: bool, cutoff: float | None = None,
                measure_latency: bool = False, check_target: bool = False) -> list[TablePlan]:
    """Describe every table; with `create`, also make the target tables ready. `cutoff`: the
    epoch second before which TTL expiries count as expired (default: now, whole seconds), fixed
    here once for the run so that its bulk copy, replication and validation agree.
    `measure_latency`: time one small Scan of each source table (`TablePlan.scan_latency`).
    `check_target` (without `create`): refuse what `create` would refuse, a target table with
    another key schema or none under `create: never` (`schema.check_target`)."""
    return asyncio.run(_plan_tables(config, create, int(time.time()) if cutoff is None else cutoff,
                                    measure_latency, check_target))
