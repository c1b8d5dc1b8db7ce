"""Compare two tables: digests grouped by key-hash bucket, then a consistent re-read.

    source pages ─► DigestPages ─┐
                                 ├─ CoGroupByKey((table, bucket)) ─► CompareBuckets ─► Suspects
    target pages ─► DigestPages ─┘
    Suspects ─► ReadBothSides (wait recheck_seconds, BatchGetItem both sides) ─► Findings
    (a batch's findings, with `Tally`s of the keys matched, lagging or sampled: `transforms.findings`)

No worker holds more than one bucket of digests (16+16 bytes and a key per item).
Where the runner keeps a CoGroupByKey in memory (the local runners), `spill_dir`
replaces it: digests are appended to bucket files (`state.digest_spill`), and once
both scans are over (the file names are a side input) each bucket is read back and
compared on its own.

    source pages ─► SpillDigests ─┐
                                  ├─ AsMultiMap((table, bucket) ─► files)
    target pages ─► SpillDigests ─┘                 │
    Create((table, bucket) ...) ─► CompareSpilled ◄─┘ ─► Suspects ─► as above
Only the keys whose digests differ are read again, with consistent reads, to tell
real differences (missing, extra, different, with an attribute diff) from replication
lag (different at scan time, equal now). Sampling skips the target scan: a share of
the source keys goes straight to ReadBothSides as point reads.

Every target item DynamoDB would count over its 400 KB item limit is tallied
(`over_400kb`): Alternator holds such items, a rollback cannot write them back.

With a table's `expiry` (skip_expired), items its TTL would delete are left out on both
sides (each side tested in its own naming) and the source's are counted as `expired`, not
missing; a source item expired while the target holds a live copy is extra. The
re-reads apply the same test.

Findings are dicts: {"table", "kind", "key", "diff"} with values in DynamoDB JSON.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.display import DisplayDataItem

from transforms.dynamo.endpoints import SourceSpec, TargetSpec, open_client
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.point_reads import MAX_KEYS_PER_REQUEST, get_items
from transforms.findings import Findings, Tally
from transforms.items.arrow_codec import batch_to_items
from transforms.items.ddb_json import encode_item, encode_value
from transforms.items.digests import attribute_diff, content_digest, key_texts, page_digests, text_digest
from transforms.items.item_size import oversized_rows
from transforms.items.keys import key_of
from transforms.items.renames import RenameConflict, rename_batch
from transforms.page import Page
from transforms.state.digest_spill import BucketFiles, read_records
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


def _live(batch: pa.RecordBatch, table: TablePair, source_side: bool) -> pa.RecordBatch:
    """A page without the items the table's TTL would delete (skip_expired), tested in the side's naming."""
    expiry = table.expiry if source_side else table.target_expiry
    return batch if expiry is None else expiry.split(batch)[0]


def _renamed_page(batch: pa.RecordBatch, table: TablePair, rename: bool):
    """A page's live items in target naming, and its rows the renames cannot map (see renames.rename_batch)."""
    batch = _live(batch, table, source_side=rename)
    return rename_batch(batch, table.renames) if rename else (batch, {})


def _keys(batch: pa.RecordBatch, table: TablePair) -> list[dict]:
    return batch_to_items(batch.select(list(table.key_names)))


def _digested(batch: pa.RecordBatch, table: TablePair, rename: bool) -> list[tuple[bytes, bytes, dict]]:
    """(key digest, content digest, key) of every item of a page, in target naming; an item
    the renames cannot map gets a content digest that equals nothing."""
    batch, conflicts = _renamed_page(batch, table, rename)
    if batch.num_rows == 0:  # (an empty page has no columns, not even its key's)
        return []
    key_digests, contents = page_digests(batch, table.key_names)
    for row in conflicts:
        contents[row] = _CONFLICT  # the key is read again and reported
    return list(zip(key_digests, contents, _keys(batch, table)))


