"""Incremental DynamoDB exports applied to the target as full-item puts and deletes.

An incremental export holds, per key changed in its window, one line: the key, the
time of its last write (`Metadata.WriteTimestampMicros`) and its new image (none: the
item was deleted; NEW_AND_OLD_IMAGES also gives the old one, unused). Several exports
can hold the same key, so the change that counts is the latest write, then the later
export (the order the config lists them), then the later line: a combine per key.
The winners are written as puts of the whole new image (renamed for the target) or
deletes of the key, which is right whatever the target held, so the whole step can
be applied again after an interruption.

Runs after every data file of the full export is written, never beside it: a put from
the full export landing after a newer delete would bring the item back. On Beam's local
runners the combine holds every changed key in memory (about the size of the changed
items); on Dataflow it is a shuffle.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

import apache_beam as beam
import orjson
from apache_beam.transforms.display import DisplayDataItem

from transforms import metrics
from transforms.dynamo.endpoints import TargetSpec
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.write_requests import FailedWrite, delete, put, request_item
from transforms.dynamo.writer import WriterSettings, open_writer
from transforms.exports.manifest import DataFile, ExportMismatch
from transforms.exports.read import DataFileFn
from transforms.items.ddb_json import decode_item, encode_item
from transforms.items.renames import RenameConflict
from transforms.metrics import Figure
from transforms.settings import ScanSettings
from transforms.state.dead_letters import write_dead_letters
from transforms.state.storage import StorageOptions
from transforms.table_pair import TablePair

__all__ = ["IncrementalFileSpec", "ApplyIncrementalExports"]

_SORTED = orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class IncrementalFileSpec:
    """One data file of an incremental export; `export` is the export's place in the config's list."""

    table: str
    export: int
    file_number: int
    file: DataFile


def _order(change: tuple) -> tuple:
    """(write time, export, file, line): what decides which change of a key counts."""
    return change[:4]


class _LatestChange(beam.CombineFn):
    """The change of a key that counts (see the module docstring)."""

    def create_accumulator(self):
        return None

    def add_input(self, best, change):
        return change if best is None or _order(change) > _order(best) else best

    def merge_accumulators(self, accumulators):
        best = None
        for candidate in accumulators:
            if candidate is not None:
                best = self.add_input(best, candidate)
        return best

    def extract_output(self, best):
        return best


class _ReadChangesFn(DataFileFn):
    """A data file -> ((table, key text), (micros, export, file, line, keys, new image or None))."""

    def process(self, spec: IncrementalFileSpec):
        read = metrics.counter(spec.table, Figure.CHANGES_READ)
        for first, _end, _last, entries in self.pages(spec.file):
            for offset, entry in enumerate(entries):
                try:
                    keys = entry["Keys"]
                    micros = int(entry["Metadata"]["WriteTimestampMicros"]["N"])
                    image = entry.get("NewImage")
                    key_text = orjson.dumps(keys, option=_SORTED).decode("utf-8")
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise ExportMismatch(
                        f"data file {spec.file.path} line {first + offset + 1}: not an incremental export's line "
                        f"(Metadata.WriteTimestampMicros, Keys, NewImage): {type(exc).__name__} {exc}") from None
                yield ((spec.table, key_text),
                       (micros, spec.export, spec.file_number, first + offset, keys,
                        None if image is None else orjson.dumps(image)))
            read.inc(len(entries))


class _WriteChangesFn(LoopDoFn):
    """Puts and deletes of the winning changes, in batches per table; dead letters for failures."""

    def __init__(self, target: TargetSpec, pairs: Mapping[str, TablePair], settings: WriterSettings,
                 dead_letter_dir: str, storage: StorageOptions):
        self._target = target
        self._pairs = dict(pairs)
        self._settings = settings
        self._dead_letter_dir = dead_letter_dir
        self._storage = storage
        self._flush_at = settings.max_items_per_batch * settings.concurrency

    def open_clients(self):
        self._storage.install()
        self._writer = self.loop.enter(open_writer(self._target, self._settings))
        self._waiting: dict[str, list[dict]] = {}
        self._refused: dict[str, list[FailedWrite]] = {}

    def process(self, element):
        (table, _key_text), (_micros, _export, _file, _line, keys, image) = element
        pair = self._pairs[table]
        item = None if image is None else decode_item(orjson.loads(image))
        if item is None or (pair.expiry is not None and pair.expiry.is_expired(item)):
            # gone, or expired (skip_expired): the key is deleted, as the stream apply does
            request = delete(pair.target_key(decode_item(keys)))
        else:
            try:
                request = put(pair.to_target(item))
            except RenameConflict as exc:
                self._refused.setdefault(table, []).append(FailedWrite(pair.target, put(item),
                                                                       f"RenameConflict: {exc}"))
                return
        waiting = self._waiting.setdefault(table, [])
        waiting.append(request)
        if len(waiting) >= self._flush_at:
            self._flush(table)

    def finish_bundle(self):
        for table in sorted(set(self._waiting) | set(self._refused)):
            self._flush(table)

    def _flush(self, table: str) -> None:
        pair = self._pairs[table]
        requests = self._waiting.pop(table, [])
        failures = self._refused.pop(table, [])
        if requests:
            outcome = self.loop.run(self._writer.write(pair.target, requests, pair.key_names[0]))
            metrics.counter(table, Figure.ITEMS_WRITTEN).inc(len(requests) - len(outcome.failures))
            metrics.counter(table, Figure.WRITE_RETRIES).inc(outcome.retries)
            failures = failures + outcome.failures
        if failures:
            metrics.counter(table, Figure.ITEMS_DEAD_LETTERED).inc(len(failures))
            write_dead_letters(self._dead_letter_dir, failures, name=_letters_name(table, failures))


def _letters_name(table: str, failures: list[FailedWrite]) -> str:
    """A name that depends only on what failed: a bundle the runner retries rewrites its
    dead-letter file instead of adding a second copy of the same letters."""
    digest = hashlib.sha256(table.encode())
    for text in sorted(orjson.dumps(encode_item(request_item(f.request)), option=orjson.OPT_SORT_KEYS)
                       for f in failures):
        digest.update(b"\n" + text)
    return f"incremental-{digest.hexdigest()[:24]}"



class ApplyIncrementalExports(beam.PTransform):
    """Apply incremental exports' changes to the target tables: the latest per key, as a put or a delete.

    Args:
        files: the incremental exports' data files, of one or many tables.
        target: the Alternator cluster (or DynamoDB-API endpoint) to write to.
        pairs: per source table, its target table, key and renames.
        writer_settings: batch size, concurrency, this worker's rate, and attempts.
        dead_letter_dir: where writes that failed after every retry go.
        storage: the filesystem options that reach the exports and the dead-letter folder.
        page_size: lines parsed at a time.
    """

    def __init__(self, files: list[IncrementalFileSpec], target: TargetSpec, pairs: Mapping[str, TablePair],
                 writer_settings: WriterSettings, *, dead_letter_dir: str, storage: StorageOptions,
                 page_size: int = ScanSettings.page_size):
        super().__init__()
        self._files = files
        self._storage = storage
        self._page_size = page_size
        self._write = _WriteChangesFn(target, pairs, writer_settings, dead_letter_dir, storage)
        self._target = target

    def display_data(self):
        return {"files": DisplayDataItem(len(self._files), label="Incremental export data files"),
                "target": DisplayDataItem(self._target.describe(), label="Target")}

    def expand(self, pbegin):
        return (pbegin
                | "IncrementalFiles" >> beam.Create(self._files)
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadChanges" >> beam.ParDo(_ReadChangesFn(self._storage, self._page_size))
                | "LatestPerKey" >> beam.CombinePerKey(_LatestChange())
                | "PutOrDelete" >> beam.ParDo(self._write))
