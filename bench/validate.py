"""Validation cost against plainly scanning both tables, its CPU per item, and its memory, in one run.

Seeds the same items into DynamoDB Local (source) and the local Alternator stand-in
(target), then times, on the same runner (DirectRunner, in-process):
- a plain pipeline that scans both tables and counts the items;
- `validate` (scan both, digest, group by key-hash bucket, compare).
The target is at most 2x. Memory: `validate` runs as a command in a fresh process on
the default runner for 100,000 and 1,000,000 items a side; the goal is at most 1.5x
for 10x the items. Seeding DynamoDB Local runs at ~2,500 items/s here, so for these
one table in DynamoDB Local is both the source and the target (`target.endpoint`): the
validation still scans, digests and compares both sides in full.

CPU per item: `validate` as a command (user + sys of its processes, start-up, measured
on empty tables, subtracted), for this revision and the one before the data plane
(`measure.BASELINE_REVISION`), medians of `rounds` rounds in this run. Both tables live
in DynamoDB Local here (the target as a plain endpoint): its scans are quick, so the
figure is the tool's own work, per source item (each is read and digested on both sides).

Run: .venv/bin/python -m bench.validate [ITEMS]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import apache_beam as beam
import yaml

from bench.bulk import bench_item, create_bench_table, seed_bench_table
from bench.measure import baseline_checkout, median, per_item_us, run_counted, run_measured
from pipeline.checks.config import load_config
from pipeline.checks.runners import LOCAL_RUNNER
from pipeline.checks.tables import plan_tables
from pipeline.commands.validate import run_validate, side_segments
from testbed import seed
from testbed.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator
from transforms.scan import ScanTables



def _seed_both(source: str, target: str, table: str, items: int) -> None:
    for endpoint in (source, target):
        seed_bench_table(endpoint, table, items)


def _config(workdir: Path, source: str, target_port: int, table: str) -> Path:
    path = workdir / f"{table}.yaml"
    path.write_text(yaml.safe_dump({
        "source": {"endpoint": source, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
        "target": {"alternator": {"seeds": ["127.0.0.1"], "port": target_port}},
        "tables": [{"source": table}], "scan": {"segments": 4},
        "checkpoint_dir": str(workdir / "checkpoints"), "pipeline_options": {"runner": "DirectRunner"}}))
    return path


def _plain_scan_seconds(config, plans) -> float:
    started = time.perf_counter()
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions([], runner=LOCAL_RUNNER)) as p:
        for side, spec in (("source", config.source), ("target", config.target)):
            _ = (p | f"Scan{side}" >> ScanTables(spec, side_segments(plans, side), config.scan_settings())
                 | f"Count{side}" >> beam.Map(lambda page: page.batch.num_rows)
                 | f"Sum{side}" >> beam.CombineGlobally(sum))
    return time.perf_counter() - started


def _validate_max_rss_mib(endpoint: str, table: str, workdir: Path) -> float:
    """Peak RSS of `validate` (fresh process, default runner) with `table` on both sides."""
    credentials = {"access_key_id": "b", "secret_access_key": "b"}
    path = workdir / f"{table}-memory.yaml"
    path.write_text(yaml.safe_dump({
        "source": {"endpoint": endpoint, "credentials": credentials},
        "target": {"endpoint": endpoint, "credentials": credentials},
        "tables": [{"source": table}], "scan": {"segments": 4}, "checkpoint_dir": str(workdir / "checkpoints")}))
    return run_measured([sys.executable, "-m", "pipeline.cli", "validate", "--config", str(path)], REPO_ROOT)[1]


def _cpu_config(workdir: Path, endpoint: str, source_table: str, target_table: str) -> Path:
    path = workdir / f"cpu-{source_table}.yaml"
    credentials = {"access_key_id": "b", "secret_access_key": "b"}
    path.write_text(yaml.safe_dump({
        "source": {"endpoint": endpoint, "credentials": credentials},
        "target": {"endpoint": endpoint, "credentials": credentials},
        "tables": [{"source": source_table, "target": target_table}], "scan": {"segments": 4},
        "checkpoint_dir": str(workdir / "checkpoints"), "pipeline_options": {"runner": "DirectRunner"}}))
    return path


def cpu_per_item(items: int, rounds: int = 3) -> dict:
    """Median CPU microseconds per source item of `validate`, now and before the data plane."""
    revisions = {"now": REPO_ROOT}
    before = baseline_checkout(REPO_ROOT)
    if before is not None:
        revisions["before"] = before
    with DynamoDBLocal() as local, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for table in ("cpu_source", "cpu_target", "cpu_empty_source", "cpu_empty_target"):
            create_bench_table(local.endpoint, table)
        for table in ("cpu_source", "cpu_target"):
            seed.put_items(local.endpoint, table, (bench_item(i) for i in range(items)))
        full = _cpu_config(workdir, local.endpoint, "cpu_source", "cpu_target")
        empty = _cpu_config(workdir, local.endpoint, "cpu_empty_source", "cpu_empty_target")
        runs: dict[str, list[float]] = {name: [] for name in revisions}
        start_ups: dict[str, list[float]] = {name: [] for name in revisions}
        for _ in range(rounds):
            for name, root in revisions.items():
                env = {**os.environ, "PYTHONPATH": str(root)}
                command = [sys.executable, "-m", "pipeline.cli", "validate", "--config"]
                start_up = run_counted(command + [str(empty)], root, env)
                measured = run_counted(command + [str(full)], root, env)
                runs[name].append(per_item_us(measured, start_up, items))
                start_ups[name].append(start_up.cpu_seconds)
    figures = {name: {"cpu_us_per_item": median(values), "start_up_cpu_s": median(start_ups[name])}
               for name, values in runs.items()}
    print(f"validation CPU per source item ({items:,} items a side, both in DynamoDB Local), medians of {rounds}:")
    for name, f in figures.items():
        label = "validate now" if name == "now" else "validate before issue 8"
        print(f"  {label:<26} {f['cpu_us_per_item']:>7.1f} us/item  (start-up {f['start_up_cpu_s']:.1f} s CPU)")
    if "before" in figures:
        ratio = figures["now"]["cpu_us_per_item"] / figures["before"]["cpu_us_per_item"]
        print(f"  now vs before: {ratio:.2f} (target: at most 0.33)")
    return figures

def memory(sizes: tuple[int, ...]) -> dict[int, float]:
    """Peak RSS of `validate` per table size, DynamoDB Local serving both sides."""
    rss = {}
    with DynamoDBLocal() as server, tempfile.TemporaryDirectory() as tmp:
        for items in sizes:
            table = f"bench_validate_{items}"
            seed_bench_table(server.endpoint, table, items)
            rss[items] = _validate_max_rss_mib(server.endpoint, table, Path(tmp))
    return rss


def main(items: int = 20_000, memory_sizes: tuple[int, ...] = (100_000, 1_000_000)) -> dict:
    with DynamoDBLocal() as source, LocalAlternator() as target, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _seed_both(source.endpoint, target.url, "bench_validate", items)
        config_path = _config(workdir, source.endpoint, target.port, "bench_validate")
        config = load_config(config_path)
        plans = plan_tables(config, create=False)
        scan_seconds = _plain_scan_seconds(config, plans)
        started = time.perf_counter()
        result = run_validate(config, plans)
        validate_seconds = time.perf_counter() - started
        assert result.equal and result.tables["bench_validate"].counts["matched"] == items
    rss = memory(memory_sizes)
    ratio = validate_seconds / scan_seconds
    print(f"validation of {items:,} items per side, one run, same runner:")
    print(f"  plain scan of both tables: {scan_seconds:6.1f} s")
    print(f"  validate:                  {validate_seconds:6.1f} s   ratio {ratio:.2f}x (target: at most 2x)")
    small, large = min(rss), max(rss)
    print("  peak memory of `validate` (default runner, one DynamoDB Local table as source and target): "
          + ", ".join(f"{rss[n]:,.0f} MiB for {n:,} items" for n in sorted(rss))
          + f" ({rss[large] / rss[small]:.2f}x for {large / small:.0f}x the items; goal: at most 1.5x)")
    figures = {"items": items, "scan_seconds": round(scan_seconds, 1), "validate_seconds": round(validate_seconds, 1),
               "ratio": round(ratio, 2), "rss_mib": {n: round(v) for n, v in rss.items()}}
    figures["cpu"] = cpu_per_item(items)
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
