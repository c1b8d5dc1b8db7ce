"""Before a rollback: can each source table, on Alternator, stream its changes?

A rollback config reads Alternator (the source) and writes DynamoDB. Replication needs a
stream on every source table, and ScyllaDB 2025.4 to 2026.1 create Alternator tables with
tablets by default, on which Streams cannot be enabled (ScyllaDB's alternator/executor.cc,
UpdateTable: "Streams not yet supported on a table using tablets"; 2026.2 lifts this). Only
a table created with the tag `system:initial_tablets` set to a non-number ("none") uses
vnodes. DescribeTable says nothing of tablets; ListTagsOfResource shows that tag when it
was given (docs/alternator/new-apis.md, "Tablets"). So `plan` can tell, without writing:

- stream on: fine;
- stream off, tagged for vnodes: it can be enabled, and must be before the switch;
- stream off otherwise: it uses tablets on those releases and cannot stream there.

The source is Alternator when its endpoint answers `GET /localnodes` with a list of nodes,
a request only Alternator serves (docs/alternator/new-apis.md).
"""
from __future__ import annotations

import asyncio
import json
import re

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.checks import schema
from pipeline.checks.config import RunConfig
from transforms.dynamo.endpoints import SourceSpec, aio_session, source_client

_NUMBER = re.compile(r"\s*[+-]?[0-9]")  # a tag value ScyllaDB reads as a tablet count (std::stol)
_ENABLE = ("aws dynamodb update-table --endpoint-url {endpoint} --table-name {table} --stream-specification "
           "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES")


async def is_alternator(spec: SourceSpec) -> bool:
    """Whether the source endpoint is an Alternator node (it lists nodes at /localnodes)."""
    if not spec.endpoint:
        return False
    url = spec.endpoint.rstrip("/") + "/localnodes"
    ssl = spec.tls.ssl_context(aio_session(spec.credentials, spec.region)) if url.startswith("https") else False
    try:
        # trust_env: HTTP(S)_PROXY and NO_PROXY, as the SDK's clients of the same endpoint honour them
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), trust_env=True) as http:
            async with http.get(url, ssl=ssl) as response:
                nodes = json.loads(await response.read()) if response.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return False
    return isinstance(nodes, list) and all(isinstance(node, str) for node in nodes)


def stream_warning(table: str, description: dict, tags: list[dict], endpoint: str) -> str | None:
    """What stands in the way of streaming an Alternator table, or None when its stream is on."""
    if (description.get("StreamSpecification") or {}).get("StreamEnabled"):
        return None
    tablets = next((tag["Value"] for tag in tags if tag.get("Key") == schema.INITIAL_TABLETS_TAG), None)
    if tablets is not None and not _NUMBER.match(tablets):
        return (f"source table {table} has no stream: enable it before the application writes to Alternator "
                f"({_ENABLE.format(endpoint=endpoint, table=table)}), or those writes never reach DynamoDB")
    how = ("without the tag " + schema.INITIAL_TABLETS_TAG if tablets is None
           else f"with the tag {schema.INITIAL_TABLETS_TAG}={tablets}")
    return (f"source table {table} cannot stream: it was created {how}, so on ScyllaDB 2025.4 to 2026.1 it uses "
            f"tablets, and Streams cannot be enabled on a tablets table there (2026.2 can); re-create it with "
            f"vnodes (a forward config with target.streams: true, then create-tables and copy it again) "
            f"or upgrade ScyllaDB")


async def _warnings(config: RunConfig) -> list[str]:
    if not await is_alternator(config.source):
        return []
    warnings = []
    async with source_client(config.source) as client:
        for spec in config.tables:
            try:
                description = await schema.describe(client, spec.source)
                tags = (await client.list_tags_of_resource(ResourceArn=description["TableArn"])).get("Tags", []) \
                    if description else []
            except (BotoCoreError, ClientError, OSError):
                continue  # the table step reports an unreachable source or a missing table itself
            if description is not None:
                warning = stream_warning(spec.source, description, tags, config.source.endpoint)
                if warning:
                    warnings.append(warning)
    return warnings


def stream_warnings(config: RunConfig) -> list[str]:
    """For a config whose source is Alternator (a rollback), what keeps its tables from streaming."""
    return asyncio.run(_warnings(config))
