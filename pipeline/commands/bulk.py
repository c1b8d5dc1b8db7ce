"""The bulk copy: assemble scan -> renames -> write into one Beam pipeline and run it.

Thin by design: the work is in `transforms/`. This module decides which segments to
scan (all of them, or what checkpoints say is left), builds the pipeline from plain
arguments, runs it while `progress` watches the checkpoints, and reads the figures
back from Beam's metrics. On a runner without metrics (Dask) the figures come from the
run's files instead: items from the checkpoints, dead letters from their folder; retries
and bytes are then unknown (None). Renames are applied per item by the writer.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions

from pipeline.checks import dynamodb_exports
from pipeline.checks.config import RunConfig
from pipeline.checks.launch import pipeline_options, run_pipeline
from pipeline.checks.tables import TablePlan, pairs_by_source
from pipeline.output.figures import BULK, SERVED
from pipeline.output.metrics_server import RunMetrics
from pipeline.output.progress import Polled, ProgressWatcher, Tracked
from pipeline.output.results import RunResult, TableResult
from transforms.errors import MigrateError
from transforms.exports.changes import ApplyIncrementalExports, IncrementalFileSpec
from transforms.exports.manifest import DataFile
from transforms.exports.read import ExportFileSpec, ReadExportFiles
from transforms.metrics import Figure
from transforms.scan import ScanTables, SegmentSpec
from transforms.state import bulk_checkpoints, stream_checkpoints
from transforms.state.dead_letters import count_dead_letters, run_folder
from transforms.state.storage import StorageOptions
from transforms.write import WriteTables

log = logging.getLogger(__name__)


def check_earlier_runs(config: RunConfig, *, resume: bool, restart: bool, streams: bool) -> list[str]:
    """Refuse to throw away an unfinished earlier run unless told (--resume or --restart).

    Returns notes to show (a finished earlier run is copied again, and says so); raises
    MigrateError (exit 2, nothing started) for progress a plain re-run would delete.
    """
    if resume or restart:
        return []
    notes = []
    for spec in config.tables:
        earlier = bulk_checkpoints.progress(config.checkpoint_dir, spec.source)
        if earlier is not None and not (earlier.finished
                                        and dynamodb_exports.incremental_applied(config.checkpoint_dir, spec)):
            raise MigrateError(
                f"{spec.source}: an earlier run copied {earlier.items:,} items ({earlier.segments_done} of "
                f"{earlier.total_segments} segment{'s' if earlier.total_segments != 1 else ''} done) and did not "
                f"finish; run the same command with --resume "
                f"to continue it, or with --restart to copy the table again from scratch")
        applied = stream_checkpoints.applied_changes(config.checkpoint_dir, spec.source) if streams else None
        if applied is not None:
            raise MigrateError(
                f"{spec.source}: replication from an earlier `migrate --streams` has checkpoints ({applied:,} "
                f"changes applied); run the same command with --resume to continue it, or with --restart to copy "
                f"the table again and start replication over")
        if earlier is not None:
            notes.append(f"note: {spec.source}: an earlier run finished copying it ({earlier.items:,} items); "
                         f"copying it again from the start")
    return notes


def segment_specs(config: RunConfig, plans: Sequence[TablePlan], resume: bool
                  ) -> list[SegmentSpec | ExportFileSpec]:
    """The segments to scan (or, for a table read from an export, its data files to read):
    everything (fresh run) or what checkpoints say is left."""
    specs = []
    for plan in plans:
        table, total = plan.spec.source, plan.segments
        recorded = bulk_checkpoints.recorded_segments(config.checkpoint_dir, table) if resume else None
        if recorded is None:
            if resume:
                log.info("%s: no checkpoint found, copying it from the start", table)
            bulk_checkpoints.start_fresh(config.checkpoint_dir, table, total)
            points = [bulk_checkpoints.SegmentResume(s, 0, None, False) for s in range(total)]
            before = 0
        else:
            points = [p for p in bulk_checkpoints.resume_points(config.checkpoint_dir, table, recorded) if not p.done]
            log.info("%s: resuming, %d of %d segments left", table, len(points), recorded)
            total = recorded
            before = bulk_checkpoints.progress(config.checkpoint_dir, table).items
        expected, exact = expected_items(plan)
        bulk_checkpoints.note_run(config.checkpoint_dir, table, bulk_checkpoints.RunNote(
            time.time(), before, expected, exact))
        if plan.exports is not None:
            specs.extend(dynamodb_exports.file_specs(plan, points, total))
        else:
            specs.extend(SegmentSpec(table, p.segment, total, p.start_key, p.pages_done) for p in points)
    return specs


def expected_items(plan: TablePlan) -> tuple[int, bool]:
    """The items a table's copy should reach, and whether that is exact: an export's manifest
    counts them, DescribeTable's ItemCount (refreshed about every 6 hours) estimates them."""
    return plan.item_count, plan.exports is not None


