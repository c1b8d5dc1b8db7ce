"""Tables read from DynamoDB exports instead of scanned: their manifests, checked by the launcher.

A table entry with `export:` (a FULL export's folder) and optionally
`incremental_exports:` is still described at the source (keys, indexes, TTL, tags), but
none of its items are read from there. The manifests are read here, before anything is
written: a missing or unfinished export, another format, manifests that disagree with
each other or with the data files present, or incremental windows that leave a gap, stop
the run with exit 2 and one line naming the file. Each data file of the full export is
one segment of the table's checkpoints, so progress and resume work as for a scan.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping, Sequence

from pipeline.checks import launch
from pipeline.checks.config import RunConfig, TableSpec
from pipeline.checks.tables import TablePlan
from transforms.exports.changes import IncrementalFileSpec
from transforms.exports.manifest import FULL, INCREMENTAL, ExportError, ExportManifest, read_manifest
from transforms.exports.parquet import PARQUET, read_parquet_manifest
from transforms.exports.read import ExportFileSpec, line_of
from transforms.state import bulk_checkpoints
from transforms.state.bulk_checkpoints import SegmentResume
from transforms.state.storage import StorageOptions

__all__ = ["TableExports", "read_table_exports", "read_exports", "with_exports", "file_specs", "plan_lines",
           "incremental_applied", "incremental_specs", "record_applied", "check_streams_follow"]


@dataclass(frozen=True)
class TableExports:
    """A table's full export and the incremental exports applied after it, in order."""

    full: ExportManifest
    incremental: tuple[ExportManifest, ...] = ()


def _time(manifest: ExportManifest, value: str | None, what: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"{manifest.path}/manifest-summary.json: {what} {value!r} is not a time") from None


def _check_order(spec: TableSpec, exports: TableExports) -> None:
    """Each incremental window must start no later than the state before it was taken, or
    the changes in between would be lost."""
    reached, after = _time(exports.full, exports.full.export_time, "exportTime"), exports.full.path
    for manifest in exports.incremental:
        start = _time(manifest, manifest.from_time, "exportFromTime")
        if start > reached:
            raise ExportError(f"{spec.source}: incremental export {manifest.path} starts at {manifest.from_time}, "
                              f"after {after} ends ({reached.isoformat()}): the changes in between are in no export; "
                              f"export that window too, or list the exports in time order")
        reached, after = max(reached, _time(manifest, manifest.export_time, "exportToTime")), manifest.path


def read_table_exports(spec: TableSpec) -> TableExports:
    """The table's exports, read and checked (ExportError, exit 2, for anything unreadable)."""
    if spec.parquet:
        return TableExports(read_parquet_manifest(spec.parquet))
    full = read_manifest(spec.export)
    if full.export_type != FULL:
        raise ExportError(f"tables[].export of {spec.source} is an incremental export ({spec.export}); give the full "
                          f"export there and this one under incremental_exports")
    incremental = tuple(read_manifest(path) for path in spec.incremental_exports)
    for manifest in incremental:
        if manifest.export_type != INCREMENTAL:
            raise ExportError(f"tables[].incremental_exports of {spec.source} lists a full export ({manifest.path}); "
                              f"give it as tables[].export instead")
    exports = TableExports(full, incremental)
    _check_order(spec, exports)
    return exports


def read_exports(config: RunConfig, beam_args: Sequence[str] = ()) -> dict[str, TableExports]:
    """Every configured export, read and checked before the table step creates anything, through
    the job's filesystem options (Beam's S3 options in `pipeline_options`, as for checkpoint_dir)."""
    specs = [spec for spec in config.tables if spec.export or spec.parquet]
    if specs:
        StorageOptions.of(launch.pipeline_options(config, beam_args)).install()
    return {spec.source: read_table_exports(spec) for spec in specs}


