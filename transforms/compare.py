"""Compare two tables: digests grouped by key-hash bucket, then a consistent re-read.

    source pages ─► DigestPages ─┐
                                 ├─ CoGroupByKey((table, bucket)) ─► CompareBuckets ─► Suspects
    target pages ─► DigestPages ─┘
    Suspects ─► ReadBothSides (wait recheck_seconds, BatchGetItem both sides) ─► Findings
    (a batch's findings, with `Tally`s of the keys matched, lagging or sampled: `transforms.findings`)

No worker holds more than one bucket of digests (16+16 bytes and a key per item).
Only the keys whose digests differ are read again, with consistent reads, to tell
real differences (missing, extra, different, with an attribute diff) from replication
lag (different at scan time, equal now). Sampling skips the target scan: a share of
the source keys goes straight to ReadBothSides as point reads.

Findings are dicts: {"table", "kind", "key", "diff"} with values in DynamoDB JSON.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Mapping

import apache_beam as beam
from apache_beam.transforms.display import DisplayDataItem

from transforms.dynamo.endpoints import SourceSpec, TargetSpec, open_client
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.point_reads import MAX_KEYS_PER_REQUEST, get_items
from transforms.findings import Findings, Tally
from transforms.items.arrow_codec import batch_to_items
from transforms.items.ddb_json import encode_item, encode_value
from transforms.items.digests import attribute_diff, content_digest, key_digest
from transforms.items.keys import key_of
from transforms.items.renames import RenameConflict
from transforms.scan import Page
from transforms.table_pair import TablePair

__all__ = ["KINDS", "CompareTables", "SampleTables"]

KINDS = ("missing", "extra", "different")


@dataclass(frozen=True)
class Suspects:
    """Keys (target naming) of one table to read again on both sides, not before `found_at` + delay."""

    table: str
    keys: tuple[dict, ...]
    found_at: float


_CONFLICT = b"rename conflict"


def _bucket_of(digest: bytes, buckets: int) -> int:
    return int.from_bytes(digest[:8], "big") % buckets


class _DigestPagesFn(beam.DoFn):
    """Page -> ((table, bucket), [(key digest, content digest, key), ...]) per bucket touched."""

    def __init__(self, pairs_by_page_name: Mapping[str, TablePair], buckets: Mapping[str, int], rename: bool):
        self._pairs = dict(pairs_by_page_name)
        self._buckets = dict(buckets)  # by source table
        self._rename = rename

    def process(self, page: Page):
        table = self._pairs[page.table]
        groups: dict[int, list] = {}
        buckets = self._buckets[table.source]
        for item in batch_to_items(page.batch):
            key = table.target_key(item) if self._rename else {name: item[name] for name in table.key_names}
            try:
                content = content_digest(table.to_target(item) if self._rename else item)
            except RenameConflict:
                content = _CONFLICT  # never equal to a digest: the key is read again and reported
            digest = key_digest(key, table.key_names)
            groups.setdefault(_bucket_of(digest, buckets), []).append((digest, content, key))
        for bucket, records in groups.items():
            yield (table.source, bucket), records


class _CompareBucketsFn(beam.DoFn):
    def process(self, element):
        (table, _bucket), sides = element
        target = {digest: (content, key) for records in sides["target"] for digest, content, key in records}
        suspects = []
        matched = 0
        for records in sides["source"]:
            for digest, content, key in records:
                other = target.pop(digest, None)
                if other is not None and other[0] == content:
                    matched += 1
                else:
                    suspects.append(key)
        suspects.extend(key for _content, key in target.values())
        yield Tally(table, "matched", matched)
        found_at = time.time()
        for i in range(0, len(suspects), MAX_KEYS_PER_REQUEST):
            yield Suspects(table, tuple(suspects[i:i + MAX_KEYS_PER_REQUEST]), found_at)


class _SampleKeysFn(beam.DoFn):
    """A deterministic share of the source's keys (by key hash), as Suspects to point-read."""

    def __init__(self, tables: Mapping[str, TablePair], rate: float):
        self._tables = dict(tables)
        self._threshold = int(rate * 2**64)

    def process(self, page: Page):
        table = self._tables[page.table]
        keys = []
        for item in batch_to_items(page.batch):
            key = table.target_key(item)
            if int.from_bytes(key_digest(key, table.key_names)[:8], "big") < self._threshold:
                keys.append(key)
        yield Tally(table.source, "sampled", len(keys))
        for i in range(0, len(keys), MAX_KEYS_PER_REQUEST):
            yield Suspects(table.source, tuple(keys[i:i + MAX_KEYS_PER_REQUEST]), time.time())


