"""The end-of-run summary: a table for the terminal and a JSON report for machines."""
from __future__ import annotations

import json
import math
from pathlib import Path

from pipeline import exports
from pipeline.bulk import RunResult
from pipeline.config import RunConfig
from pipeline.tables import TablePlan
from pipeline.validate import ValidationResult
from transforms.streams.sample import ChangeSample

_COLUMNS = (("table", "table"), ("target", "target"), ("read", "items_read"), ("written", "items_written"),
            ("retried", "write_retries"), ("dead-lettered", "items_dead_lettered"), ("MB", "bytes_read"),
            ("seconds", "duration"), ("items/s", "rate"))


def _count(value: int | None) -> str:
    """A figure for the terminal; `-` where the runner did not count it."""
    return "-" if value is None else f"{value:,}"


def _row(table) -> dict[str, str]:
    figures = table.figures
    seconds = max(table.duration_seconds, 1e-9)
    return {
        "table": table.table, "target": table.target,
        "items_read": _count(figures["items_read"]), "items_written": _count(figures["items_written"]),
        "write_retries": _count(figures["write_retries"]),
        "items_dead_lettered": _count(figures["items_dead_lettered"]),
        "bytes_read": "-" if figures["bytes_read"] is None else f"{figures['bytes_read'] / 1e6:,.1f}",
        "duration": f"{table.duration_seconds:,.1f}",
        "rate": f"{figures['items_written'] / seconds:,.0f}",
    }


def summary_table(result: RunResult) -> str:
    rows = [_row(t) for t in result.tables]
    widths = {key: max([len(title)] + [len(r[key]) for r in rows]) for title, key in _COLUMNS}
    lines = ["  ".join(title.ljust(widths[key]) if i < 2 else title.rjust(widths[key])
                       for i, (title, key) in enumerate(_COLUMNS))]
    for r in rows:
        lines.append("  ".join(r[key].ljust(widths[key]) if i < 2 else r[key].rjust(widths[key])
                               for i, (_, key) in enumerate(_COLUMNS)))
    lines.append(f"total: {sum(t.figures['items_written'] for t in result.tables):,} items written "
                 f"in {result.duration_seconds:,.1f} s")
    for t in result.tables:
        if t.figures.get("items_expired"):
            lines.append(f"{t.table}: {t.figures['items_expired']:,} expired items left out (skip_expired)")
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
                "read": t.figures["items_read"],
                "written": t.figures["items_written"],
                "retried": None if t.figures["write_retries"] is None
                else t.figures["write_retries"] + t.figures["read_retries"],
                "dead_lettered": t.figures["items_dead_lettered"],
                "expired": t.figures.get("items_expired"),
                "bytes": t.figures["bytes_read"],
                "checkpoint_writes": t.figures["checkpoint_writes"],
                "duration_seconds": round(t.duration_seconds, 3),
            } for t in result.tables
        },
    }


