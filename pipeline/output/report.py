"""The end-of-run summary: a table for the terminal and a JSON report for machines."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from pipeline.checks import dynamodb_exports
from pipeline.checks.config import RunConfig
from pipeline.checks.tables import TablePlan
from pipeline.output.progress import per_second
from transforms.metrics import Figure

if TYPE_CHECKING:
    from pipeline.output.results import RunResult, ValidationResult
    from transforms.streams.sample import ChangeSample

#: The end-of-run table's columns: (title, key of a row).
_COLUMNS = (("table", "table"), ("target", "target"), ("read", Figure.ITEMS_READ), ("written", Figure.ITEMS_WRITTEN),
            ("retried", Figure.WRITE_RETRIES), ("dead-lettered", Figure.ITEMS_DEAD_LETTERED),
            ("MB", Figure.BYTES_READ), ("seconds", "duration"), ("items/s", "rate"))


def _count(value: int | None) -> str:
    """A figure for the terminal; `-` where the runner did not count it."""
    return "-" if value is None else f"{value:,}"


def _row(table) -> dict[str, str]:
    figures = table.figures
    counted = (Figure.ITEMS_READ, Figure.ITEMS_WRITTEN, Figure.WRITE_RETRIES, Figure.ITEMS_DEAD_LETTERED)
    return {
        "table": table.table, "target": table.target,
        **{figure: _count(figures[figure]) for figure in counted},
        Figure.BYTES_READ: "-" if figures[Figure.BYTES_READ] is None else f"{figures[Figure.BYTES_READ] / 1e6:,.1f}",
        "duration": f"{table.duration_seconds:,.1f}",
        "rate": f"{per_second(figures[Figure.ITEMS_WRITTEN], table.duration_seconds):,.0f}",
    }


def summary_table(result: RunResult) -> str:
    rows = [_row(t) for t in result.tables]
    widths = {key: max([len(title)] + [len(r[key]) for r in rows]) for title, key in _COLUMNS}
    lines = ["  ".join(title.ljust(widths[key]) if i < 2 else title.rjust(widths[key])
                       for i, (title, key) in enumerate(_COLUMNS))]
    for r in rows:
        lines.append("  ".join(r[key].ljust(widths[key]) if i < 2 else r[key].rjust(widths[key])
                               for i, (_, key) in enumerate(_COLUMNS)))
    lines.append(f"total: {sum(t.figures[Figure.ITEMS_WRITTEN] for t in result.tables):,} items written "
                 f"in {result.duration_seconds:,.1f} s")
    for t in result.tables:
        if t.figures.get(Figure.ITEMS_EXPIRED):
            lines.append(f"{t.table}: {t.figures[Figure.ITEMS_EXPIRED]:,} expired items left out (skip_expired)")
    return "\n".join(lines)


def report_json(result: RunResult) -> dict:
    return {
        "ok": result.dead_lettered == 0,
        "duration_seconds": round(result.duration_seconds, 3),
        "dead_letter": {"count": result.dead_lettered, "dir": result.dead_letter_dir},
        "tables": {
            t.table: {
                "target": t.target,
                "segments": t.segments,
                "read": t.figures[Figure.ITEMS_READ],
                "written": t.figures[Figure.ITEMS_WRITTEN],
                "retried": None if t.figures[Figure.WRITE_RETRIES] is None
                else t.figures[Figure.WRITE_RETRIES] + t.figures[Figure.READ_RETRIES],
                "dead_lettered": t.figures[Figure.ITEMS_DEAD_LETTERED],
                "expired": t.figures.get(Figure.ITEMS_EXPIRED),
                "bytes": t.figures[Figure.BYTES_READ],
                "checkpoint_writes": t.figures[Figure.CHECKPOINT_WRITES],
                "duration_seconds": round(t.duration_seconds, 3),
            } for t in result.tables
        },
    }


def write_json(path: str, report: dict) -> None:
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


READ_UNIT_BYTES = 4096  # a Scan consumes one read unit per 4 KB read (half with eventual consistency)
SCAN_PAGE_BYTES = 1 << 20  # a Scan page holds at most 1 MB of items, whatever its Limit
NO_CAP_NOTE = ("note: no read or write cap is set: the copy runs as fast as the source and target allow "
               "(scan.max_read_units_per_second, write.max_items_per_second)")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"~{seconds:,.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:,.0f} min"
    return f"~{seconds / 3600:,.1f} h"


def _read_units(plan: TablePlan, config: RunConfig) -> float:
    return math.ceil(plan.size_bytes / READ_UNIT_BYTES) * (1.0 if config.scan.consistent_read else 0.5)


def _pages(plan: TablePlan, config: RunConfig) -> int:
    """Scan pages of the table, a segment's last (maybe empty) page included."""
    pages = max(math.ceil(plan.item_count / config.scan.page_size), math.ceil(plan.size_bytes / SCAN_PAGE_BYTES))
    return pages + plan.segments


