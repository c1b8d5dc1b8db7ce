"""The end-of-run summary: a table for the terminal and a JSON report for machines."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.bulk import RunResult
from pipeline.tables import TablePlan

_COLUMNS = (("table", "table"), ("target", "target"), ("read", "items_read"), ("written", "items_written"),
            ("retried", "write_retries"), ("dead-lettered", "items_dead_lettered"), ("MB", "bytes_read"),
            ("seconds", "duration"), ("items/s", "rate"))


def _row(table) -> dict[str, str]:
    figures = table.figures
    seconds = max(table.duration_seconds, 1e-9)
    return {
        "table": table.table, "target": table.target,
        "items_read": f"{figures['items_read']:,}", "items_written": f"{figures['items_written']:,}",
        "write_retries": f"{figures['write_retries']:,}",
        "items_dead_lettered": f"{figures['items_dead_lettered']:,}",
        "bytes_read": f"{figures['bytes_read'] / 1e6:,.1f}",
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
                "retried": t.figures["write_retries"] + t.figures["read_retries"],
                "dead_lettered": t.figures["items_dead_lettered"],
                "bytes": t.figures["bytes_read"],
                "duration_seconds": round(t.duration_seconds, 3),
            } for t in result.tables
        },
    }


def write_report(path: str, result: RunResult) -> None:
    Path(path).write_text(json.dumps(report_json(result), indent=2) + "\n")


def plan_table(plans: list[TablePlan]) -> str:
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
    return "\n".join(lines)
