"""`validate --repair`: make the target equal to the source for the keys a validation found.

For every key found missing, extra or different, the source is read again
(consistently): if the item exists there, its current version is put into the target;
if not, the key is deleted from the target. Deciding from the source's state at repair
time (not from the finding) is what keeps a repair right while the source changes.
Runs in the launcher, in chunks, so memory stays bounded by the chunk size.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterable, Mapping

from pipeline.config import RunConfig
from transforms.arrow_codec import key_of
from transforms.batch_reads import get_items
from transforms.batch_writes import FailedWrite, collapse_by_key, delete, put
from transforms.compare import CompareTable
from transforms.ddb_json import decode_item
from transforms.endpoints import source_client
from transforms.node_routing import StickyWriter

CHUNK = 1000


@dataclass
class RepairOutcome:
    puts: dict[str, int] = field(default_factory=dict)
    deletes: dict[str, int] = field(default_factory=dict)
    failures: list[FailedWrite] = field(default_factory=list)


def _chunks(findings: Iterable[dict]) -> Iterable[list[dict]]:
    iterator = iter(findings)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


async def _repair_table(source, writer: StickyWriter, table: CompareTable, keys: list[dict], max_attempts: int,
                        outcome: RepairOutcome) -> None:
    """Put the source's current version of each key into the target, or delete the key."""
    current = await get_items(source, table.source, [table.to_source_key(k) for k in keys], table.source_key_names,
                              max_attempts=max_attempts)
    present = {key_of(table.to_target(item), table.key_names): table.to_target(item) for item in current.values()}
    requests = [put(present[key_of(k, table.key_names)]) if key_of(k, table.key_names) in present else delete(k)
                for k in keys]
    written = await writer.write(table.target, collapse_by_key(requests, table.key_names), table.key_names[0])
    outcome.failures.extend(written.failures)
    outcome.puts[table.source] = outcome.puts.get(table.source, 0) + sum("PutRequest" in r for r in requests)
    outcome.deletes[table.source] = outcome.deletes.get(table.source, 0) + sum("DeleteRequest" in r for r in requests)


async def _repair(config: RunConfig, tables: Mapping[str, CompareTable], findings: Iterable[dict]) -> RepairOutcome:
    outcome = RepairOutcome()
    async with source_client(config.source) as source:
        writer = await StickyWriter.open(config.target, batch_size=config.batch_size,
                                         concurrency=config.write.concurrency, max_attempts=config.write.max_attempts,
                                         items_per_second=config.write.max_items_per_second)
        try:
            for chunk in _chunks(findings):
                by_table: dict[str, list[dict]] = {}
                for finding in chunk:
                    by_table.setdefault(finding["table"], []).append(decode_item(finding["key"]))
                for name, keys in by_table.items():
                    await _repair_table(source, writer, tables[name], keys, config.write.max_attempts, outcome)
        finally:
            await writer.close()
    return outcome


def repair(config: RunConfig, tables: Mapping[str, CompareTable], findings: Iterable[dict]) -> RepairOutcome:
    return asyncio.run(_repair(config, tables, findings))