@dataclass(frozen=True)
class CopyEstimate:
    """How long the whole copy takes, from DescribeTable's sizes (refreshed every few hours).

    Every table is copied by one job whose caps (`scan.max_read_units_per_second`,
    `write.max_items_per_second`) and pages in flight are the job's, shared by its tables,
    so the estimate is of the whole copy, not per table."""

    read_units: float
    bounds: tuple[tuple[str, float, str], ...]  # (what, seconds, what bounds it)
    capped: bool

    @property
    def seconds(self) -> float | None:
        """At least this long: reading and writing overlap, so the slowest bound."""
        return max((seconds for _, seconds, _ in self.bounds), default=None)


def copy_estimate(plans: Sequence[TablePlan], config: RunConfig) -> CopyEstimate:
    scanned = [plan for plan in plans if plan.exports is None]
    units = sum(_read_units(plan, config) for plan in scanned)
    bounds = []
    read_cap, write_cap = config.scan.max_read_units_per_second, config.write.max_items_per_second
    if read_cap and scanned:
        bounds.append(("reading", units / read_cap, f"the cap of {read_cap:,g} read units/s"))
    if write_cap:
        bounds.append(("writing", sum(plan.item_count for plan in plans) / write_cap,
                       f"the cap of {write_cap:,g} items/s"))
    measured = [plan for plan in scanned if plan.scan_latency is not None]
    if measured:
        pages = sum(_pages(plan, config) for plan in measured)
        in_flight = min(sum(plan.segments for plan in measured), config.scan.pages_in_flight * config.workers)
        waited = sum(_pages(plan, config) * plan.scan_latency for plan in measured)
        latencies = sorted({round(plan.scan_latency * 1000) for plan in measured})
        shown = f"{latencies[0]:,}" if len(latencies) == 1 else f"{latencies[0]:,}-{latencies[-1]:,}"
        bounds.append(("reading", waited / in_flight,
                       f"the source's Scan latency, {shown} ms measured: ~{pages:,} pages, {in_flight:,} in flight "
                       f"({config.scan.pages_in_flight} a worker x {config.workers} "
                       f"worker{'s' if config.workers > 1 else ''})"))
    return CopyEstimate(units, tuple(bounds), bool(read_cap and scanned) or bool(write_cap))


def estimate_lines(estimate: CopyEstimate, tables: int) -> list[str]:
    """The whole copy's estimate (see `CopyEstimate`)."""
    lines = [f"estimate for the copy ({tables} table{'s' if tables != 1 else ''} in one job, which shares the caps):"]
    if estimate.read_units:
        scans = "the scans consume" if tables != 1 else "the scan consumes"
        lines.append(f"  {scans} ~{estimate.read_units:,.0f} read units")
    for what, seconds, bound in estimate.bounds:
        lines.append(f"  {what} at {bound}: {_duration(seconds)}")
    if estimate.seconds is not None:
        least = "under 1 s" if estimate.seconds < 1 else f"at least {_duration(estimate.seconds)}"
        lines.append(f"  the copy takes {least} (reading and writing overlap)")
    if not estimate.capped:
        lines.append(NO_CAP_NOTE)
    return lines


