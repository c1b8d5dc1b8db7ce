"""Validation's output: findings and counts, written to files that work on every runner.

The comparison emits two kinds of element down one line: findings (dicts: {"table",
"kind", "key", ...}, see `transforms.compare`) and `Tally`s, counts with no finding to
show for them (keys matched, lagging, sampled). `WriteFindings` groups them by file and
writes each file whole, from `process`:

    <folder>/findings-00007.jsonl   findings, one JSON line each (16 files, by key hash)
    <folder>/counts-<table>.json    {"matched": n, "lagging": n, "sampled": n}

The launcher reads its report from these files alone, so it counts right on runners
that keep no metrics (Beam's Dask runner). Beam's `WriteToText` cannot be used there:
it emits its results from `finish_bundle`, which that runner drops, leaving its files
empty. A runner that retries a group rewrites the same file, so nothing counts twice.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.state.files import write_chunks, write_json
from transforms.state.storage import StorageOptions

__all__ = ["Tally", "WriteFindings", "FINDINGS_PATTERN", "COUNTS_PATTERN", "FINDINGS_FILES"]

FINDINGS_FILES = 16
FINDINGS_PATTERN = "findings-*.jsonl"
COUNTS_PATTERN = "counts-*.json"


@dataclass(frozen=True)
class Tally:
    """A count of one table's figure (matched, lagging, sampled), summed by `WriteFindings`."""

    table: str
    figure: str
    count: int


def _by_file(record) -> tuple[tuple[str, object], object]:
    if isinstance(record, Tally):
        return ("counts", record.table), (record.figure, record.count)
    key = json.dumps(record["key"], sort_keys=True).encode("utf-8")
    return ("findings", zlib.crc32(key) % FINDINGS_FILES), record


class _WriteFilesFn(beam.DoFn):
    def __init__(self, folder: str, storage: StorageOptions):
        self._folder = folder
        self._storage = storage

    def setup(self):
        self._storage.install()

    def process(self, group):
        (kind, name), values = group
        if kind == "counts":
            totals: dict[str, int] = {}
            for figure, count in values:
                totals[figure] = totals.get(figure, 0) + count
            write_json(FileSystems.join(self._folder, f"counts-{name}.json"), totals)
            return
        lines = ((json.dumps(finding, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
                 for finding in values)
        write_chunks(FileSystems.join(self._folder, f"findings-{name:05d}.jsonl"), lines)


class WriteFindings(beam.PTransform):
    """Write findings and `Tally`s into a folder (see the module docstring); emits nothing.

    Args:
        folder: the run's findings folder (local, gs:// or s3://).
        storage: the filesystem options for it (S3 endpoint and keys...).
    """

    def __init__(self, folder: str, *, storage: StorageOptions):
        super().__init__()
        self._folder = folder
        self._storage = storage

    def expand(self, records):
        return (records
                | "ByFile" >> beam.Map(_by_file)
                | "GroupByFile" >> beam.GroupByKey()
                | "WriteFiles" >> beam.ParDo(_WriteFilesFn(self._folder, self._storage)))
