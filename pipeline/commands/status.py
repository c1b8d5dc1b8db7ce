"""`status`: where every table's migration stands, read from its checkpoints alone.

It reads only `checkpoint_dir` and `dead_letter_dir` (a local folder, s3:// or gs://), never
the source or the target, so it runs from any machine that can read the bucket, while a
run goes on elsewhere or after it stopped. Per table:

- the copy: segments and items done (of the items the run expected: DescribeTable's
  estimate, or an export's exact count), the average rate since the latest run started
  (`run.json`), and when its newest checkpoint object was written (the objects'
  modification times);
- the capture: the changes its spool covers, its chunks, how many are applied;
- replication: changes applied, open shards, and how old the last applied changes are
  (their creation times, `last_change_time`), as of the shard checkpoints' last write;
- a stop note (why a shard could not go on), and the dead letters of every run.

Everything is a snapshot of files: "3 s ago" tells a live run from a dead one.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from pipeline.checks.config import RunConfig
from pipeline.output.progress import duration_text, items_of_expected
from transforms.state import bulk_checkpoints, change_spool, stream_checkpoints
from transforms.state.dead_letters import letters_by_table

__all__ = ["read_status", "status_text"]


def _copy(checkpoint_dir: str, table: str) -> dict | None:
    state = bulk_checkpoints.progress(checkpoint_dir, table)
    if state is None:
        return None
    run = bulk_checkpoints.read_run(checkpoint_dir, table)
    copy = {"segments_done": state.segments_done, "segments_total": state.total_segments, "items": state.items,
            "finished": state.finished, "updated": state.updated, "expected_items": None, "expected_exact": None,
            "run_started": None, "items_before_run": None, "items_per_second": None}
    if run is not None:
        copy.update(expected_items=run.expected_items, expected_exact=run.exact, run_started=run.started,
                    items_before_run=run.items_before)
        if state.updated and state.updated > run.started:
            copy["items_per_second"] = round((state.items - run.items_before) / (state.updated - run.started), 1)
    return copy


def _capture(checkpoint_dir: str, table: str) -> dict | None:
    coverage = change_spool.coverage_of(checkpoint_dir, table)
    chunks = change_spool.chunks(checkpoint_dir, table)
    if coverage is None and not chunks:
        return None
    applied = change_spool.applied(checkpoint_dir, table)
    return {"began": coverage.began if coverage else None,
            "covered_since": coverage.covered_since if coverage else None,
            "chunks": len(chunks), "bytes": sum(chunk.size for chunk in chunks),
            "chunks_applied": sum(1 for chunk in chunks if chunk.number <= applied.chunk)}


def _replication(checkpoint_dir: str, table: str, now: float) -> dict | None:
    shards = stream_checkpoints.all_shards(checkpoint_dir, table)
    if not shards:
        return None
    open_times = [s.last_change_time for s in shards.values() if not s.finished and s.last_change_time]
    every_time = [s.last_change_time for s in shards.values() if s.last_change_time]
    return {"changes_applied": sum(s.applied for s in shards.values()), "shards": len(shards),
            "open_shards": sum(1 for s in shards.values() if not s.finished),
            "newest_change_age_seconds": round(now - max(every_time), 1) if every_time else None,
            "lag_bound_seconds": round(now - min(open_times), 1) if open_times else None,
            "updated": stream_checkpoints.last_written(checkpoint_dir, table)}


def read_status(config: RunConfig, now: float | None = None) -> dict:
    """Every configured table's state, from the checkpoints and dead letters (JSON-ready)."""
    now = time.time() if now is None else now
    letters = letters_by_table(config.dead_letter_dir)
    tables = {}
    for spec in config.tables:
        stop = stream_checkpoints.read_stop(config.checkpoint_dir, spec.source)
        count, resolved = letters.get(spec.target, (0, 0))
        tables[spec.source] = {
            "target": spec.target,
            "copy": _copy(config.checkpoint_dir, spec.source),
            "capture": _capture(config.checkpoint_dir, spec.source),
            "replication": _replication(config.checkpoint_dir, spec.source, now),
            "stopped": None if stop is None else {"code": int(stop.code), "message": str(stop)},
            "dead_letters": {"letters": count, "resolved": resolved},
        }
    return {"at": now, "checkpoint_dir": config.checkpoint_dir, "dead_letter_dir": config.dead_letter_dir,
            "tables": tables}


def needs_attention(status: dict) -> bool:
    """Whether any table has unresolved dead letters or a stopped shard."""
    return any(table["stopped"] or table["dead_letters"]["letters"] > table["dead_letters"]["resolved"]
               for table in status["tables"].values())


def _ago(now: float, then: float | None) -> str:
    return "never" if not then else f"{duration_text(max(now - then, 0))} ago"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _copy_line(copy: dict, now: float) -> str:
    items = items_of_expected(copy["items"], copy["expected_items"], copy["expected_exact"], copy["finished"])
    line = (f"  copy: {'finished' if copy['finished'] else 'not finished'}, {copy['segments_done']:,}/"
            f"{copy['segments_total']:,} segments, {items}")
    if copy["items_per_second"] is not None:
        line += f", {copy['items_per_second']:,.0f} items/s on average since its latest run started " \
                f"{_ago(now, copy['run_started'])}"
        if copy["items_before_run"]:
            line += f" ({copy['items_before_run']:,} copied before)"
    return line + f"; last checkpoint {_ago(now, copy['updated'])}"


def _capture_line(capture: dict) -> str:
    since = f"covers changes since {_utc(capture['covered_since'])}, " if capture["covered_since"] else ""
    return (f"  capture: {since}{capture['chunks']:,} chunks ({capture['bytes'] / 2**20:,.1f} MiB), "
            f"{capture['chunks_applied']:,} applied")


def _replication_line(replication: dict, now: float) -> str:
    line = (f"  replication: {replication['changes_applied']:,} changes applied, {replication['open_shards']:,} open "
            f"shard{'s' if replication['open_shards'] != 1 else ''} of {replication['shards']:,}")
    if replication["newest_change_age_seconds"] is not None:
        line += f"; newest applied change made {duration_text(replication['newest_change_age_seconds'])} ago"
    if replication["lag_bound_seconds"] is not None:
        line += f", lag at most {duration_text(replication['lag_bound_seconds'])}"
    return line + f"; checkpoints written {_ago(now, replication['updated'])}"


def status_text(status: dict) -> str:
    now = status["at"]
    lines = [f"checkpoints: {status['checkpoint_dir']}", f"dead letters: {status['dead_letter_dir']}",
             f"as of {_utc(now)}"]
    for name, table in status["tables"].items():
        lines.append(f"{name} -> {table['target']}")
        if table["copy"]:
            lines.append(_copy_line(table["copy"], now))
        if table["capture"]:
            lines.append(_capture_line(table["capture"]))
        if table["replication"]:
            lines.append(_replication_line(table["replication"], now))
        if not (table["copy"] or table["capture"] or table["replication"]):
            lines.append("  nothing recorded yet")
        if table["stopped"]:
            lines.append(f"  stopped (exit {table['stopped']['code']}): {table['stopped']['message']}")
        letters = table["dead_letters"]
        if letters["letters"]:
            lines.append(f"  dead letters: {letters['letters'] - letters['resolved']:,} unresolved of "
                         f"{letters['letters']:,} (see `retry-dead-letter`)")
    return "\n".join(lines)