class _DigestPagesFn(beam.DoFn):
    """Page -> ((table, bucket), [(key digest, content digest, key), ...]) per bucket touched."""

    def __init__(self, pairs_by_page_name: Mapping[str, TablePair], buckets: Mapping[str, int], rename: bool):
        self._pairs = dict(pairs_by_page_name)
        self._buckets = dict(buckets)  # by source table
        self._rename = rename

    def _bucketed(self, page: Page):
        """(source table, bucket, (key digest, content digest, key)) of every item of the page."""
        table = self._pairs[page.table]
        buckets = self._buckets[table.source]
        for digest, content, key in _digested(page.batch, table, self._rename):
            yield table.source, _bucket_of(digest, buckets), (digest, content, key)

    def process(self, page: Page):
        groups: dict[tuple[str, int], list] = {}
        for table, bucket, record in self._bucketed(page):
            groups.setdefault((table, bucket), []).append(record)
        yield from groups.items()


class _SpillDigestsFn(_DigestPagesFn):
    """Page -> records appended to bucket files; at the end of a bundle, ((table, bucket), (side, file))."""

    def __init__(self, pairs_by_page_name: Mapping[str, TablePair], buckets: Mapping[str, int], rename: bool,
                 side: str, spill_dir: str):
        super().__init__(pairs_by_page_name, buckets, rename)
        self._side = side
        self._spill_dir = spill_dir

    def start_bundle(self):
        self._files = BucketFiles(os.path.join(self._spill_dir, self._side))

    def process(self, page: Page):
        for table, bucket, (digest, content, key) in self._bucketed(page):
            self._files.add(table, bucket, digest, content, key)

    def finish_bundle(self):
        for where, path in self._files.close():
            yield beam.transforms.window.GlobalWindows.windowed_value((where, (self._side, path)))


def _suspects(table: str, source: Iterable[tuple], target: Iterable[tuple], load_key) -> Iterator[Suspects]:
    """Compare one bucket: (key digest, content digest, key) records of both sides; keys whose
    digests differ (or are on one side only) come out as Suspects, `load_key`-ed."""
    others = {digest: (content, key) for digest, content, key in target}
    suspects = []
    matched = 0
    for digest, content, key in source:
        other = others.pop(digest, None)
        if other is not None and other[0] == content:
            matched += 1
        else:
            suspects.append(load_key(key))
    suspects.extend(load_key(key) for _content, key in others.values())
    yield Tally(table, "matched", matched)
    found_at = time.time()
    for i in range(0, len(suspects), MAX_KEYS_PER_REQUEST):
        yield Suspects(table, tuple(suspects[i:i + MAX_KEYS_PER_REQUEST]), found_at)


class _CompareBucketsFn(beam.DoFn):
    def process(self, element):
        (table, _bucket), sides = element
        yield from _suspects(table, itertools.chain.from_iterable(sides["source"]),
                             itertools.chain.from_iterable(sides["target"]), load_key=lambda key: key)


class _CompareSpilledFn(beam.DoFn):
    """(table, bucket) -> the bucket's spilled records of both sides, compared."""

    def process(self, element, files):
        table, _bucket = element
        spilled = list(files[element])
        yield from _suspects(table, read_records(path for side, path in spilled if side == "source"),
                             read_records(path for side, path in spilled if side == "target"),
                             load_key=pickle.loads)


class _CountExpiredFn(beam.DoFn):
    """Source page -> a `Tally` of its items left out as expired (tables with an expiry only)."""

    def __init__(self, tables: Mapping[str, TablePair]):
        self._tables = {name: table for name, table in tables.items() if table.expiry is not None}

    def process(self, page: Page):
        table = self._tables.get(page.table)
        if table is not None and page.batch.num_rows:
            expired = table.expiry.split(page.batch)[1]
            if expired:
                yield Tally(table.source, "expired", expired)


class _CountOversizedFn(beam.DoFn):
    """Target page -> a `Tally` of its items over DynamoDB's item size limit (`over_400kb`)."""

    def __init__(self, tables: Mapping[str, TablePair]):
        self._sources = {table.target: table.source for table in tables.values()}

    def process(self, page: Page):
        oversized = len(oversized_rows(page.batch))
        if oversized:
            yield Tally(self._sources[page.table], "over_400kb", oversized)


def _with_expired_tally(source_pages, findings, tables: Mapping[str, TablePair]):
    """`findings` joined by the tallies of the source's expired items, when a table skips them."""
    if not any(table.expiry for table in tables.values()):
        return findings
    expired = source_pages | "CountExpired" >> beam.ParDo(_CountExpiredFn(tables))
    return (findings, expired) | "WithExpired" >> beam.Flatten()