@dataclass(frozen=True)
class _Conflicted:
    """A source item the renames cannot map (it holds an attribute and its new name)."""

    item: dict  # source naming
    error: RenameConflict

    def diff(self, target_item: dict | None) -> list[dict]:
        target_item = target_item or {}
        return [{"path": name, "source": self.item[name], "target": target_item.get(name)}
                for name in (self.error.old, self.error.new)]


def _finding(table: str, kind: str, key: dict, source_item, target_item: dict | None) -> dict:
    finding = {"table": table, "kind": kind, "key": encode_item(key)}
    if isinstance(source_item, _Conflicted):  # missing or different: say why it cannot match
        finding["reason"] = f"RenameConflict: {source_item.error}"
    if kind == "different":
        diff = (source_item.diff(target_item) if isinstance(source_item, _Conflicted)
                else attribute_diff(source_item, target_item))
        finding["diff"] = [{"path": d["path"],
                            "source": None if d["source"] is None else encode_value(d["source"]),
                            "target": None if d["target"] is None else encode_value(d["target"])}
                           for d in diff]
    return finding


def _in_target_naming(table: TablePair, item: dict):
    try:
        return table.to_target(item)
    except RenameConflict as exc:
        return _Conflicted(item, exc)


class _ReadBothSidesFn(LoopDoFn):
    """Read suspects on both sides (consistently) and sort them out.

    `first_look` (sampling): a key equal on both sides is a match; a differing one is
    reported, or, with `recheck_seconds`, sent on as new `Suspects` for a second look.
    Otherwise (second look): wait until `recheck_seconds` after the key was found, read
    again; equal by then is lag, anything else is reported. Between the two looks there
    is a Reshuffle, so the waits of many batches overlap instead of adding up.

    `Findings` and `Tally`s from earlier steps pass through unchanged: everything flows down
    one line, because Beam's Dask runner mixes the outputs of a multi-output ParDo.
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, tables: Mapping[str, TablePair],
                 recheck_seconds: float, first_look: bool, max_attempts: int):
        self._source, self._target = source, target
        self._tables = dict(tables)
        self._recheck = recheck_seconds
        self._first_look = first_look
        self._max_attempts = max_attempts

    def open_clients(self):
        self._source_client = self.loop.enter(open_client(self._source))
        self._target_client = self.loop.enter(open_client(self._target))

    def _read_both(self, table: TablePair, keys: list[dict]) -> list[tuple[dict, dict | None, dict | None]]:
        source_keys = [table.to_source_key(k) for k in keys]
        source, target = self.loop.run(self._gather(table, source_keys, keys))
        return [(key, source.get(key_of(key, table.key_names)), target.get(key_of(key, table.key_names)))
                for key in keys]

    async def _gather(self, table: TablePair, source_keys: list[dict], target_keys: list[dict]):
        source, target = await asyncio.gather(
            get_items(self._source_client, table.source, source_keys, table.source_key_names,
                      max_attempts=self._max_attempts),
            get_items(self._target_client, table.target, target_keys, table.key_names,
                      max_attempts=self._max_attempts))
        return {key_of(table.target_key(item), table.key_names): _in_target_naming(table, item)
                for item in source.values()}, target

    @staticmethod
    def _equal(source_item, target_item: dict | None) -> bool:
        if source_item is None or target_item is None:
            return source_item is None and target_item is None
        if isinstance(source_item, _Conflicted):
            return False
        return content_digest(source_item) == content_digest(target_item)

    def process(self, suspects):
        if not isinstance(suspects, Suspects):  # Findings or a Tally from an earlier step
            yield suspects
            return
        table = self._tables[suspects.table]
        if not self._first_look:
            time.sleep(max(0.0, suspects.found_at + self._recheck - time.time()))
        reads = self._read_both(table, list(suspects.keys))
        differing = [read for read in reads if not self._equal(read[1], read[2])]
        if not self._first_look:
            yield from self._report(table, differing, lagging=len(reads) - len(differing))
            return
        yield Tally(table.source, "matched", len(reads) - len(differing))
        if differing and self._recheck:
            yield Suspects(table.source, tuple(k for k, _, _ in differing), time.time())
        else:
            yield from self._report(table, differing, lagging=0)

    def _report(self, table: TablePair, differing, lagging: int):
        if lagging:
            yield Tally(table.source, "lagging", lagging)
        if differing:
            yield Findings(table.source, tuple(
                _finding(table.source, "missing" if target_item is None else "extra" if source_item is None
                         else "different", key, source_item, target_item)
                for key, source_item, target_item in differing))


class CompareTables(beam.PTransform):
    """Full comparison of source and target pages; emits `Findings` and `Tally`s (see the module
    docstring and `transforms.findings`).

    Args:
        source, target: the two endpoints, for the consistent re-reads of suspects.
        pairs: per source table, its target table, key and renames.
        buckets: per source table, how many key-hash buckets its digests are grouped in.
        recheck_seconds: how long after it was found a suspect is read again.
        read_attempts: attempts for each re-read.
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 buckets: Mapping[str, int], *, recheck_seconds: float = 0.0, read_attempts: int = 10):
        super().__init__()
        self._source, self._target, self._pairs, self._buckets = source, target, dict(pairs), dict(buckets)
        self._recheck, self._read_attempts = recheck_seconds, read_attempts

    def display_data(self):
        return {"tables": DisplayDataItem(", ".join(self._pairs), label="Tables"),
                "recheck_seconds": DisplayDataItem(self._recheck, label="Recheck delay (s)")}

    def expand(self, pages):
        source_pages, target_pages = pages
        by_target_name = {t.target: t for t in self._pairs.values()}
        digests = {
            "source": source_pages | "DigestSource" >> beam.ParDo(
                _DigestPagesFn(self._pairs, self._buckets, rename=True)),
            "target": target_pages | "DigestTarget" >> beam.ParDo(
                _DigestPagesFn(by_target_name, self._buckets, rename=False)),
        }
        return (digests
                | "GroupByBucket" >> beam.CoGroupByKey()
                | "CompareBuckets" >> beam.ParDo(_CompareBucketsFn())
                | "SpreadSuspects" >> beam.Reshuffle()
                | "Confirm" >> beam.ParDo(_ReadBothSidesFn(self._source, self._target, self._pairs,
                                                           self._recheck, False, self._read_attempts)))


