"""The consistency check: assemble scan -> compare (or sample) into one pipeline and run it.

Thin like `bulk`: the comparison is `transforms.compare`. This module builds the
pipeline from the config, runs it, and gathers the result: counts from Beam metrics,
examples from the findings files the pipeline wrote under
`<checkpoint_dir>/validate/run-<timestamp>/`. On a local runner digests are spilled to
bucket files (`spill/` in that folder, or a temporary folder when checkpoints are not
on local disk), deleted when the run ends.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import RunConfig
from pipeline.runner import pipeline_options, run_pipeline, runs_locally
from pipeline.tables import TablePlan, TableStepError
from transforms.compare import KINDS, CompareTables, SampleTables
from transforms.scan import ScanTables, SegmentSpec
from transforms.state.files import matching

log = logging.getLogger(__name__)

ITEMS_PER_BUCKET = 5000  # grouped by the runner's shuffle: many small buckets spread the work
ITEMS_PER_SPILLED_BUCKET = 50_000  # spilled: fewer files; one bucket (~10 MB) is held at a time
COUNTS = ("matched", "missing", "extra", "different", "lagging", "sampled")


@dataclass
class TableValidation:
    counts: dict[str, int]
    examples: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def differences(self) -> int:
        return sum(self.counts[kind] for kind in KINDS)


@dataclass
class ValidationResult:
    tables: dict[str, TableValidation]
    sample_rate: float | None
    findings_dir: str
    duration_seconds: float

    @property
    def equal(self) -> bool:
        return all(t.differences == 0 for t in self.tables.values())


def bucket_counts(plans: Sequence[TablePlan], items_per_bucket: int = ITEMS_PER_BUCKET) -> dict[str, int]:
    """Per table, how many key-hash buckets its digests are grouped in. Buckets come from
    ItemCount, which DynamoDB refreshes only every few hours, so there are never fewer
    than the scan's segments."""
    return {plan.spec.source: max(plan.segments, math.ceil(plan.item_count * 1.2 / items_per_bucket))
            for plan in plans}


def side_segments(plans: Sequence[TablePlan], side: str) -> list[SegmentSpec]:
    return [SegmentSpec(plan.spec.source if side == "source" else plan.spec.target, s, plan.segments)
            for plan in plans for s in range(plan.segments)]


def build_pipeline(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan], findings_prefix: str, *,
                   sample_rate: float | None, recheck_seconds: float, spill_dir: str | None = None) -> None:
    pairs = {plan.spec.source: plan.pair for plan in plans}
    scan = config.scan_settings()
    source_pages = p | "ScanSource" >> ScanTables(config.source, side_segments(plans, "source"), scan,
                                                  counter_side="source:")
    if sample_rate is not None:
        findings = source_pages | "Sample" >> SampleTables(
            config.source, config.target, pairs, rate=sample_rate, recheck_seconds=recheck_seconds,
            read_attempts=scan.max_attempts)
    else:
        target_pages = p | "ScanTarget" >> ScanTables(config.target, side_segments(plans, "target"), scan,
                                                      counter_side="target:")
        buckets = bucket_counts(plans, ITEMS_PER_SPILLED_BUCKET if spill_dir else ITEMS_PER_BUCKET)
        findings = (source_pages, target_pages) | "Compare" >> CompareTables(
            config.source, config.target, pairs, buckets, recheck_seconds=recheck_seconds,
            read_attempts=scan.max_attempts, spill_dir=spill_dir)
    _ = (findings
         | "ToJson" >> beam.Map(lambda finding: json.dumps(finding, sort_keys=True, ensure_ascii=False))
         | "WriteFindings" >> beam.io.WriteToText(findings_prefix, file_name_suffix=".jsonl"))


def read_findings(findings_dir: str) -> Iterator[dict]:
    """Every finding of a run, streamed from its files."""
    for path in sorted(matching(FileSystems.join(findings_dir, "findings*.jsonl"))):
        with FileSystems.open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def _examples(findings_dir: str, tables: Sequence[str], max_examples: int) -> dict[str, dict[str, list[dict]]]:
    """The first `max_examples` findings per table and kind, in key order (repeatable)."""
    kept: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for finding in read_findings(findings_dir):
        candidates = kept.setdefault((finding["table"], finding["kind"]), [])
        candidates.append((json.dumps(finding["key"], sort_keys=True), finding))
        if len(candidates) > 2 * max_examples + 100:  # trim now and then: memory stays bounded
            candidates.sort(key=lambda c: c[0])
            del candidates[max_examples:]
    return {table: {kind: [f for _, f in sorted(kept.get((table, kind), []), key=lambda c: c[0])[:max_examples]]
                    for kind in KINDS} for table in tables}


def _spill_dir(findings_dir: str) -> str:
    """A local folder for spilled digests: in the run's folder if that is on local disk."""
    if FileSystems.get_scheme(findings_dir) in (None, "file"):
        return os.path.join(findings_dir.removeprefix("file://"), "spill")
    return tempfile.mkdtemp(prefix="alternator-migrate-spill-")


def run_validate(config: RunConfig, plans: Sequence[TablePlan], *, sample_rate: float | None = None,
                 recheck_seconds: float = 0.0, max_examples: int = 20, beam_args: Sequence[str] = (),
                 spill: bool | None = None) -> ValidationResult:
    """Validate the planned tables. `spill`: group digests through local files (default: on
    local runners, whose CoGroupByKey is held in memory) or with CoGroupByKey."""
    missing = [plan.spec.target for plan in plans if not plan.target_exists]
    if missing:
        raise TableStepError(f"target table {missing[0]} does not exist at {config.target.describe()}; "
                             f"run `alternator-migrate migrate` first (or check tables[].target)")
    findings_dir = FileSystems.join(config.checkpoint_dir, "validate", time.strftime("run-%Y%m%dT%H%M%S"))
    started = time.monotonic()
    options = pipeline_options(config, beam_args)
    if spill is None:
        spill = runs_locally(options)
    spill_dir = _spill_dir(findings_dir) if spill and sample_rate is None else None
    p = beam.Pipeline(options=options)
    build_pipeline(p, config, plans, FileSystems.join(findings_dir, "findings"),
                   sample_rate=sample_rate, recheck_seconds=recheck_seconds, spill_dir=spill_dir)
    try:
        counters = run_pipeline(p)
    finally:
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)
    names = [plan.spec.source for plan in plans]
    examples = _examples(findings_dir, names, max_examples)
    tables = {name: TableValidation({kind: counters.get(name, {}).get(kind, 0) for kind in COUNTS},
                                    examples[name]) for name in names}
    return ValidationResult(tables, sample_rate, findings_dir, time.monotonic() - started)
