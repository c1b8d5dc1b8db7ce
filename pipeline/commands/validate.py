"""The consistency check: assemble scan -> compare (or sample) into one pipeline and run it.

Thin like `bulk`: the comparison is `transforms.compare`. This module builds the
pipeline from the config, runs it, and gathers the result from the files the pipeline
wrote under `<checkpoint_dir>/validate/run-<timestamp>/` (`transforms.findings`): counts
and examples, the same on every runner, with or without metrics. On a local runner
digests are spilled to bucket files (`spill/` in that folder, or a temporary folder when
checkpoints are not on local disk), deleted when the run ends.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.checks.config import RunConfig
from pipeline.checks.launch import pipeline_options, run_pipeline, runs_locally
from pipeline.checks.tables import TablePlan, TableStepError, pairs_by_source
from pipeline.output.progress import ProgressWatcher, Tracked
from pipeline.output.results import TableValidation, ValidationResult
from transforms.compare import KINDS, CompareTables, SampleTables
from transforms.findings import WriteFindings, read_counts, read_findings
from transforms.scan import ScanTables, SegmentSpec
from transforms.state import bulk_checkpoints
from transforms.state.files import delete_tree, run_name, write_json
from transforms.state.storage import StorageOptions

log = logging.getLogger(__name__)

ITEMS_PER_BUCKET = 5000  # grouped by the runner's shuffle: many small buckets spread the work
ITEMS_PER_SPILLED_BUCKET = 50_000  # spilled: fewer files; one bucket (~10 MB) is held at a time
COUNTS = ("matched", *KINDS, "lagging", "sampled", "expired",  # expired: left out by skip_expired
          "over_400kb")  # target items over DynamoDB's item size limit (not counted by a sample)


def bucket_counts(plans: Sequence[TablePlan], items_per_bucket: int = ITEMS_PER_BUCKET) -> dict[str, int]:
    """Per table, how many key-hash buckets its digests are grouped in. Buckets come from
    ItemCount, which DynamoDB refreshes only every few hours, so there are never fewer
    than the scan's segments."""
    return {plan.spec.source: max(plan.segments, math.ceil(plan.item_count * 1.2 / items_per_bucket))
            for plan in plans}


def side_segments(plans: Sequence[TablePlan], side: str) -> list[SegmentSpec]:
    return [SegmentSpec(plan.spec.source if side == "source" else plan.spec.target, s, plan.segments)
            for plan in plans for s in range(plan.segments)]


class _NoteScannedFn(beam.DoFn):
    """Records each page scanned under `progress_dir` (in the bulk checkpoints' format, so
    `ProgressWatcher` shows a validation's progress on every runner), and hands it on."""

    def __init__(self, progress_dir: str, interval_seconds: float, storage: StorageOptions):
        self._dir = progress_dir
        self._interval = interval_seconds
        self._storage = storage

    def setup(self):
        self._storage.install()

    def start_bundle(self):
        self._recorder = bulk_checkpoints.PageRecorder(self._dir, self._interval)

    def process(self, page):
        self._recorder.page_done(page.table, page.segment, page.index, page.start_key, page.next_key,
                                 page.batch.num_rows, page.batch.nbytes)
        yield page

    def finish_bundle(self):
        self._recorder.flush()


def progress_dir(findings_dir: str, side: str) -> str:
    """Where a validation records the pages it scanned of one side (`source`, `target`)."""
    return FileSystems.join(findings_dir, "scanned", side)


def build_pipeline(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan], findings_dir: str, *,
                   sample_rate: float | None, recheck_seconds: float, spill_dir: str | None = None) -> None:
    pairs = pairs_by_source(plans)
    scan = config.scan_settings()
    storage = StorageOptions.of(p.options)

    def note(side: str) -> beam.ParDo:
        return beam.ParDo(_NoteScannedFn(progress_dir(findings_dir, side), config.checkpoint_interval_seconds,
                                         storage))

    source_pages = (p | "ScanSource" >> ScanTables(config.source, side_segments(plans, "source"), scan,
                                                   counter_side="source:")
                    | "NoteSourceScanned" >> note("source"))
    if sample_rate is not None:
        findings = source_pages | "Sample" >> SampleTables(
            config.source, config.target, pairs, rate=sample_rate, recheck_seconds=recheck_seconds,
            read_attempts=scan.max_attempts)
    else:
        target_pages = (p | "ScanTarget" >> ScanTables(config.target, side_segments(plans, "target"), scan,
                                                       counter_side="target:")
                        | "NoteTargetScanned" >> note("target"))
        buckets = bucket_counts(plans, ITEMS_PER_SPILLED_BUCKET if spill_dir else ITEMS_PER_BUCKET)
        findings = (source_pages, target_pages) | "Compare" >> CompareTables(
            config.source, config.target, pairs, buckets, recheck_seconds=recheck_seconds,
            read_attempts=scan.max_attempts, spill_dir=spill_dir)
    _ = findings | "WriteFindings" >> WriteFindings(findings_dir, storage=storage)