class _SampleKeysFn(beam.DoFn):
    """A deterministic share of the source's keys (by key hash), as Suspects to point-read."""

    def __init__(self, tables: Mapping[str, TablePair], rate: float):
        self._tables = dict(tables)
        self._threshold = int(rate * 2**64)

    def process(self, page: Page):
        table = self._tables[page.table]
        batch, _ = _renamed_page(page.batch, table, rename=True)
        chosen = [int.from_bytes(text_digest(text)[:8], "big") < self._threshold
                  for text in key_texts(batch, table.key_names)]
        keys = _keys(batch.filter(pa.array(chosen, pa.bool_())), table) if any(chosen) else []
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


def _never(_item) -> bool:
    return False


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
        source_expired = table.expiry.is_expired if table.expiry else _never
        target_expired = table.target_expiry.is_expired if table.target_expiry else _never
        return ({key_of(table.target_key(item), table.key_names): _in_target_naming(table, item)
                 for item in source.values() if not source_expired(item)},
                {ref: item for ref, item in target.items() if not target_expired(item)})

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
        spill_dir: a local folder to spill digests to, for runners whose workers share this
            machine and whose CoGroupByKey is held in memory; None: group with CoGroupByKey.
    """

    def __init__(self, source: SourceSpec, target: TargetSpec, pairs: Mapping[str, TablePair],
                 buckets: Mapping[str, int], *, recheck_seconds: float = 0.0, read_attempts: int = 10,
                 spill_dir: str | None = None):
        super().__init__()
        self._source, self._target, self._pairs, self._buckets = source, target, dict(pairs), dict(buckets)
        self._recheck, self._read_attempts = recheck_seconds, read_attempts
        self._spill_dir = spill_dir

    def display_data(self):
        return {"tables": DisplayDataItem(", ".join(self._pairs), label="Tables"),
                "recheck_seconds": DisplayDataItem(self._recheck, label="Recheck delay (s)"),
                "grouping": DisplayDataItem("spilled to local files" if self._spill_dir else "CoGroupByKey",
                                            label="Digests grouped by")}

    def _grouped_and_compared(self, source_pages, target_pages):
        by_target_name = {t.target: t for t in self._pairs.values()}
        if self._spill_dir is None:
            digests = {
                "source": source_pages | "DigestSource" >> beam.ParDo(
                    _DigestPagesFn(self._pairs, self._buckets, rename=True)),
                "target": target_pages | "DigestTarget" >> beam.ParDo(
                    _DigestPagesFn(by_target_name, self._buckets, rename=False)),
            }
            return (digests
                    | "GroupByBucket" >> beam.CoGroupByKey()
                    | "CompareBuckets" >> beam.ParDo(_CompareBucketsFn()))
        files = (
            (source_pages | "SpillSource" >> beam.ParDo(
                _SpillDigestsFn(self._pairs, self._buckets, True, "source", self._spill_dir)),
             target_pages | "SpillTarget" >> beam.ParDo(
                _SpillDigestsFn(by_target_name, self._buckets, False, "target", self._spill_dir)))
            | "SpilledFiles" >> beam.Flatten())
        buckets = [(table, bucket) for table, count in sorted(self._buckets.items()) for bucket in range(count)]
        return (source_pages.pipeline
                | "Buckets" >> beam.Create(buckets)
                | "SpreadBuckets" >> beam.Reshuffle()
                | "CompareSpilled" >> beam.ParDo(_CompareSpilledFn(), files=beam.pvalue.AsMultiMap(files)))

    def expand(self, pages):
        source_pages, target_pages = pages
        confirmed = (self._grouped_and_compared(source_pages, target_pages)
                     | "SpreadSuspects" >> beam.Reshuffle()
                     | "Confirm" >> beam.ParDo(_ReadBothSidesFn(self._source, self._target, self._pairs,
                                                                self._recheck, False, self._read_attempts)))
        oversized = target_pages | "CountOver400KB" >> beam.ParDo(_CountOversizedFn(self._pairs))
        findings = (confirmed, oversized) | "WithOver400KB" >> beam.Flatten()
        return _with_expired_tally(source_pages, findings, self._pairs)


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
        if self._recheck:
            first = (first
                     | "SpreadRechecks" >> beam.Reshuffle()
                     | "Recheck" >> beam.ParDo(self._read_both_sides(False)))
        return _with_expired_tally(source_pages, first, self._pairs)