def build_pipeline(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan],
                   specs: list[SegmentSpec | ExportFileSpec]) -> None:
    pairs = pairs_by_source(plans)
    storage = StorageOptions.of(p.options)
    segments = [spec for spec in specs if isinstance(spec, SegmentSpec)]
    files = [spec for spec in specs if isinstance(spec, ExportFileSpec)]
    sources = []
    if segments or not files:
        sources.append(p | "Scan" >> ScanTables(config.source, segments, config.scan_settings()))
    if files:
        sources.append(p | "ReadExports" >> ReadExportFiles(files, storage, config.scan.page_size,
                                                            config.files_in_flight, config.workers))
    pages = sources[0] if len(sources) == 1 else tuple(sources) | "Pages" >> beam.Flatten()
    _ = (pages
         | "Write" >> WriteTables(config.target, pairs, config.writer_settings(),
                                  checkpoint_dir=config.checkpoint_dir, dead_letter_dir=config.dead_letter_dir,
                                  checkpoint_seconds=config.checkpoint_interval_seconds,
                                  storage=storage))


def build_incremental_pipeline(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan],
                               files: list[IncrementalFileSpec]) -> None:
    """The step after the full exports are written: their incremental exports, as puts and deletes."""
    pairs = pairs_by_source(plans)
    _ = p | "ApplyIncrementalExports" >> ApplyIncrementalExports(
        files, config.target, pairs, config.writer_settings(), dead_letter_dir=config.dead_letter_dir,
        storage=StorageOptions.of(p.options), page_size=config.scan.page_size)


def _sum_figures(a: dict[str, dict[str, int]] | None, b: dict[str, dict[str, int]] | None
                 ) -> dict[str, dict[str, int]] | None:
    """Two pipelines' counters added up (None: a runner without metrics)."""
    if a is None or b is None:
        return None
    out = {table: dict(figures) for table, figures in a.items()}
    for table, figures in b.items():
        for name, value in figures.items():
            out.setdefault(table, {})[name] = out.get(table, {}).get(name, 0) + value
    return out


def _figures_from_files(copied: int, dead_lettered: int) -> dict[Figure, int | None]:
    """A table's figures where the runner keeps no metrics: what the checkpoints recorded
    as copied by this run (written or dead-lettered) and the run's dead letters."""
    unknown = dict.fromkeys(BULK)  # retries, bytes, checkpoint writes: only the metrics know them
    return {**unknown, Figure.ITEMS_READ: copied, Figure.ITEMS_WRITTEN: copied - dead_lettered,
            Figure.ITEMS_DEAD_LETTERED: dead_lettered}


def _metrics_updater(config: RunConfig, plans: Sequence[TablePlan], metrics: RunMetrics):
    """What a progress poll tells the metrics: items and bytes done by the checkpoints (less the
    dead letters so far, for items written: this run's folder, listed at each poll only when
    metrics are kept), and segments done."""
    def update(polled: dict[str, Polled]) -> None:
        dead = count_dead_letters(config.dead_letter_dir)
        for plan in plans:
            lettered, figures = dead.get(plan.spec.target, 0), polled[plan.spec.source]
            metrics.set(plan.spec.source, items_read=figures.items, bytes_read=figures.bytes,
                        items_written=max(figures.items - lettered, 0), items_dead_lettered=lettered,
                        segments_done=figures.segments_done, segments_total=figures.segments_total)
    return update


def _final_metrics(metrics: RunMetrics, tables: Sequence[TableResult]) -> None:
    """The served figures the copy counted (a runner without metrics leaves some unknown)."""
    for table in tables:
        metrics.set(table.table, **{figure: table.figures[figure] for figure in SERVED
                                    if table.figures.get(figure) is not None})


