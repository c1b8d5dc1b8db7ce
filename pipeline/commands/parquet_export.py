"""`alternator-migrate export`: every configured table (source, or target) scanned into Parquet files.

One pipeline: the scan's segments -> the scan's Arrow pages -> `WriteParquet` (the layout
in `transforms/exports/parquet.py`), one folder per table under `--to`; then the launcher
writes each folder's `manifest.json` from the files' footers. Not resumable: a run writes
into empty table folders, and an interrupted one is run again after emptying them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import StandardOptions

from pipeline.checks import tables
from pipeline.checks.config import RunConfig
from pipeline.checks.launch import pipeline_options, run_pipeline
from transforms.errors import MigrateError
from transforms.exports.parquet import ITEM_COLUMN, KeyColumn, WriteParquet, write_manifest
from transforms.scan import ScanTables, SegmentSpec
from transforms.state.files import matching
from transforms.state.storage import StorageOptions

log = logging.getLogger(__name__)

__all__ = ["ExportedTable", "run_export"]


@dataclass(frozen=True)
class ExportedTable:
    table: str
    folder: str
    items: int
    files: int


def _key_columns(key, table: str) -> tuple[KeyColumn, ...]:
    columns = tuple(KeyColumn(name, kind, "HASH" if i == 0 else "RANGE")
                    for i, (name, kind) in enumerate(key.attributes))
    if ITEM_COLUMN in key.names:
        raise MigrateError(f"{table}: a key attribute is named {ITEM_COLUMN!r}, the Parquet layout's item column; "
                           f"rename it with tables[].renames first")
    return columns


def run_export(config: RunConfig, to: str, *, from_target: bool, beam_args: Sequence[str] = ()
               ) -> list[ExportedTable]:
    """Export every configured table into `to/<table>/`; raises MigrateError (exit 2) before
    anything is written for a missing table or a folder that already holds files."""
    plans = tables.plan_tables(config, create=False)
    specs, keys = [], {}
    for plan in plans:
        name = plan.spec.target if from_target else plan.spec.source
        if from_target and not plan.target_exists:
            raise MigrateError(f"target table {name} does not exist at {config.target.describe()}; nothing to export")
        keys[name] = _key_columns(plan.target_key if from_target else plan.key, name)
        if matching(FileSystems.join(to, name, "*")):
            raise MigrateError(f"{FileSystems.join(to, name)} already holds files; export into an empty folder")
        specs.extend(SegmentSpec(name, s, plan.segments) for s in range(plan.segments))
    options = pipeline_options(config, beam_args)
    options.view_as(StandardOptions).streaming = False
    p = beam.Pipeline(options=options)
    _ = (p
         | "Scan" >> ScanTables(config.target if from_target else config.source, specs, config.scan_settings())
         | "Parquet" >> WriteParquet(to, keys, StorageOptions.of(options)))
    run_pipeline(p)
    exported = []
    for name, columns in keys.items():
        manifest = write_manifest(to, name, columns)
        exported.append(ExportedTable(name, FileSystems.join(to, name), manifest["item_count"], len(manifest["files"])))
    return exported
