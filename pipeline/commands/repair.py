"""`validate --repair`: make the target equal to the source for the keys a validation found.

For every key found missing, extra or different, the source is read again
(consistently): if the item exists there, its current version is put into the target;
if not, the key is deleted from the target. Deciding from the source's state at repair
time (not from the finding) is what keeps a repair right while the source changes;
`retry-dead-letter` decides the same way (`source_reads.source_versions`). Runs in the launcher, in
chunks, so memory stays bounded by the chunk size.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable, Iterable, Mapping, Sequence

from pipeline.checks.config import RunConfig
from pipeline.checks.tables import TablePlan, pairs_by_source
from pipeline.commands.source_reads import source_versions
from pipeline.output.metrics_server import RunMetrics
from pipeline.output.results import ValidationResult
from transforms.dynamo.endpoints import source_client
from transforms.dynamo.write_requests import FailedWrite
from transforms.dynamo.writer import TargetWriter, open_writer
from transforms.findings import read_findings
from transforms.items.ddb_json import decode_item
from transforms.state.dead_letters import run_folder, write_dead_letters
from transforms.table_pair import TablePair

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


async def _repair_table(source, writer: TargetWriter, table: TablePair, keys: list[dict], read_attempts: int,
                        outcome: RepairOutcome) -> None:
    """Put the source's current version of each key into the target, or delete the key."""
    requests, refused = await source_versions(source, table, keys, read_attempts)
    written = await writer.write(table.target, requests, table.key_names[0])
    outcome.failures.extend(written.failures + refused)
    outcome.puts[table.source] = outcome.puts.get(table.source, 0) + sum("PutRequest" in r for r in requests)
    outcome.deletes[table.source] = outcome.deletes.get(table.source, 0) + sum("DeleteRequest" in r for r in requests)


async def _repair(config: RunConfig, pairs: Mapping[str, TablePair], findings: Iterable[dict]) -> RepairOutcome:
    outcome = RepairOutcome()
    async with contextlib.AsyncExitStack() as stack:
        source = await stack.enter_async_context(source_client(config.source))
        writer = await stack.enter_async_context(open_writer(config.target, config.writer_settings()))
        for chunk in _chunks(findings):
            by_table: dict[str, list[dict]] = {}
            for finding in chunk:
                by_table.setdefault(finding["table"], []).append(decode_item(finding["key"]))
            for name, keys in by_table.items():
                await _repair_table(source, writer, pairs[name], keys, config.scan.max_attempts, outcome)
    return outcome


def announce(result: ValidationResult) -> str:
    """What a repair of these findings would do, before it is done."""
    puts = sum(t.counts["missing"] + t.counts["different"] for t in result.tables.values())
    extra = sum(t.counts["extra"] for t in result.tables.values())
    return (f"repair: will copy up to {puts:,} items from the source and delete up to {extra:,} "
            f"extra items from the target (each key is decided by the source's current state)")


def repair(config: RunConfig, plans: Sequence[TablePlan], result: ValidationResult,
           echo: Callable[[str], None], metrics: RunMetrics | None = None) -> RepairOutcome:
    """Repair every key of a validation's findings; failed writes go to dead-letter files.
    `metrics`: where the puts and deletes made are served as items written (`--metrics-port`)."""
    pairs = pairs_by_source(plans)
    outcome = asyncio.run(_repair(config, pairs, read_findings(result.findings_dir)))
    if metrics is not None:
        failed: dict[str, int] = {}
        for failure in outcome.failures:
            failed[failure.table] = failed.get(failure.table, 0) + 1
        for plan in plans:
            made = outcome.puts.get(plan.spec.source, 0) + outcome.deletes.get(plan.spec.source, 0)
            lettered = failed.get(plan.spec.target, 0)
            metrics.set(plan.spec.source, items_written=max(made - lettered, 0), items_dead_lettered=lettered)
    echo(f"repair: {sum(outcome.puts.values()):,} items put, {sum(outcome.deletes.values()):,} deleted; "
         f"validating again")
    if outcome.failures:
        paths = write_dead_letters(run_folder(config.dead_letter_dir), outcome.failures)
        echo(f"error: {len(outcome.failures)} repair writes failed; they are in {', '.join(paths)}")
    return outcome
