"""Dead-letter files: the writes that could not be made, so nothing is lost silently.

One JSON line per write: {"table": ..., "error": ..., "item": <DynamoDB JSON>} for a
put, {"table": ..., "error": ..., "delete": <key>} for a delete. Each
writer flushes its failures to a file of its own (`<dir>/<table>/<name>.jsonl`), so
parallel workers never share a file and a file is complete once it exists. Writers in
Beam name the file after the unit of work (a page, a stream window), so a runner that
retries a bundle overwrites the file instead of counting its failures twice.
"""
from __future__ import annotations

import json
import uuid

from apache_beam.io.filesystems import FileSystems

from transforms.dynamo.writer import FailedWrite, request_item
from transforms.items.ddb_json import encode_item
from transforms.state.files import matching


def write_dead_letters(dead_letter_dir: str, failures: list[FailedWrite], name: str | None = None) -> list[str]:
    """Write failures grouped by table into `<name>.jsonl` (default: a new unique name);
    returns the files written."""
    by_table: dict[str, list[FailedWrite]] = {}
    for failure in failures:
        by_table.setdefault(failure.table, []).append(failure)
    paths = []
    for table, rows in by_table.items():
        path = FileSystems.join(dead_letter_dir, table, f"{name or uuid.uuid4().hex}.jsonl")
        with FileSystems.create(path) as f:
            for row in rows:
                what = "item" if "PutRequest" in row.request else "delete"
                line = json.dumps({"table": row.table, "error": row.error, what: encode_item(request_item(row.request))},
                                  ensure_ascii=False, separators=(",", ":"))
                f.write(line.encode("utf-8") + b"\n")
        paths.append(path)
    return paths


def count_dead_letters(dead_letter_dir: str) -> dict[str, int]:
    """Lines per table in the dead-letter directory (what a run leaves for the user)."""
    counts: dict[str, int] = {}
    for path in matching(FileSystems.join(dead_letter_dir, "*", "*.jsonl")):
        table = path.replace("\\", "/").rstrip("/").split("/")[-2]
        with FileSystems.open(path) as f:
            counts[table] = counts.get(table, 0) + sum(1 for line in f.read().splitlines() if line.strip())
    return counts
