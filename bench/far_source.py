"""A far source: Scan pages in flight and the copy's time against the latency it hides.

The source is DynamoDB Local behind `testbed/slow_source.SlowSource`, which holds
every Scan answer `DELAY` seconds (any number at once), as a table in another region
would; the target is the same DynamoDB Local reached directly (another table): near the
copier, as a target cluster usually is. `migrate` runs as a user runs it with the
defaults (the default runner and workers, the default `scan.pages_in_flight`) and
`scan.segments: 16`.

The copy must wait on the source for the figure to mean anything, so the target is not
the Alternator stand-in (one Python process: ~2,000 items/s, ~50 requests/s of small
batches, which would be what the copy waits on) and pages hold `PAGE_SIZE` items, not
1,000: 20,000 items in pages of 1,000 are ~40 pages, 0.6 s of latency at 16 in flight;
in pages of 20 they are ~1,000 pages, ~16 s at 16 in flight.

Figures, each beside its goal:
- Scans in flight: the average number of Scan requests the source held while any was
  (measured by the source itself), goal >= 8;
- the copy's time (the run's wall time less the same command's on an empty table: start-
  up) against pages x latency / pages in flight, where pages are the Scan requests the
  source answered, latency their average time there (arrival to answer), and pages in
  flight the setting times the workers; goal <= 1.5x.

Run: .venv/bin/python -m bench.far_source [ITEMS] [ROUNDS]
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import yaml

from bench.bulk import create_bench_table, seed_items
from bench.measure import median, run_counted
from pipeline.checks.config import load_config
from testbed.servers import REPO_ROOT, DynamoDBLocal
from testbed.slow_source import SlowSource

DELAY = 0.25
SEGMENTS = 16
PAGE_SIZE = 20


def _config(source: str, target: str, table: str, workdir: Path, name: str) -> Path:
    """A run config with the default runner, workers and pages in flight."""
    config = {
        "source": {"endpoint": source, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
        "target": {"endpoint": target, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
        "tables": [{"source": table, "target": name}],
        "scan": {"segments": SEGMENTS, "page_size": PAGE_SIZE},
        "checkpoint_dir": str(workdir / "checkpoints" / name),
        "dead_letter_dir": str(workdir / "dead-letter"),
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _migrate(config: Path, table: str):
    """One `migrate`: its measure and the items it wrote."""
    report = config.with_suffix(".json")
    measured = run_counted([sys.executable, "-m", "pipeline.cli", "migrate", "--config", str(config), "--no-progress",
                            "--report", str(report)], REPO_ROOT)
    return measured, json.loads(report.read_text())["tables"][table]["written"]


def main(items: int = 20_000, rounds: int = 3) -> dict:
    runs = []
    with DynamoDBLocal() as local, SlowSource(local.endpoint, DELAY) as far, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for table in ("far_bulk", "far_empty"):
            create_bench_table(local.endpoint, table)
        seed_items(local.endpoint, "far_bulk", items)
        for round_ in range(rounds):
            empty = _config(far.url, local.endpoint, "far_empty", workdir, f"far_empty_{round_}")
            full = _config(far.url, local.endpoint, "far_bulk", workdir, f"far_{round_}")
            start, _ = _migrate(empty, "far_empty")
            far.reset()
            run, written = _migrate(full, "far_bulk")
            assert written == items, f"bench: the far copy wrote {written} of {items} items"
            config = load_config(full)
            in_flight = config.scan.pages_in_flight * config.workers
            runs.append({"copy_seconds": run.seconds - start.seconds, "pages": far.scans.answered,
                         "latency": far.scans.latency(), "concurrency": far.scans.concurrency(),
                         "scan_seconds": far.scans.busy_seconds(), "in_flight": in_flight})
    figures = _figures(runs)
    _print(figures, items, rounds)
    return figures


def _figures(runs: list[dict]) -> dict:
    for run in runs:
        run["ideal_seconds"] = run["pages"] * run["latency"] / min(run["in_flight"], SEGMENTS)
    return {name: median(run[name] for run in runs)
            for name in ("copy_seconds", "pages", "latency", "concurrency", "scan_seconds", "ideal_seconds",
                         "in_flight")} | {"vs_ideal_by_round": [r["copy_seconds"] / r["ideal_seconds"] for r in runs]}


def _print(f: dict, items: int, rounds: int) -> None:
    vs_ideal = median(f["vs_ideal_by_round"])
    print(f"far source: {items:,} items in Scan pages of {PAGE_SIZE}, each held {DELAY * 1000:.0f} ms by the source "
          f"(DynamoDB Local behind testbed/slow_source.py), {SEGMENTS} segments, the default runner and workers "
          f"({f['in_flight']:.0f} pages in flight), into another table of the same DynamoDB Local reached directly; "
          f"medians of {rounds} rounds:")
    print(f"  Scans in flight while the scan ran: {f['concurrency']:.1f} on average (goal: at least 8; "
          f"1.0 before issue 22)")
    print(f"  copy time (start-up excluded) {f['copy_seconds']:.1f} s vs pages x latency / pages in flight "
          f"= {f['pages']:.0f} x {f['latency'] * 1000:.0f} ms / {min(f['in_flight'], SEGMENTS):.0f} = "
          f"{f['ideal_seconds']:.1f} s: {vs_ideal:.2f}x (rounds: "
          + ", ".join(f"{r:.2f}" for r in f["vs_ideal_by_round"]) + "; goal: at most 1.5x)")
    print(f"  the source had a Scan in flight for {f['scan_seconds']:.1f} s; one page at a time would take "
          f"{f['pages'] * f['latency']:.0f} s")


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