class SampleTables(beam.PTransform):
    """Spot check: point-read a deterministic share `rate` of the source's keys in the target;
    emits `Findings` and `Tally`s. Other arguments as `CompareTables`."""

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair], *,
                 rate: float, recheck_seconds: float = 0.0, read_attempts: int = 10):
        super().__init__()
        self._source, self._target, self._pairs = source, target, dict(pairs)
        self._rate, self._recheck, self._read_attempts = rate, recheck_seconds, read_attempts

    def display_data(self):
        return {"tables": DisplayDataItem(", ".join(self._pairs), label="Tables"),
                "rate": DisplayDataItem(self._rate, label="Sample rate")}

    def _read_both_sides(self, first_look: bool) -> _ReadBothSidesFn:
        return _ReadBothSidesFn(self._source, self._target, self._pairs, self._recheck, first_look,
                                self._read_attempts)

    def expand(self, source_pages):
        first = (source_pages
                 | "SampleKeys" >> beam.ParDo(_SampleKeysFn(self._pairs, self._rate))
                 | "SpreadSamples" >> beam.Reshuffle()
                 | "PointReads" >> beam.ParDo(self._read_both_sides(True)))
        if not self._recheck:
            return first
        return (first
                | "SpreadRechecks" >> beam.Reshuffle()
                | "Recheck" >> beam.ParDo(self._read_both_sides(False)))
