"""Target tables: derive them from the source's DescribeTable, create, compare, wait.

Launcher-only: runs before any item is written (from the launcher, not inside Beam), so a schema
problem stops the run with nothing written. Renames apply to key and index
attributes too, so a renamed key attribute is a key in the target as well.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Mapping

from botocore.exceptions import ClientError

from transforms.dynamo.retry import error_code
from transforms.errors import MigrateError

log = logging.getLogger(__name__)

MAX_TAGS = 50
WRITE_ISOLATION_TAG = "system:write_isolation"
# ScyllaDB 2025.4+ creates Alternator tables with tablets unless this tag says "none", and
# 2026.1 cannot enable Streams on a tablets table (docs/alternator/new-apis.md, "Tablets").
INITIAL_TABLETS_TAG = "system:initial_tablets"
NEW_AND_OLD_IMAGES = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


class SchemaError(MigrateError):
    """The target cannot receive the source's items as configured; nothing was written."""


@dataclass(frozen=True)
class KeySchema:
    """Key attribute names and types, partition key first: [('Artist', 'S'), ('SongTitle', 'S')]."""

    attributes: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.attributes)

    def __str__(self) -> str:
        roles = ("HASH", "RANGE")
        return ", ".join(f"{name} {kind} ({roles[i]})" for i, (name, kind) in enumerate(self.attributes))


def key_schema(description: dict, renames: Mapping[str, str] | None = None) -> KeySchema:
    """The key of a DescribeTable result, optionally after renames."""
    renames = renames or {}
    types = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
    ordered = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
    return KeySchema(tuple((renames.get(k["AttributeName"], k["AttributeName"]), types[k["AttributeName"]])
                           for k in ordered))


def stream_arn(description: dict) -> str | None:
    """The table's stream, if it is on."""
    enabled = (description.get("StreamSpecification") or {}).get("StreamEnabled")
    return description.get("LatestStreamArn") if enabled else None


def key_attributes(description: dict) -> dict[str, str]:
    """Every attribute that is a key of the table or of one of its indexes, with what it keys."""
    keyed = {}
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        for index in description.get(kind) or []:
            for key in index["KeySchema"]:
                keyed[key["AttributeName"]] = f"a key of its index {index['IndexName']}"
    for key in description["KeySchema"]:
        keyed[key["AttributeName"]] = "a key attribute"
    return keyed


def _renamed_keys(keys: list[dict], renames: Mapping[str, str]) -> list[dict]:
    return [{"AttributeName": renames.get(k["AttributeName"], k["AttributeName"]), "KeyType": k["KeyType"]}
            for k in keys]


def _renamed_projection(projection: dict, renames: Mapping[str, str]) -> dict:
    out = {"ProjectionType": projection.get("ProjectionType", "ALL")}
    if projection.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = [renames.get(a, a) for a in projection["NonKeyAttributes"]]
    return out


def create_table_request(description: dict, target_name: str, renames: Mapping[str, str], *,
                         stream: bool = False, vnodes: bool = False) -> dict:
    """A CreateTable request for the target: same keys and indexes, on-demand billing; with
    `stream`, its stream on (NEW_AND_OLD_IMAGES); with `vnodes`, tagged for Alternator vnodes."""
    request = {
        "TableName": target_name,
        "KeySchema": _renamed_keys(description["KeySchema"], renames),
        "AttributeDefinitions": [{"AttributeName": renames.get(a["AttributeName"], a["AttributeName"]),
                                  "AttributeType": a["AttributeType"]}
                                 for a in description["AttributeDefinitions"]],
        "BillingMode": "PAY_PER_REQUEST",
    }
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = description.get(kind) or []
        if indexes:
            request[kind] = [{"IndexName": ix["IndexName"],
                              "KeySchema": _renamed_keys(ix["KeySchema"], renames),
                              "Projection": _renamed_projection(ix.get("Projection", {}), renames)}
                             for ix in indexes]
    if stream:
        request["StreamSpecification"] = dict(NEW_AND_OLD_IMAGES)
    if vnodes:
        request["Tags"] = [{"Key": INITIAL_TABLETS_TAG, "Value": "none"}]
    return request


async def _create_table(target, request: dict) -> dict:
    """CreateTable. ScyllaDB before 2025.4 reserves the `system:initial_tablets` tag (its new
    tables use vnodes anyway, alternator/executor.cc of branch-2025.3), so there the table is
    created without it."""
    try:
        return await target.create_table(**request)
    except Exception as exc:  # noqa: BLE001 - botocore builds exception classes per client
        if "Tags" not in request or f"'{INITIAL_TABLETS_TAG}' is reserved" not in str(exc):
            raise
    log.info("table %s: this Alternator predates %s (its tables use vnodes); created without the tag",
             request["TableName"], INITIAL_TABLETS_TAG)
    return await target.create_table(**{key: value for key, value in request.items() if key != "Tags"})


def portable_tags(tags: list[dict]) -> tuple[list[dict], list[str]]:
    """Tags Alternator accepts, and the keys dropped (reserved prefixes, over the limit of 50)."""
    kept, dropped = [], []
    for tag in tags:
        reserved = tag["Key"].startswith(("system:", "aws:"))
        if reserved or len(kept) >= MAX_TAGS:
            dropped.append(tag["Key"])
        else:
            kept.append(tag)
    return kept, dropped


