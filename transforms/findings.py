"""Validation's output: findings and counts, written to files that work on every runner.

The comparison emits two kinds of element down one line: `Findings`, the findings of
one batch of re-read keys (dicts: {"table", "kind", "key", ...}, see
`transforms.compare`), and `Tally`s, counts with no finding to show for them (keys
matched, lagging, sampled). `WriteFindings` writes them under the run's folder, and
`read_findings` and `read_counts` read them back (this module is the files' one owner):

    <folder>/findings-<hash of the batch's keys>.jsonl   a batch's findings, one JSON line each
    <folder>/counts-<table>.json                         {"matched": n, "lagging": n, "sampled": n}

Each file is written whole from `process`, and named after what it holds, so a runner
that retries a bundle rewrites the same file and nothing counts twice. Nothing waits in
memory: a batch is written as it comes (at most 100 findings), and the tallies are
summed by a combiner. The launcher reads its report from these files alone, so it counts
right on runners that keep no metrics (Beam's Dask runner). Beam's `WriteToText` cannot
be used there: it emits its results from `finish_bundle`, which that runner drops,
leaving its files empty.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.state.files import matching, read_json, write_bytes, write_json
from transforms.state.paths import file_name
from transforms.state.storage import StorageOptions

__all__ = ["Findings", "Tally", "WriteFindings", "read_findings", "read_counts"]

FINDINGS_PATTERN = "findings-*.jsonl"
COUNTS_PATTERN = "counts-*.json"


@dataclass(frozen=True)
class Findings:
    """The findings of one batch of keys of a table."""

    table: str
    findings: tuple[dict, ...]

    def file_name(self) -> str:
        keys = json.dumps([finding["key"] for finding in self.findings], sort_keys=True).encode("utf-8")
        return f"findings-{hashlib.blake2b(self.table.encode() + b'/' + keys, digest_size=12).hexdigest()}.jsonl"


@dataclass(frozen=True)
class Tally:
    """A count of one table's figure (matched, lagging, sampled), summed by `WriteFindings`."""

    table: str
    figure: str
    count: int


class _WriteFindingsFn(beam.DoFn):
    """Writes each `Findings` to its file; passes the tallies on, keyed by table."""

    def __init__(self, folder: str, storage: StorageOptions):
        self._folder = folder
        self._storage = storage

    def setup(self):
        self._storage.install()

    def process(self, record):
        if isinstance(record, Tally):
            yield record.table, (record.figure, record.count)
            return
        lines = "".join(json.dumps(finding, sort_keys=True, ensure_ascii=False) + "\n" for finding in record.findings)
        write_bytes(FileSystems.join(self._folder, record.file_name()), lines.encode("utf-8"))


class _SumFigures(beam.CombineFn):
    """(figure, count) pairs -> {figure: total}."""

    def create_accumulator(self):
        return {}

    def add_input(self, totals, figure_count):
        figure, count = figure_count
        totals[figure] = totals.get(figure, 0) + count
        return totals

    def merge_accumulators(self, accumulators):
        merged = {}
        for totals in accumulators:
            for figure, count in totals.items():
                merged[figure] = merged.get(figure, 0) + count
        return merged

    def extract_output(self, totals):
        return totals


class _WriteCountsFn(beam.DoFn):
    def __init__(self, folder: str, storage: StorageOptions):
        self._folder = folder
        self._storage = storage

    def setup(self):
        self._storage.install()

    def process(self, table_totals):
        table, totals = table_totals
        write_json(FileSystems.join(self._folder, f"counts-{table}.json"), totals)


class WriteFindings(beam.PTransform):
    """Write `Findings` and `Tally`s into a folder (see the module docstring); emits nothing.

    One line of steps, ending in the counts: Beam's Dask runner runs only what leads to
    the last step.

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
                | "WriteFindings" >> beam.ParDo(_WriteFindingsFn(self._folder, self._storage))
                | "SumCounts" >> beam.CombinePerKey(_SumFigures())
                | "WriteCounts" >> beam.ParDo(_WriteCountsFn(self._folder, self._storage)))


def read_findings(folder: str) -> Iterator[dict]:
    """Every finding written under `folder`, streamed from its files."""
    for path in sorted(matching(FileSystems.join(folder, FINDINGS_PATTERN))):
        with FileSystems.open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def read_counts(folder: str, tables: Sequence[str], figures: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per table (those named, and any other that has counts), the tallies summed under
    `folder`, with every figure of `figures` present (0 where nothing was tallied)."""
    counts = {table: dict.fromkeys(figures, 0) for table in tables}
    for path in matching(FileSystems.join(folder, COUNTS_PATTERN)):
        table = file_name(path)[len("counts-"):-len(".json")]
        counts.setdefault(table, dict.fromkeys(figures, 0)).update(read_json(path))
    return counts
