"""Dead-letter files: the writes that could not be made, so nothing is lost silently.

Every writer (bulk copy, replication, repair) puts them under its run's own folder,
`<dead_letter_dir>/run-<timestamp>-<suffix>/<table>/<name>.jsonl` (`run_folder`), so the count
a run reports is its own. One JSON line per write: {"table": ..., "error": ..., "item":
<DynamoDB JSON>} for a put, {"table": ..., "error": ..., "delete": <key>} for a delete;
`table` is the target table, and the item or key is in target naming, except where
`"naming": "source"` says it is the source's item (the renames could not map it).

`retry-dead-letter` leaves a marker beside a letter file, `<name>.jsonl.retried.json`
(written whole, like every file here): {"resolved": [line numbers], "failing": {line
number: the new reason}}. The letters themselves are never rewritten.
Each file is written whole or not at all, by one writer; writers in Beam name it after
the unit of work (a page, a stream window), so a runner that retries a bundle overwrites
the file instead of counting its failures twice. The files hold customer data.
"""
from __future__ import annotations

import json
import uuid


from transforms.dynamo.write_requests import FailedWrite, request_item
from transforms.items.ddb_json import encode_item
from transforms.state.files import join, matching, read_bytes, read_json, run_name, write_bytes, write_json
from transforms.state.paths import folder_name

MARKER_SUFFIX = ".retried.json"


def run_folder(dead_letter_dir: str) -> str:
    """The folder of a run that starts now."""
    return join(dead_letter_dir, run_name())


def write_dead_letters(run_dir: str, failures: list[FailedWrite], name: str | None = None) -> list[str]:
    """Write failures grouped by table into `<run_dir>/<table>/<name>.jsonl` (default: a new
    unique name); returns the files written."""
    by_table: dict[str, list[FailedWrite]] = {}
    for failure in failures:
        by_table.setdefault(failure.table, []).append(failure)
    paths = []
    for table, rows in by_table.items():
        path = join(run_dir, table, f"{name or uuid.uuid4().hex}.jsonl")
        lines = []
        for row in rows:
            what = "item" if "PutRequest" in row.request else "delete"
            letter = {"table": row.table, "error": row.error, what: encode_item(request_item(row.request))}
            if row.source_naming:
                letter["naming"] = "source"
            lines.append(json.dumps(letter, ensure_ascii=False, separators=(",", ":")))
        write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))
        paths.append(path)
    return paths


def count_dead_letters(run_dir: str) -> dict[str, int]:
    """Lines per table in a run's dead-letter folder."""
    counts: dict[str, int] = {}
    for path in matching(join(run_dir, "*", "*.jsonl")):
        table = folder_name(path)
        counts[table] = counts.get(table, 0) + sum(1 for line in (read_bytes(path) or b"").splitlines()
                                                   if line.strip())
    return counts


def letters_by_table(dead_letter_dir: str) -> dict[str, tuple[int, int]]:
    """Per target table, over every run: (letters, of them resolved by retry-dead-letter)."""
    totals: dict[str, tuple[int, int]] = {}
    for path in letter_files(dead_letter_dir):
        table = folder_name(path)
        letters, resolved = totals.get(table, (0, 0))
        totals[table] = (letters + len(read_letters(path)), resolved + len(read_marker(path)[0]))
    return totals


def letter_files(dead_letter_dir: str, run: str = "run-*") -> list[str]:
    """Every letter file of the runs matching `run` (a folder name or a glob), in name order."""
    return sorted(matching(join(dead_letter_dir, run, "*", "*.jsonl")))


def read_letters(path: str) -> list[dict]:
    """A letter file's letters, in line order (line numbers count from 0)."""
    return [json.loads(line) for line in (read_bytes(path) or b"").splitlines() if line.strip()]


def read_marker(path: str) -> tuple[set[int], dict[int, str]]:
    """What earlier retries of a letter file left: lines resolved, and lines failing with their reason."""
    marker = read_json(path + MARKER_SUFFIX) or {}
    return set(marker.get("resolved", [])), {int(k): v for k, v in marker.get("failing", {}).items()}


def write_marker(path: str, resolved: set[int], failing: dict[int, str]) -> None:
    write_json(path + MARKER_SUFFIX, {"resolved": sorted(resolved),
                                      "failing": {str(k): v for k, v in sorted(failing.items())}})