def _examples(findings_dir: str, tables: Sequence[str], max_examples: int,
              counts: dict[str, dict[str, int]]) -> dict[str, dict[str, list[dict]]]:
    """The first `max_examples` findings per table and kind, in key order (repeatable);
    counts every finding by kind into `counts` on the way."""
    kept: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for finding in read_findings(findings_dir):
        counts[finding["table"]][finding["kind"]] += 1
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


def _watch_scans(config: RunConfig, plans: Sequence[TablePlan], findings_dir: str, sides: Sequence[str],
                 show_progress: bool) -> ProgressWatcher:
    """Progress of the scans, a line per table and side, from what `_NoteScannedFn` records."""
    tracked = []
    for side in sides:
        folder = progress_dir(findings_dir, side)
        for plan in plans:
            table = plan.spec.source if side == "source" else plan.spec.target
            bulk_checkpoints.start_fresh(folder, table, plan.segments)
            tracked.append(Tracked(f"{table} ({side})", folder, table, plan.item_count))  # the source's count
    return ProgressWatcher(tracked, enabled=show_progress, doing="scanning",
                           window=2 * config.checkpoint_interval_seconds)


def run_validate(config: RunConfig, plans: Sequence[TablePlan], *, sample_rate: float | None = None,
                 recheck_seconds: float = 0.0, max_examples: int = 20, beam_args: Sequence[str] = (),
                 spill: bool | None = None, show_progress: bool = True) -> ValidationResult:
    """Validate the planned tables. `spill`: group digests through local files (default: on
    local runners, whose CoGroupByKey is held in memory) or with CoGroupByKey;
    `show_progress`: the scans' progress on stderr."""
    missing = [plan.spec.target for plan in plans if not plan.target_exists]
    if missing:
        raise TableStepError(f"target table {missing[0]} does not exist at {config.target.describe()}; "
                             f"run `alternator-migrate migrate` first (or check tables[].target)")
    findings_dir = FileSystems.join(config.checkpoint_dir, "validate", run_name())
    started = time.monotonic()
    names = [plan.spec.source for plan in plans]
    # The run's folder holds a note of what it checks from the start (on object stores a
    # folder exists only through its files), so a run without findings leaves its trace too.
    write_json(FileSystems.join(findings_dir, "run.json"),
               {"tables": names, "sample_rate": sample_rate, "recheck_seconds": recheck_seconds})
    options = pipeline_options(config, beam_args)
    if spill is None:
        spill = runs_locally(options)
    spill_dir = _spill_dir(findings_dir) if spill and sample_rate is None else None
    p = beam.Pipeline(options=options)
    build_pipeline(p, config, plans, findings_dir, sample_rate=sample_rate, recheck_seconds=recheck_seconds,
                   spill_dir=spill_dir)
    watcher = _watch_scans(config, plans, findings_dir, ("source",) if sample_rate is not None else
                           ("source", "target"), show_progress)
    watcher.start()
    try:
        run_pipeline(p)
    except BaseException:
        watcher.stop()
        watcher.show_end("stopped")
        raise
    finally:
        if spill_dir is not None:
            shutil.rmtree(spill_dir, ignore_errors=True)
    watcher.stop()
    watcher.show_end("scanned")
    delete_tree(FileSystems.join(findings_dir, "scanned"), depth=4)
    counts = read_counts(findings_dir, names, COUNTS)
    examples = _examples(findings_dir, names, max_examples, counts)
    if sample_rate is not None:  # the target is not scanned
        for table_counts in counts.values():
            table_counts["over_400kb"] = None
    tables = {name: TableValidation(counts[name], examples[name]) for name in names}
    return ValidationResult(tables, sample_rate, findings_dir, time.monotonic() - started)


def describe_dry_run(config: RunConfig, beam_args: Sequence[str], *, sample_rate: float | None,
                     recheck_seconds: float) -> str:
    """`validate --dry-run`: the validation's Dataflow job, built offline from placeholder plans
    and described (`checks.dry_run`)."""
    from pipeline.checks.dry_run import dataflow_job, offline_plans, state_lines  # noqa: PLC0415 - --dry-run only

    plans = offline_plans(config)
    findings_dir = f"{config.checkpoint_dir}/validate/run-<time>"

    def build(p):
        build_pipeline(p, config, plans, findings_dir, sample_rate=sample_rate, recheck_seconds=recheck_seconds)
    title = "validation" + (f" (a {sample_rate:g} sample)" if sample_rate is not None else "")
    return dataflow_job(config, beam_args, build, title=title, streaming=False,
                        state=state_lines(config, f"findings and counts {findings_dir}/"))