def run_bulk(config: RunConfig, plans: Sequence[TablePlan], *, resume: bool, beam_args: Sequence[str] = (),
             show_progress: bool = True, run_metrics: RunMetrics | None = None,
             annotate: Callable[[str], str] | None = None) -> RunResult:
    """Copy every planned table; returns per-table figures (the caller decides the exit code).
    `run_metrics`: where the run's figures are served while it runs (`--metrics-port`);
    `annotate`: more to say on a table's progress line (the capture beside the copy)."""
    specs = segment_specs(config, plans, resume)
    # Each run dead-letters into its own folder, so the count below is this run's alone.
    config = dataclasses.replace(config, dead_letter_dir=run_folder(config.dead_letter_dir))
    options = pipeline_options(config, beam_args)
    # The snapshot is a batch job even where `streaming` is set for replication's --follow.
    options.view_as(StandardOptions).streaming = False
    if run_metrics is not None:
        run_metrics.add_tables({plan.spec.source: plan.spec.target for plan in plans})
    watcher = ProgressWatcher([Tracked(plan.spec.source, config.checkpoint_dir, plan.spec.source, *expected_items(plan))
                               for plan in plans],
                              enabled=show_progress, annotate=annotate, window=2 * config.checkpoint_interval_seconds,
                              on_poll=_metrics_updater(config, plans, run_metrics) if run_metrics else None)
    started = time.monotonic()
    metrics: dict[str, dict[str, int]] | None = {}
    watcher.start()
    try:
        if specs:
            p = beam.Pipeline(options=options)
            build_pipeline(p, config, plans, specs)
            metrics = run_pipeline(p)
        changes = dynamodb_exports.incremental_specs(config.checkpoint_dir, plans)
        if changes:  # only once every full export is written: see transforms/exports/changes.py
            log.info("applying %d data files of incremental exports", len(changes))
            p = beam.Pipeline(options=options)
            build_incremental_pipeline(p, config, plans, changes)
            metrics = _sum_figures(metrics, run_pipeline(p))
            dynamodb_exports.record_applied(config.checkpoint_dir, plans)
    except BaseException:
        watcher.stop()  # an interrupted or failed run ends on its own line, not on a progress block
        raise
    watcher.stop()
    duration = time.monotonic() - started
    dead_letters = count_dead_letters(config.dead_letter_dir)
    tables = [TableResult(plan.spec.source, plan.spec.target, plan.segments,
                          {figure: metrics.get(plan.spec.source, {}).get(figure, 0) for figure in BULK}
                          if metrics is not None else
                          _figures_from_files(watcher.copied(plan.spec.source), dead_letters.get(plan.spec.target, 0)),
                          watcher.finished_after(plan.spec.source, default=duration))
              for plan in plans]
    watcher.show_end("done", {t.table: (t.figures[Figure.ITEMS_WRITTEN], t.duration_seconds) for t in tables})
    if run_metrics is not None:
        _final_metrics(run_metrics, tables)
    return RunResult(tables, duration, dead_letters, config.dead_letter_dir)


# --- migrate --dry-run ----------------------------------------------------------------------

PLACEHOLDER_FILE = DataFile("<data file, found at run time>", 0, "")


def offline_specs(plans: Sequence[TablePlan]) -> list[SegmentSpec | ExportFileSpec]:
    """What the bulk copy reads, without reading any manifest: a table's segments, or one
    placeholder data file for a table read from an export or a Parquet folder."""
    specs: list[SegmentSpec | ExportFileSpec] = []
    for plan in plans:
        if plan.spec.export or plan.spec.parquet:
            specs.append(ExportFileSpec(plan.spec.source, 0, 1, PLACEHOLDER_FILE,
                                        format="PARQUET" if plan.spec.parquet else "DYNAMODB_JSON"))
        else:
            specs.extend(SegmentSpec(plan.spec.source, segment, plan.segments) for segment in range(plan.segments))
    return specs


def describe_dry_run(config: RunConfig, beam_args: Sequence[str]) -> str:
    """`migrate --dry-run`: the bulk copy's Dataflow job, then the incremental exports' where a
    table has some, built offline from placeholder plans and described (`checks.dry_run`)."""
    from pipeline.checks.dry_run import dataflow_job, offline_plans, state_lines  # noqa: PLC0415 - --dry-run only

    plans = offline_plans(config)
    texts = [dataflow_job(config, beam_args, lambda p: build_pipeline(p, config, plans, offline_specs(plans)),
                          title="bulk copy", streaming=False,
                          state=state_lines(config, f"bulk checkpoints {config.checkpoint_dir}/bulk/<table>/"))]
    incremental = [IncrementalFileSpec(plan.spec.source, n, 0, PLACEHOLDER_FILE) for plan in plans
                   for n, _ in enumerate(plan.spec.incremental_exports)]
    if incremental:
        texts.append(dataflow_job(config, beam_args,
                                  lambda p: build_incremental_pipeline(p, config, plans, incremental),
                                  title="incremental exports (after the bulk copy)", streaming=False,
                                  state=state_lines(config, "a marker once applied "
                                                    f"{config.checkpoint_dir}/bulk/<table>/incremental-applied.json")))
    return "\n\n".join(texts)
