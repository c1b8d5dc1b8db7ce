"""The bulk copy: assemble scan -> renames -> write into one Beam pipeline and run it.

Thin by design: the work is in `transforms/`. This module decides which segments to
scan (all of them, or what checkpoints say is left), builds the pipeline from plain
arguments, runs it while `progress` watches the checkpoints, and reads the figures
back from Beam's metrics.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.config import RunConfig
from pipeline.progress import ProgressWatcher
from pipeline.tables import TablePlan, worker_count
from transforms import checkpoints
from transforms.arrow_codec import rename_attributes
from transforms.dead_letter import count_dead_letters
from transforms.rate_limit import share_of
from transforms.read_segments import METRICS_NAMESPACE, Page, ScanSegments, SegmentSpec
from transforms.write_alternator import TableRoute, WriteToAlternator

log = logging.getLogger(__name__)

FIGURES = ("items_read", "items_written", "write_retries", "read_retries", "items_dead_lettered",
           "bytes_read")


@dataclass
class TableResult:
    table: str
    target: str
    segments: int
    figures: dict[str, int]
    duration_seconds: float


@dataclass
class RunResult:
    tables: list[TableResult]
    duration_seconds: float
    dead_letters: dict[str, int]
    dead_letter_dir: str

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())


def segment_specs(config: RunConfig, plans: Sequence[TablePlan], resume: bool) -> list[SegmentSpec]:
    """The segments to scan: everything (fresh run) or what checkpoints say is left."""
    specs = []
    for plan in plans:
        table, total = plan.spec.source, plan.segments
        recorded = checkpoints.recorded_segments(config.checkpoint_dir, table) if resume else None
        if recorded is None:
            if resume:
                log.info("%s: no checkpoint found, copying it from the start", table)
            checkpoints.start_fresh(config.checkpoint_dir, table, total)
            specs.extend(SegmentSpec(table, s, total) for s in range(total))
            continue
        points = checkpoints.resume_points(config.checkpoint_dir, table, recorded)
        left = [p for p in points if not p.done]
        log.info("%s: resuming, %d of %d segments left", table, len(left), recorded)
        specs.extend(SegmentSpec(table, p.segment, recorded, p.start_key, p.pages_done) for p in left)
    return specs


def _rename_page(page: Page, renames: Mapping[str, Mapping[str, str]]) -> Page:
    table_renames = renames.get(page.table)
    if not table_renames:
        return page
    return dataclasses.replace(page, batch=rename_attributes(page.batch, table_renames))


def build_pipeline(p: beam.Pipeline, config: RunConfig, plans: Sequence[TablePlan],
                   specs: list[SegmentSpec]) -> None:
    workers = worker_count(dict(config.pipeline_options))
    routes = {plan.spec.source: TableRoute(plan.spec.target, plan.target_key.names) for plan in plans}
    renames = {plan.spec.source: dict(plan.spec.renames) for plan in plans if plan.spec.renames}
    pages = p | "Scan" >> ScanSegments(
        config.source, specs, page_size=config.scan.page_size, consistent_read=config.scan.consistent_read,
        read_units_per_second=share_of(config.scan.max_read_units_per_second, workers),
        max_attempts=config.write.max_attempts)
    if renames:
        pages = pages | "Renames" >> beam.Map(_rename_page, renames)
    _ = pages | "Write" >> WriteToAlternator(
        config.target, routes, batch_size=config.batch_size, concurrency=config.write.concurrency,
        items_per_second=share_of(config.write.max_items_per_second, workers),
        max_attempts=config.write.max_attempts, checkpoint_dir=config.checkpoint_dir,
        dead_letter_dir=config.dead_letter_dir)


def pipeline_options(config: RunConfig, beam_args: Sequence[str]) -> PipelineOptions:
    """The config's pipeline_options, overridden by command-line Beam flags.

    Workers log at WARNING unless asked otherwise: their INFO lines would bury progress.
    """
    options = {"default_sdk_harness_log_level": "WARNING", **dict(config.pipeline_options)}
    return PipelineOptions(list(beam_args), **options)


def read_counters(result) -> dict[str, dict[str, int]]:
    """This tool's Beam counters as {table: {name: value}} (names are `<table>.<name>`)."""
    figures: dict[str, dict[str, int]] = {}
    for counter in result.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        table, _, name = counter.key.metric.name.rpartition(".")
        value = counter.committed if counter.committed is not None else counter.attempted
        figures.setdefault(table, {}).setdefault(name, 0)
        figures[table][name] += int(value or 0)
    return figures


def run_bulk(config: RunConfig, plans: Sequence[TablePlan], *, resume: bool, beam_args: Sequence[str] = (),
             show_progress: bool = True) -> RunResult:
    """Copy every planned table; returns per-table figures (the caller decides the exit code)."""
    specs = segment_specs(config, plans, resume)
    # Each run dead-letters into its own folder, so the count below is this run's alone.
    config = dataclasses.replace(config, dead_letter_dir=FileSystems.join(
        config.dead_letter_dir, time.strftime("run-%Y%m%dT%H%M%S")))
    options = pipeline_options(config, beam_args)
    # The snapshot is a batch job even where `streaming` is set for replication's --follow.
    options.view_as(StandardOptions).streaming = False
    watcher = ProgressWatcher(config.checkpoint_dir, {plan.spec.source: plan for plan in plans},
                              enabled=show_progress)
    started = time.monotonic()
    metrics: dict[str, dict[str, int]] = {}
    watcher.start()
    try:
        if specs:
            p = beam.Pipeline(options=options)
            build_pipeline(p, config, plans, specs)
            result = p.run()
            result.wait_until_finish()
            metrics = read_counters(result)
    finally:
        watcher.stop()
    duration = time.monotonic() - started
    tables = [TableResult(plan.spec.source, plan.spec.target, plan.segments,
                          {name: metrics.get(plan.spec.source, {}).get(name, 0) for name in FIGURES},
                          watcher.finished_after(plan.spec.source, default=duration))
              for plan in plans]
    return RunResult(tables, duration, count_dead_letters(config.dead_letter_dir), config.dead_letter_dir)
