"""`retry-dead-letter`: resolve dead letters once their cause is fixed, without replaying them.

A letter holds the write that failed, but the source may have changed since: replaying
its value could overwrite a newer change. So, as `validate --repair` does, each letter's
key is read from the source again (consistently) and the source's current item is
written through the same writer as every run (sticky nodes, retries, rate), or the key
deleted where the source no longer has it (`source_reads.source_versions`).

The letter files are never rewritten: a marker beside each (`state.dead_letters`) lists
its lines resolved and those failing again with their new reason, so a second call skips
what is done. Runs in the launcher, a letter file at a time (a file holds one page or
stream window of failures), so memory stays bounded.
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

from apache_beam.io.filesystems import FileSystems

from pipeline.checks.config import ConfigError, RunConfig
from pipeline.checks.tables import TablePlan, pairs_by_target
from pipeline.commands.source_reads import source_versions
from transforms.dynamo.endpoints import source_client
from transforms.dynamo.write_requests import request_item
from transforms.dynamo.writer import TargetWriter, open_writer
from transforms.errors import ExitCode
from transforms.items.ddb_json import decode_item
from transforms.items.keys import key_of
from transforms.state.dead_letters import MARKER_SUFFIX, letter_files, read_letters, read_marker, write_marker
from transforms.state.paths import folder_name
from transforms.table_pair import TablePair

__all__ = ["RetryOutcome", "retry_dead_letters"]


@dataclass
class RetryOutcome:
    resolved: int = 0
    failing: dict[str, int] = field(default_factory=dict)  # per letter file: letters still failing

    @property
    def left(self) -> int:
        return sum(self.failing.values())


def _target_key(letter: dict, table: TablePair) -> dict:
    """The letter's key in target naming (a source-named letter holds the source's item)."""
    item = decode_item(letter.get("item") or letter.get("delete"))
    if letter.get("naming") == "source":
        return table.target_key(item)
    return {name: item[name] for name in table.key_names}


async def _retry_file(path: str, source, writer: TargetWriter, table: TablePair | None, read_attempts: int,
                      outcome: RetryOutcome) -> None:
    resolved, failing = read_marker(path)
    letters = read_letters(path)
    pending = [line for line in range(len(letters)) if line not in resolved]
    if not pending:
        return
    if table is None:  # no configured table writes to this target any more
        failing = {line: "no table in the config writes to this target table; add it to tables[] to retry"
                   for line in pending}
    else:
        keys = {line: _target_key(letters[line], table) for line in pending}
        requests, refused = await source_versions(source, table, list(keys.values()), read_attempts)
        written = await writer.write(table.target, requests, table.key_names[0])
        reasons = {}
        for failure in written.failures + refused:
            item = request_item(failure.request)
            key = table.target_key(item) if failure.source_naming else item
            reasons[key_of(key, table.key_names)] = failure.error
        failing = {}
        for line, key in keys.items():
            reason = reasons.get(key_of(key, table.key_names))
            if reason is None:
                resolved.add(line)
            else:
                failing[line] = reason
        outcome.resolved += len(pending) - len(failing)
    write_marker(path, resolved, failing)
    if failing:
        outcome.failing[path] = len(failing)


async def _retry(config: RunConfig, pairs: dict[str, TablePair], paths: Sequence[str]) -> RetryOutcome:
    outcome = RetryOutcome()
    async with contextlib.AsyncExitStack() as stack:
        source = await stack.enter_async_context(source_client(config.source))
        writer = await stack.enter_async_context(open_writer(config.target, config.writer_settings()))
        for path in paths:
            target = folder_name(path)
            await _retry_file(path, source, writer, pairs.get(target), config.scan.max_attempts, outcome)
    return outcome


def retry_dead_letters(config: RunConfig, plans: Sequence[TablePlan], run: str | None,
                       echo: Callable[[str], None]) -> ExitCode:
    """Retry the letters of one run folder (`run`, e.g. run-20260101T120000-5f2a1c) or of every run;
    OK when none is left unresolved, INCOMPLETE otherwise."""
    if run is not None and (not run.startswith("run-") or "/" in run or "*" in run):
        raise ConfigError(f"--run {run}: give a run folder's name, like run-20260101T120000-5f2a1c "
                          f"(the folders in {config.dead_letter_dir})")
    paths = letter_files(config.dead_letter_dir, run or "run-*")
    if run is not None and not paths:
        raise ConfigError(f"--run {run}: no dead letters in {FileSystems.join(config.dead_letter_dir, run)}; "
                          f"check the name (ls {config.dead_letter_dir})")
    pairs = pairs_by_target(plans)
    outcome = asyncio.run(_retry(config, pairs, paths))
    echo(f"retry-dead-letter: {outcome.resolved:,} letters resolved (the source's current item written, or the "
         f"key deleted where the source has none), {outcome.left:,} left")
    for path, count in outcome.failing.items():
        echo(f"  {count:,} still failing in {path} (reasons in {path}{MARKER_SUFFIX})")
    return ExitCode.INCOMPLETE if outcome.left else ExitCode.OK