def spool_lines(sample: ChangeSample | str | None, seconds: float, copy_seconds: float | None) -> list[str]:
    """What capturing a table's changes during the copy costs in the spool, from a sample of its
    stream (None: the stream is off; a text: why it could not be sampled)."""
    if sample is None:
        return ["  changes during the copy: its stream is off (migrate --streams --enable-streams turns it on)"]
    if isinstance(sample, str):
        return [f"  changes during the copy: its stream could not be sampled ({sample}); migrate --streams needs "
                f"to read it (docs/permissions.md)"]
    rate = f"  changes during the copy: ~{sample.per_second:,.1f}/s (its stream sampled for {seconds:g} s)"
    if not sample.changes:
        return [rate + "; none arrived: the spool stays small unless the table gets busier"]
    per_hour = sample.per_second * 3600 * sample.bytes_per_change
    lines = [rate + f"; the spool grows ~{per_hour / 2**20:,.1f} MiB an hour of copy "
                    f"(~{sample.bytes_per_change:,.0f} bytes a change, compressed), assuming that rate holds"]
    if copy_seconds is not None:
        lines.append(f"  spool over the copy's estimated {_duration(copy_seconds)}: "
                     f"~{per_hour * copy_seconds / 3600 / 2**20:,.1f} MiB under checkpoint_dir, deleted once applied")
    return lines


def _target_state(plan: TablePlan) -> str:
    return "exists" if plan.target_exists else (
        "would be created" if plan.spec.create == "if_missing" else "MISSING (create: never)")


def plan_table(plans: list[TablePlan], config: RunConfig,
               samples: dict[str, ChangeSample | str | None] | None = None, sample_seconds: float = 0.0) -> str:
    """What a run would do, table by table, then the copy's estimate; `samples`: each table's
    changes sampled from its stream."""
    estimate = copy_estimate(plans, config)
    lines = []
    for plan in plans:
        spec = plan.spec
        lines.append(f"{spec.source} -> {spec.target} (target {_target_state(plan)})")
        lines.append(f"  key: {plan.key}" + (f"  -> target key: {plan.target_key}" if plan.key != plan.target_key
                                               else ""))
        lines.append(f"  items: ~{plan.item_count:,}  size: ~{plan.size_bytes / 1e6:,.1f} MB  "
                     f"segments: {plan.segments}")
        if plan.indexes:
            lines.append(f"  indexes: {', '.join(plan.indexes)}")
        if spec.renames:
            lines.append("  renames: " + ", ".join(f"{a} -> {b}" for a, b in spec.renames.items()))
        lines.extend(dynamodb_exports.plan_lines(plan))
        if plan.exports is None:
            consistency = "strongly consistent" if config.scan.consistent_read else "eventually consistent"
            lines.append(f"  scan: ~{_read_units(plan, config):,.0f} read units ({consistency}, 4 KB a unit"
                         f"{'' if config.scan.consistent_read else ', half a unit each'})")
        else:
            lines.append("  read from the export: the source table's read units are not used")
        if spec.kinesis_stream_arn:
            lines.append(f"  changes from Kinesis data stream {spec.kinesis_stream_arn}")
        if samples is not None:
            lines.extend(spool_lines(samples.get(spec.source), sample_seconds, estimate.seconds))
    lines.extend(estimate_lines(estimate, len(plans)))
    return "\n".join(lines)


def plan_json(plans: list[TablePlan], config: RunConfig, samples: dict[str, ChangeSample | None] | None,
              warnings: Sequence[str]) -> dict:
    """`plan --output json`: what `plan_table` shows, for machines."""
    estimate = copy_estimate(plans, config)

    def key(schema) -> list[dict]:
        return [{"name": name, "type": kind} for name, kind in schema.attributes]

    def sampled(table: str) -> dict | None:
        if samples is None:
            return None
        sample = samples.get(table)
        if isinstance(sample, str):  # the stream could not be read
            return {"stream": True, "error": sample, "changes_per_second": None, "bytes_per_change": None}
        return {"stream": sample is not None,
                "changes_per_second": None if sample is None else round(sample.per_second, 3),
                "bytes_per_change": None if sample is None else sample.bytes_per_change}

    return {
        "source": config.source.describe(), "target": config.target.describe(),
        "tables": [{"source": plan.spec.source, "target": plan.spec.target,
                    "target_table": "exists" if plan.target_exists else (
                        "would_be_created" if plan.spec.create == "if_missing" else "missing"),
                    "key": key(plan.key), "target_key": key(plan.target_key), "items": plan.item_count,
                    "size_bytes": plan.size_bytes, "segments": plan.segments, "indexes": list(plan.indexes),
                    "renames": dict(plan.spec.renames),
                    "read_units": None if plan.exports is not None else _read_units(plan, config),
                    "exports": [line.strip() for line in dynamodb_exports.plan_lines(plan)],
                    "scan_latency_seconds": plan.scan_latency, "changes": sampled(plan.spec.source)}
                   for plan in plans],
        "estimate": {"read_units": estimate.read_units, "capped": estimate.capped,
                     "bounds": [{"what": what, "seconds": round(seconds, 3), "bound": bound}
                                for what, seconds, bound in estimate.bounds],
                     "at_least_seconds": None if estimate.seconds is None else round(estimate.seconds, 3)},
        "warnings": list(warnings),
    }