async def describe(client, table: str) -> dict | None:
    """DescribeTable's Table, or None when the table does not exist."""
    try:
        return (await client.describe_table(TableName=table))["Table"]
    except Exception as exc:  # noqa: BLE001 - botocore builds exception classes per client
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


async def wait_active(client, table: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        description = await describe(client, table)
        if description and description.get("TableStatus", "ACTIVE") == "ACTIVE":
            return description
        if time.monotonic() > deadline:
            raise SchemaError(f"target table {table} did not become ACTIVE within {timeout:.0f} s")
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class SourceSettings:
    """What a new target table copies from its source besides keys and indexes."""

    ttl_attribute: str | None  # the TTL attribute, when TTL is on
    tags: list[dict]


async def source_settings(source, description: dict) -> SourceSettings:
    """The source's TTL and tags, read before the target table is created: a source that
    refuses them (DescribeTimeToLive, ListTagsOfResource) stops the run with nothing created,
    and the error names the source, not the target being created."""
    table = description["TableName"]
    try:
        ttl = (await source.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
        tags = await _source_tags(source, description.get("TableArn"), table)
    except ClientError as exc:
        raise SchemaError(
            f"source table {table} refused {exc.operation_name}: {error_code(exc)}: "
            f"{exc.response.get('Error', {}).get('Message', '')}; creating its target table copies its TTL and tags, "
            f"so the source's credentials need dynamodb:DescribeTimeToLive and dynamodb:ListTagsOfResource on it "
            f"(see docs/permissions.md)") from None
    enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName")
    return SourceSettings(ttl["AttributeName"] if enabled else None, tags)


async def _source_tags(source, arn: str | None, table: str) -> list[dict]:
    if not arn:
        return []
    try:
        return (await source.list_tags_of_resource(ResourceArn=arn)).get("Tags", [])
    except ClientError as exc:
        if error_code(exc) != "UnknownOperationException":  # DynamoDB Local has no tagging
            raise
        log.info("source table %s: the source does not support tags (ListTagsOfResource); none copied", table)
        return []


async def _copy_ttl(target, target_table: str, settings: SourceSettings, renames: Mapping[str, str]) -> None:
    if settings.ttl_attribute:
        attribute = renames.get(settings.ttl_attribute, settings.ttl_attribute)
        await target.update_time_to_live(TableName=target_table,
                                          TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})


async def _copy_tags(target, target_arn: str, target_table: str, settings: SourceSettings) -> None:
    kept, dropped = portable_tags(settings.tags)
    if dropped:
        log.warning("table %s: not copying tags %s (reserved prefix or over Alternator's limit of %d)",
                    target_table, ", ".join(dropped), MAX_TAGS)
    if kept:
        await target.tag_resource(ResourceArn=target_arn, Tags=kept)


def check_target(existing: dict | None, source_description: dict, target_table: str, renames: Mapping[str, str],
                 create: str) -> None:
    """What stops a run at its table step, for `plan` as for `migrate`: a target table
    (`existing`, its description) with another key schema than the source's after renames,
    or none under `create: never`. Raises SchemaError showing both keys."""
    if existing is None:
        if create == "never":
            raise SchemaError(f"target table {target_table} does not exist and create is 'never'; create it "
                              f"or set create: if_missing")
        return
    found, wanted = key_schema(existing), key_schema(source_description, renames)
    if found != wanted:
        raise SchemaError(
            f"target table {target_table} exists with key schema [{found}], but the source "
            f"{source_description['TableName']} needs [{wanted}]; drop or rename the target table, "
            f"or set tables[].target to another name")


async def ensure_target_table(source, target, source_description: dict, target_table: str,
                              renames: Mapping[str, str], create: str, *, stream: bool = False,
                              vnodes: bool = False) -> tuple[dict, bool]:
    """Make sure the target table exists with the source's key; returns (description, created).
    `stream` and `vnodes` shape a table it creates (see `create_table_request`).

    Raises SchemaError when the target is missing under `create: never`, or exists with
    another key schema (showing both).
    """
    existing = await describe(target, target_table)
    check_target(existing, source_description, target_table, renames, create)
    if existing is not None:
        if stream and not (existing.get("StreamSpecification") or {}).get("StreamEnabled"):
            log.warning("target table %s exists without a stream; target.streams only shapes the tables it "
                        "creates: enable its stream, or (on ScyllaDB 2025.4-2026.1, where a table created without "
                        "the tag %s: none uses tablets and cannot stream) drop it and run create-tables again",
                        target_table, INITIAL_TABLETS_TAG)
        return await wait_active(target, target_table), False
    settings = await source_settings(source, source_description)
    created = await _create_table(target, create_table_request(source_description, target_table, renames,
                                                               stream=stream, vnodes=vnodes))
    description = await wait_active(target, target_table)
    await _copy_ttl(target, target_table, settings, renames)
    target_arn = created["TableDescription"].get("TableArn") or description.get("TableArn")
    if target_arn:
        await _copy_tags(target, target_arn, target_table, settings)
    return description, True


async def write_isolation(target, description: dict) -> str | None:
    """The table's Alternator write isolation tag, if the target reports one."""
    arn = description.get("TableArn")
    if not arn:
        return None
    try:
        tags = (await target.list_tags_of_resource(ResourceArn=arn)).get("Tags", [])
    except Exception:  # noqa: BLE001 - a target without tag support has no isolation tag
        return None
    return next((t["Value"] for t in tags if t["Key"] == WRITE_ISOLATION_TAG), None)
