"""The change spool: how fast changes are captured and applied, what they cost, and memory.

The streams are served by the test Streams server (testbed/fake_streams.py), the
tables' descriptions by DynamoDB Local, the writes by the Alternator stand-in; every
`alternator-migrate` run is the real command in its own process.

- Capture at 1,000 open shards, a backlog of 20,000 changes (20 a shard): `capture`,
  timed from its start (the command line) until the capture's positions hold every
  change (median of 3); the spool's compressed bytes per change.
- Applying the spool: `migrate --streams --until-caught-up` over an empty table whose
  20,000 changes a `capture` recorded before; the rate it prints for the apply, against
  live replication of the same backlog by `replicate` (its wall time less that of the
  same command with nothing to do: start-up apart on both sides).
- Memory: the same apply with 10x the changes (200,000 on 10 shards) against 20,000 on
  10 shards: peak RSS of the run (goal <= 1.2x): one chunk is held at a time.

Run: .venv/bin/python -m bench.capture
"""
from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bulk import bench_item
from bench.measure import run_counted
from bench.replicate import Servers, _scenario
from testbed.fake_streams import FakeStreamsServer, shard_id
from testbed.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator
from transforms.items.ddb_json import encode_item
from transforms.state import change_spool, stream_checkpoints

BACKLOG = 20_000
WIDTH = 1_000
REPEATS = 3
MEMORY_SHARDS = 10


def _captured(checkpoint_dir: Path, table: str) -> int:
    shards = stream_checkpoints.all_shards(change_spool.root(str(checkpoint_dir)), table)
    return sum(checkpoint.applied for checkpoint in shards.values())


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def _capture_all(config: Path, table: str, changes: int) -> float:
    """Seconds from starting `capture` until its positions hold `changes` changes; then stopped."""
    checkpoints = config.parent / "checkpoints"
    started = time.perf_counter()
    process = subprocess.Popen(_cli("capture", "--config", str(config)), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while _captured(checkpoints, table) < changes:
            if process.poll() is not None:
                raise RuntimeError(f"capture ended early: {process.stderr.read()}")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(120)


def _backlog(servers: Servers, table: str, shards: int, changes: int):
    """`changes` puts spread over `shards` shards, each a ~0.5 KB item of every common type (the
    bulk benchmark's), so the spool's compression sees data like a table's, not padding."""
    scenario = _scenario(servers, table, shards)
    for i in range(changes // shards):
        for n in range(shards):
            item = encode_item({**bench_item(i * shards + n), "id": {"S": f"s{n}-k{i}"}})  # wire form
            scenario.stream.put_record(shard_id(n), "MODIFY", {"id": item["id"]}, new_image=item)
    return scenario


def capture_rate(servers: Servers) -> dict:
    scenario = _backlog(servers, "bench_capture", WIDTH, BACKLOG)
    seconds, sizes = [], []
    for _ in range(REPEATS):
        config = scenario.config()
        seconds.append(_capture_all(config, scenario.table, BACKLOG))
        sizes.append(sum(c.size for c in change_spool.chunks(str(config.parent / "checkpoints"), scenario.table)))
    return {"changes_per_s": BACKLOG / statistics.median(seconds), "bytes_per_change": statistics.median(sizes) / BACKLOG}


_APPLIED = re.compile(r"captured changes applied: ([\d,]+) in ([\d.]+) s")


def _apply(config: Path) -> tuple[float, float]:
    """`migrate --streams --until-caught-up` over a table whose spool a `capture` recorded:
    (the seconds it printed for applying the spool, the run's peak RSS in MiB)."""
    log = config.parent / "migrate.err"
    command = " ".join(_cli("migrate", "--config", str(config), "--streams", "--until-caught-up", "--no-progress"))
    measured = run_counted(["sh", "-c", f"{command} 2> {log}"], cwd=REPO_ROOT)
    found = _APPLIED.search(log.read_text())
    if found is None:
        raise RuntimeError(f"no apply line in: {log.read_text()[-2000:]}")
    return float(found.group(2)), measured.max_rss_mib


def apply_rate(servers: Servers) -> dict:
    """The spool's apply rate, and live replication's of the same backlog (start-up apart)."""
    scenario = _backlog(servers, "bench_apply", WIDTH, BACKLOG)
    spool, live = [], []
    for _ in range(REPEATS):
        config = scenario.config()
        _capture_all(config, scenario.table, BACKLOG)
        spool.append(BACKLOG / _apply(config)[0])
        config = scenario.config()
        backlog = run_counted(_cli("replicate", "--config", str(config)), cwd=REPO_ROOT).seconds
        nothing = run_counted(_cli("replicate", "--config", str(config)), cwd=REPO_ROOT).seconds  # all applied
        live.append(BACKLOG / max(backlog - nothing, 1e-3))
    return {"spool_per_s": statistics.median(spool), "live_per_s": statistics.median(live)}


def apply_memory(servers: Servers) -> dict:
    """Peak RSS of applying a spool of BACKLOG changes and of ten times as many."""
    peaks = {}
    for changes in (BACKLOG, 10 * BACKLOG):
        scenario = _backlog(servers, f"bench_memory_{changes}", MEMORY_SHARDS, changes)
        config = scenario.config()
        _capture_all(config, scenario.table, changes)
        peaks[changes] = _apply(config)[1]
    return peaks


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp, DynamoDBLocal() as source, LocalAlternator() as target, \
            FakeStreamsServer() as streams:
        servers = Servers(source, target, streams, Path(tmp))
        capture = capture_rate(servers)
        applied = apply_rate(servers)
        memory = apply_memory(servers)
    small, large = memory[BACKLOG], memory[10 * BACKLOG]
    print(f"change spool (streams: the test Streams server; target: the Alternator stand-in; medians of {REPEATS}; "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
    print(f"  capture, {WIDTH:,} open shards, backlog of {BACKLOG:,}: {capture['changes_per_s']:,.0f} changes/s "
          f"counted from the command line (goal: at least the live rate, >= 2,000); "
          f"{capture['bytes_per_change']:,.0f} bytes a change in the spool (~0.5 KB items, compressed)")
    print(f"  apply, the same backlog: {applied['spool_per_s']:,.0f} changes/s vs live replication "
          f"{applied['live_per_s']:,.0f}/s, start-up apart on both ({applied['spool_per_s'] / applied['live_per_s']:.2f}x; "
          f"goal: >= 1)")
    print(f"  peak memory applying {BACKLOG:,} vs {10 * BACKLOG:,} changes ({MEMORY_SHARDS} shards): {small:,.0f} vs "
          f"{large:,.0f} MiB: {large / small:.2f}x (goal: <= 1.2x)")
    return {"capture_per_s": round(capture["changes_per_s"]), "bytes_per_change": round(capture["bytes_per_change"]),
            "apply_ratio": round(applied["spool_per_s"] / applied["live_per_s"], 2),
            "memory_ratio": round(large / small, 2)}


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    main()