# --- validation ---------------------------------------------------------------------------

def _show_value(value: dict | None) -> str:
    """One DynamoDB JSON value for people: S "Paris", N 1.5, absent."""
    if value is None:
        return "absent"
    (tag, inner), = value.items()
    if tag in ("S", "N", "B"):
        return f'{tag} {json.dumps(inner, ensure_ascii=False) if tag == "S" else inner}'
    return f"{tag} {json.dumps(inner, ensure_ascii=False, separators=(',', ':'))}"


def _show_key(key: dict) -> str:
    return ", ".join(f"{name}={_show_value(value)}" for name, value in key.items())


#: The counts a validation shows per table, in its table and its JSON report.
_SHOWN_COUNTS = ("matched", "missing", "extra", "different", "lagging", "expired", "over_400kb")


def _cell(text: str, column: str) -> str:
    """`text` right-aligned in a column at least as wide as its name."""
    return text.rjust(max(9, len(column)))


def validation_table(result: ValidationResult) -> str:
    width = max([5] + [len(name) for name in result.tables])
    lines = [f"{'table'.ljust(width)}  " + "  ".join(_cell(k, k) for k in _SHOWN_COUNTS)]
    for name, table in result.tables.items():  # a count not taken (over_400kb in a sample) shows as "-"
        lines.append(f"{name.ljust(width)}  " + "  ".join(
            _cell("-" if table.counts[k] is None else f"{table.counts[k]:,}", k) for k in _SHOWN_COUNTS))
        for kind, examples in table.examples.items():
            for finding in examples:
                line = f"  {kind:<9} {_show_key(finding['key'])}"
                if finding.get("reason"):
                    line += f" ({finding['reason']})"
                if finding.get("diff"):
                    line += ": " + "; ".join(f"{d['path']}: {_show_value(d['source'])} vs {_show_value(d['target'])}"
                                             for d in finding["diff"])
                lines.append(line)
    differing = [name for name, t in result.tables.items() if t.differences]
    scope = f"a {result.sample_rate:g} sample of " if result.sample_rate is not None else ""
    if differing:
        total = sum(result.tables[name].differences for name in differing)
        lines.append(f"result: {total:,} difference{'s' if total != 1 else ''} in {len(differing)} of "
                     f"{len(result.tables)} table{'s' if len(result.tables) != 1 else ''} "
                     f"({scope}source vs target); all findings in {result.findings_dir}")
    else:
        lines.append(f"result: {scope}every table matches")
    return "\n".join(lines)


def validation_json(result: ValidationResult) -> dict:
    report = {"equal": result.equal, "sample_rate": result.sample_rate,
              "duration_seconds": round(result.duration_seconds, 3), "findings_dir": result.findings_dir,
              "tables": {}}
    for name, table in result.tables.items():
        entry = {kind: table.counts[kind] for kind in _SHOWN_COUNTS}
        if result.sample_rate is not None:
            entry["sampled"] = table.counts["sampled"]
            entry["extra_checked"] = False  # a sample reads source keys only
        entry["examples"] = {kind: [{k: v for k, v in f.items() if k in ("key", "diff", "reason")} for f in examples]
                             for kind, examples in table.examples.items()}
        report["tables"][name] = entry
    return report