def check_streams_follow(found: dict[str, TableExports], captured_since: Mapping[str, float]) -> None:
    """With --streams, the changes since a table's last export come from its capture, which
    holds every change since `captured_since` (epoch seconds; a new capture: the stream's
    retention before now). An export that ends before that would leave the changes in
    between in neither: ExportError (exit 2)."""
    for table, exports in found.items():
        last = (exports.incremental or (exports.full,))[-1]
        ended = _time(last, last.export_time, "exportTime")
        if ended.tzinfo is None:
            ended = ended.replace(tzinfo=timezone.utc)
        covered = datetime.fromtimestamp(captured_since[table], timezone.utc)
        if ended < covered:
            raise ExportError(f"{table}: its last export {last.path} ends at {last.export_time}, before the changes "
                              f"its capture holds (since {covered.isoformat(timespec='seconds')}; the stream keeps "
                              f"a record 24 hours): the changes in between would be lost; take an incremental export "
                              f"up to now (or a new full export), or start `alternator-migrate capture` before the "
                              f"next export, and run again")


def with_exports(plans: Sequence[TablePlan], found: dict[str, TableExports]) -> list[TablePlan]:
    """The plans, those of tables read from exports with their exports (one segment a data file)."""
    out = []
    for plan in plans:
        exports = found.get(plan.spec.source)
        out.append(plan if exports is None else dataclasses.replace(
            plan, exports=exports, segments=max(1, len(exports.full.files)), item_count=exports.full.items))
    return out


def file_specs(plan: TablePlan, points: Sequence[SegmentResume], total_segments: int) -> list[ExportFileSpec]:
    """The full export's data files to read: those `points` leave (each from its first unwritten line)."""
    files = plan.exports.full.files
    if total_segments != len(files) and files:
        raise ExportError(f"{plan.spec.source}: the earlier run read an export of {total_segments} data files, this "
                          f"one has {len(files)}; run again with --restart to copy the table from this export")
    kind = PARQUET if plan.exports.full.export_type == PARQUET else "DYNAMODB_JSON"
    return [ExportFileSpec(plan.spec.source, p.segment, total_segments, files[p.segment], p.pages_done,
                           line_of(p.start_key), kind)
            for p in points if not p.done and p.segment < len(files)]


def incremental_applied(checkpoint_dir: str, spec: TableSpec) -> bool:
    """Whether the table's incremental exports (these ones, in this order) were applied; True if it has none."""
    return bulk_checkpoints.incremental_applied(checkpoint_dir, spec.source, spec.incremental_exports)


def record_applied(checkpoint_dir: str, plans: Sequence[TablePlan]) -> None:
    for plan in plans:
        if plan.spec.incremental_exports:
            bulk_checkpoints.record_incremental_applied(checkpoint_dir, plan.spec.source, plan.spec.incremental_exports)


def incremental_specs(checkpoint_dir: str, plans: Sequence[TablePlan]) -> list[IncrementalFileSpec]:
    """The incremental exports' data files still to apply, of every table."""
    return [IncrementalFileSpec(plan.spec.source, number, file_number, data_file)
            for plan in plans if plan.exports is not None and not incremental_applied(checkpoint_dir, plan.spec)
            for number, manifest in enumerate(plan.exports.incremental)
            for file_number, data_file in enumerate(manifest.files)]


def plan_lines(plan: TablePlan) -> list[str]:
    """What `plan` shows of a table's exports: each export, its time, files and items."""
    exports: TableExports | None = plan.exports
    if exports is None:
        return []
    full = exports.full
    if full.export_type == PARQUET:
        return [f"  from Parquet export {full.path} (not scanned): {len(full.files)} files, {full.items:,} items"]
    lines = [f"  from export {full.path} (not scanned)",
             f"    full, as of {full.export_time}: {len(full.files)} data files, {full.items:,} items"]
    for manifest in exports.incremental:
        lines.append(f"    then incremental {manifest.path}")
        lines.append(f"      {manifest.output_view}, {manifest.from_time} to {manifest.export_time}: "
                     f"{len(manifest.files)} data files, {manifest.items:,} changes")
    return lines