def write_json(path: str, report: dict) -> None:
    Path(path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


READ_UNIT_BYTES = 4096  # a Scan consumes one read unit per 4 KB read (half with eventual consistency)
SCAN_PAGE_BYTES = 1 << 20  # a Scan page holds at most 1 MB of items, whatever its Limit


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:,.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _latency_bound(plan: TablePlan, config: RunConfig) -> tuple[str, float, str]:
    """How long the scan waits on the source's latency: pages x latency / pages in flight
    (each segment has one page in flight at a time, each worker `pages_in_flight` segments)."""
    pages = max(math.ceil(plan.item_count / config.scan.page_size), math.ceil(plan.size_bytes / SCAN_PAGE_BYTES))
    pages += plan.segments  # a segment's last page may hold nothing
    in_flight = min(plan.segments, config.scan.pages_in_flight * config.workers)
    return ("reading", pages * plan.scan_latency / in_flight,
            f"the source's Scan latency, {plan.scan_latency * 1000:,.0f} ms measured: ~{pages:,} pages, "
            f"{in_flight:,} in flight ({config.scan.pages_in_flight} a worker x {config.workers} "
            f"worker{'s' if config.workers > 1 else ''})")


def _copy_times(plan: TablePlan, config: RunConfig) -> tuple[list[tuple[str, float, str]], bool]:
    """(what, seconds, what bounds it) for reading and writing the table: at the configured caps,
    and at the source's measured latency; and whether a cap was set."""
    units = math.ceil(plan.size_bytes / READ_UNIT_BYTES) * (1.0 if config.scan.consistent_read else 0.5)
    times = []
    if config.scan.max_read_units_per_second and plan.exports is None:
        times.append(("reading", units / config.scan.max_read_units_per_second,
                      f"the cap of {config.scan.max_read_units_per_second:,g} read units/s"))
    if config.write.max_items_per_second:
        times.append(("writing", plan.item_count / config.write.max_items_per_second,
                      f"the cap of {config.write.max_items_per_second:,g} items/s"))
    capped = bool(times)
    if plan.scan_latency is not None and plan.exports is None:
        times.append(_latency_bound(plan, config))
    return times, capped


def spool_lines(plan: TablePlan, config: RunConfig, sample: ChangeSample | None, seconds: float) -> list[str]:
    """What capturing the table's changes during its copy costs in the spool, from a sample of its stream."""
    if sample is None:
        return ["  changes during the copy: its stream is off (migrate --streams --enable-streams turns it on)"]
    rate = f"  changes during the copy: ~{sample.per_second:,.1f}/s (its stream sampled for {seconds:g} s)"
    if not sample.changes:
        return [rate + "; none arrived: the spool stays small unless the table gets busier"]
    per_hour = sample.per_second * 3600 * sample.bytes_per_change
    lines = [rate + f"; the spool grows ~{per_hour / 2**20:,.1f} MiB an hour of copy "
                    f"(~{sample.bytes_per_change:,.0f} bytes a change, compressed), assuming that rate holds"]
    times, _ = _copy_times(plan, config)
    if times:
        longest = max(seconds for _, seconds, _ in times)
        lines.append(f"  spool over the copy's estimated ~{_duration(longest)}: ~{per_hour * longest / 3600 / 2**20:,.1f} "
                     f"MiB under checkpoint_dir, deleted once applied")
    return lines

def estimate_lines(plan: TablePlan, config: RunConfig) -> list[str]:
    """What a copy of the table costs in read units, and how long the configured caps and the
    source's latency (where `plan` measured it) make it take.

    From DescribeTable's size, which DynamoDB refreshes every few hours: an estimate."""
    units = math.ceil(plan.size_bytes / READ_UNIT_BYTES) * (1.0 if config.scan.consistent_read else 0.5)
    consistency = "strongly consistent" if config.scan.consistent_read else "eventually consistent"
    lines = [f"  estimate: the scan consumes ~{units:,.0f} read units ({consistency}, 4 KB a unit"
             f"{'' if config.scan.consistent_read else ', half a unit each'})"]
    if plan.exports is not None:
        lines = ["  estimate: read from the export, the source table's read units are not used"]
    times, capped = _copy_times(plan, config)
    for what, seconds, bound in times:
        lines.append(f"  {what} at {bound}: ~{_duration(seconds)}")
    if times:
        lines.append(f"  the copy takes at least ~{_duration(max(seconds for _, seconds, _ in times))} "
                     f"(reading and writing overlap)")
    if not capped:
        lines.append("  no read or write cap is set: the copy runs as fast as the source and target allow "
                     "(scan.max_read_units_per_second, write.max_items_per_second)")
    return lines


def plan_table(plans: list[TablePlan], config: RunConfig,
               samples: dict[str, ChangeSample | None] | None = None, sample_seconds: float = 0.0) -> str:
    """What a run would do, table by table; `samples`: each table's changes sampled from its stream."""
    lines = []
    for plan in plans:
        spec = plan.spec
        action = "exists" if plan.target_exists else (
            "would be created" if spec.create == "if_missing" else "MISSING (create: never)")
        lines.append(f"{spec.source} -> {spec.target} (target {action})")
        lines.append(f"  key: {plan.key}" + (f"  -> target key: {plan.target_key}" if plan.key != plan.target_key
                                               else ""))
        lines.append(f"  items: ~{plan.item_count:,}  size: ~{plan.size_bytes / 1e6:,.1f} MB  "
                     f"segments: {plan.segments}")
        if plan.indexes:
            lines.append(f"  indexes: {', '.join(plan.indexes)}")
        if spec.renames:
            lines.append("  renames: " + ", ".join(f"{a} -> {b}" for a, b in spec.renames.items()))
        lines.extend(exports.plan_lines(plan))
        lines.extend(estimate_lines(plan, config))
        if spec.kinesis_stream_arn:
            lines.append(f"  changes from Kinesis data stream {spec.kinesis_stream_arn} (not sampled)")
        elif samples is not None:
            lines.extend(spool_lines(plan, config, samples.get(spec.source), sample_seconds))
    return "\n".join(lines)


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
        lines.append(f"result: {total:,} differences in {len(differing)} of {len(result.tables)} tables "
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
