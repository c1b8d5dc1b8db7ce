"""Replication at the width of real streams, measured against the local servers in one run.

The streams are served by the test Streams server (testbed/fake_streams.py: it
answers in about a millisecond and does not throttle), the tables' descriptions by
DynamoDB Local, the writes by the Alternator stand-in (moto behind the front). Every
`alternator-migrate` run is the real command in its own process, start-up included.

- One shard, a backlog of 20,000 changes (10% deletes, 5,000 keys): `replicate`
  against one PutItem/DeleteItem at a time on the same target (median of 3 each).
- 1,000 open shards, a backlog of 20,000 changes (20 a shard): `replicate` (median of 3).
- 1,000 open shards, 200 changes a second spread over all of them for 30 s, with
  `replicate --follow`: end-to-end lag (a prober polls the target for the newest change
  every ~0.1 s), the lag the tool printed beside it, and how long after the writes stop
  the target holds every change.
- One shard taking 50 changes a second beside 999 quiet ones for 20 s: the longest any
  shard waited between two reads (from the server's own log of reads).
- Nothing new: `replicate --until-caught-up` on a stream whose changes are all applied (the
  last step of a cutover, with the application stopped), wall and CPU time (median of 5).

`replicate` runs the installed console script, as a user does (bytecode compiled, as an
installed package has it: `bench.startup.script_env`).

Run: .venv/bin/python -m bench.replicate
"""
from __future__ import annotations

import concurrent.futures
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.measure import run_counted
from bench.startup import CONSOLE_SCRIPT, script_env
from testbed import seed
from testbed.fake_streams import FakeStream, FakeStreamsServer, shard_id
from testbed.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator

BACKLOG = 20_000
KEYS = 5_000
WIDTH = 1_000
BASELINE = 1_000
REPEATS = 3
HASH_KEY = seed.STREAMED_TABLE["KeySchema"]


@dataclass
class Servers:
    source: DynamoDBLocal
    target: LocalAlternator
    streams: FakeStreamsServer
    workdir: Path


@dataclass
class Scenario:
    stream: FakeStream
    table: str
    servers: Servers
    runs: int = 0

    def config(self) -> Path:
        """A config with checkpoints of its own: each run starts from the oldest record."""
        self.runs += 1
        folder = self.servers.workdir / f"{self.table}-{self.runs}"
        folder.mkdir()
        path = folder / "bench.yaml"
        path.write_text(yaml.safe_dump({
            "source": {"endpoint": self.servers.source.endpoint, "streams_endpoint": self.servers.streams.url,
                       "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
            "target": {"alternator": {"seeds": ["127.0.0.1"], "port": self.servers.target.port}},
            "tables": [{"source": self.table}], "checkpoint_dir": str(folder / "checkpoints"),
            "dead_letter_dir": str(folder / "dead-letter"), "pipeline_options": {"runner": "DirectRunner"}}))
        return path


def _scenario(servers: Servers, table: str, shards: int) -> Scenario:
    """A source table (DynamoDB Local) whose stream has `shards` open shards on the test server."""
    for endpoint, stream in ((servers.source.endpoint, True), (servers.target.url, False)):
        seed.create_table(endpoint, table, **seed.keyed_by("id", streamed=stream))
    arn = seed.client_for(servers.source.endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    stream = servers.streams.add_stream(FakeStream(arn, table_name=table, key_schema=HASH_KEY))
    for n in range(shards):
        stream.add_shard(shard_id(n))
    return Scenario(stream, table, servers)


def _change(stream: FakeStream, shard: str, key: str, n: int, delete: bool = False) -> None:
    if delete:
        stream.put_record(shard, "REMOVE", {"id": {"S": key}})
    else:
        stream.put_record(shard, "MODIFY", {"id": {"S": key}},
                          new_image={"id": {"S": key}, "n": {"N": str(n)}, "pad": {"S": "x" * 100}})


def _replicate_once(scenario: Scenario) -> float:
    """Seconds for `alternator-migrate replicate` (one pass over the backlog), start-up included."""
    command = [str(CONSOLE_SCRIPT), "replicate", "--config", str(scenario.config())]
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, env=script_env())
    return time.perf_counter() - started


def nothing_new(servers: Servers) -> dict:
    """`replicate --until-caught-up` once every change is applied: what the cutover waits for."""
    scenario = _scenario(servers, "bench_nothing_new", 1)
    for n in range(100):
        _change(scenario.stream, shard_id(0), f"k{n}", n)
    command = [str(CONSOLE_SCRIPT), "replicate", "--until-caught-up", "--config", str(scenario.config())]
    run_counted(command, REPO_ROOT, script_env())  # applies the 100 changes
    runs = sorted((run_counted(command, REPO_ROOT, script_env()) for _ in range(5)), key=lambda run: run.seconds)
    return {"seconds": runs[2].seconds, "cpu_seconds": runs[2].cpu_seconds}


def _one_at_a_time(target: str, table: str, records: list[dict]) -> float:
    client = seed.client_for(target)
    started = time.perf_counter()
    for record in records:
        if record["eventName"] == "REMOVE":
            client.delete_item(TableName=table, Key=record["dynamodb"]["Keys"])
        else:
            client.put_item(TableName=table, Item=record["dynamodb"]["NewImage"])
    return len(records) / (time.perf_counter() - started)


def one_shard_backlog(servers: Servers) -> dict:
    scenario = _scenario(servers, "bench_one_shard", 1)
    for n in range(BACKLOG):
        _change(scenario.stream, shard_id(0), f"k{n % KEYS:05d}", n, delete=n % 10 == 9)
    ours = statistics.median(BACKLOG / _replicate_once(scenario) for _ in range(REPEATS))
    records = scenario.stream.get_records(shard_id(0), 0, {"Limit": BASELINE})["Records"]
    seed.create_table(servers.target.url, "bench_one_at_a_time", **seed.keyed_by("id"))
    baseline = statistics.median(_one_at_a_time(servers.target.url, "bench_one_at_a_time", records)
                                 for _ in range(REPEATS))
    return {"changes_per_s": ours, "baseline_per_s": baseline}


def wide_backlog(servers: Servers) -> dict:
    scenario = _scenario(servers, "bench_wide", WIDTH)
    per_shard = BACKLOG // WIDTH
    for i in range(per_shard):
        for n in range(WIDTH):
            _change(scenario.stream, shard_id(n), f"s{n}-k{i}", i)
    return {"changes_per_s": statistics.median(BACKLOG / _replicate_once(scenario) for _ in range(REPEATS))}


class _Follower:
    """`replicate --follow` in its own process; its status lines kept with the time they arrived."""

    LAG = re.compile(r"\] [^:]+: lag ([0-9.]+) s")

    def __init__(self, scenario: Scenario):
        self.lines: list[tuple[float, str]] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "replicate", "--follow", "--config", str(scenario.config())],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stderr:
            self.lines.append((time.time(), line.rstrip()))

    def wait_until_known_lag(self, timeout: float = 120) -> None:
        """Until a status line shows a lag figure (every shard read once)."""
        deadline = time.time() + timeout
        while not any(self.LAG.search(line) for _, line in self.lines):
            if time.time() > deadline or self._process.poll() is not None:
                raise RuntimeError("the follower did not read every shard:\n" +
                                   "\n".join(line for _, line in self.lines[-20:]))
            time.sleep(0.2)

    def lags(self, since: float, until: float) -> list[float]:
        return [float(m.group(1)) for at, line in self.lines if since <= at <= until
                for m in [self.LAG.search(line)] if m]

    def stop(self) -> None:
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


def _prober(target: str, table: str, written: dict[str, float], stop: threading.Event) -> list[float]:
    """End-to-end lags: the newest change written, polled on the target until it is there."""
    client, lags = seed.client_for(target), []
    while not stop.is_set():
        if not written:
            time.sleep(0.1)
            continue
        key = max(written, key=written.get)
        deadline = time.time() + 60
        while time.time() < deadline:
            if "Item" in client.get_item(TableName=table, Key={"id": {"S": key}}, ConsistentRead=True):
                lags.append(time.time() - written[key])
                break
            time.sleep(0.05)
    return lags


def _all_there(target: str, table: str, keys: list[str]) -> bool:
    """Every key is in the target (consistent BatchGetItems, several in parallel)."""
    def present(chunk: list[str]) -> int:
        client = seed.client_for(target)
        request = {table: {"Keys": [{"id": {"S": k}} for k in chunk], "ConsistentRead": True}}
        found = 0
        while request:
            answer = client.batch_get_item(RequestItems=request)
            found += len(answer["Responses"].get(table, []))
            request = answer.get("UnprocessedKeys") or None
        return found

    chunks = [keys[i:i + 100] for i in range(0, len(keys), 100)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return sum(pool.map(present, chunks)) == len(keys)


def _write_steadily(stream: FakeStream, shards: list[str], rate: float, seconds: float,
                    written: dict[str, float]) -> None:
    """`rate` new items a second, each on a shard picked at random, for `seconds`."""
    rng, began, n = random.Random(7), time.time(), 0
    while time.time() < began + seconds:
        key = f"c{n:07d}"
        written[key] = time.time()
        stream.put_record(rng.choice(shards), "INSERT", {"id": {"S": key}},
                          new_image={"id": {"S": key}, "n": {"N": str(n)}}, created=written[key])
        n += 1
        time.sleep(max(0.0, began + n / rate - time.time()))


@dataclass
class _Run:
    """What a follower under a steady load showed."""

    scenario: Scenario
    probes: list[float]          # end-to-end lags
    printed: list[float]         # lags the tool printed while the writes went on
    changes: int
    window: tuple[float, float]  # time.monotonic() when the writes began and stopped
    equal_after_s: float         # after the writes stopped, until a check found every change on the target


def _follow_under_load(servers: Servers, table: str, hot: int | None, rate: float, seconds: float) -> _Run:
    """`replicate --follow` on 1,000 shards while `rate` changes a second go to all of
    them (`hot` None) or to shard `hot` alone, for `seconds`."""
    scenario = _scenario(servers, table, WIDTH)
    shards = [shard_id(n) for n in range(WIDTH)] if hot is None else [shard_id(hot)]
    follower = _Follower(scenario)
    written: dict[str, float] = {}
    stop = threading.Event()
    probes: list[float] = []
    try:
        follower.wait_until_known_lag()
        prober = threading.Thread(target=lambda: probes.extend(_prober(servers.target.url, scenario.table,
                                                                        written, stop)))
        prober.start()
        began, began_at = time.time(), time.monotonic()
        _write_steadily(scenario.stream, shards, rate, seconds, written)
        stopped, stopped_at = time.time(), time.monotonic()
        stop.set()
        prober.join()
        while not _all_there(servers.target.url, scenario.table, list(written)) and time.time() < stopped + 120:
            time.sleep(0.1)
        equal_after = time.time() - stopped  # when a check of every key ended: an upper bound
    finally:
        stop.set()
        follower.stop()
    return _Run(scenario, probes, follower.lags(began + 5, stopped), len(written), (began_at, stopped_at),
                equal_after)


def steady_lag(servers: Servers) -> _Run:
    return _follow_under_load(servers, "bench_steady", None, rate=200, seconds=30)


def hot_shard(servers: Servers) -> dict:
    run = _follow_under_load(servers, "bench_hot", 0, rate=50, seconds=20)
    began, ended = run.window
    gaps = []
    for n in range(WIDTH):
        times = [began] + [t for t in run.scenario.stream.read_times(shard_id(n)) if began <= t <= ended] + [ended]
        gaps.append(max(b - a for a, b in zip(times, times[1:])))
    hot_reads = sum(1 for t in run.scenario.stream.read_times(shard_id(0)) if began <= t <= ended)
    return {"max_gap_s": max(gaps), "p99_gap_s": statistics.quantiles(gaps, n=100)[98], "probes": run.probes,
            "hot_reads_per_s": hot_reads / (ended - began)}


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp, DynamoDBLocal() as source, LocalAlternator() as target, \
            FakeStreamsServer() as streams:
        servers = Servers(source, target, streams, Path(tmp))
        idle = nothing_new(servers)
        one = one_shard_backlog(servers)
        wide = wide_backlog(servers)
        steady = steady_lag(servers)
        hot = hot_shard(servers)
    ratio = one["changes_per_s"] / one["baseline_per_s"]
    probes = steady.probes
    print(f"replication (streams: the test Streams server; target: the Alternator stand-in; medians of {REPEATS}; "
          f"`replicate` runs include start-up; load average at the end {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores):")
    print(f"  one shard, backlog of {BACKLOG:,}: {one['changes_per_s']:,.0f} changes/s vs one write at a time "
          f"{one['baseline_per_s']:,.0f}/s: {ratio:.1f}x (goal: at least 8x)")
    print(f"  {WIDTH:,} open shards, backlog of {BACKLOG:,}: {wide['changes_per_s']:,.0f} changes/s counted from "
          f"the command line (goal: at least 2,000)")
    print(f"  nothing new, `replicate --until-caught-up`: {idle['seconds']:.2f} s wall, {idle['cpu_seconds']:.2f} s "
          f"of CPU (goal: under 1.5 s wall)")
    print(f"  {WIDTH:,} shards under 200 changes/s ({steady.changes:,} changes): end-to-end lag p50 "
          f"{statistics.median(probes):.2f} s, max {max(probes):.2f} s ({len(probes)} probes; goal: p50 <= 2, "
          f"max <= 10); target equal {steady.equal_after_s:.1f} s after the writes stopped (goal: <= 10)")
    if steady.printed:
        print(f"    lag the tool printed meanwhile: p50 {statistics.median(steady.printed):.1f} s, "
              f"max {max(steady.printed):.1f} s (it may overstate, never understate by more than 1 s)")
    print(f"  one shard at 50 changes/s beside {WIDTH - 1:,} quiet ones: longest wait between two reads of a shard "
          f"{hot['max_gap_s']:.2f} s, p99 {hot['p99_gap_s']:.2f} s (goal: <= 2); hot shard read "
          f"{hot['hot_reads_per_s']:.1f}/s; its end-to-end lag p50 {statistics.median(hot['probes']):.2f} s, "
          f"max {max(hot['probes']):.2f} s")
    return {"nothing_new_s": round(idle["seconds"], 2), "one_shard_ratio": round(ratio, 1), "wide_changes_per_s": round(wide["changes_per_s"]),
            "lag_p50_s": round(statistics.median(probes), 2), "lag_max_s": round(max(probes), 2),
            "equal_after_s": round(steady.equal_after_s, 1), "max_read_gap_s": round(hot["max_gap_s"], 2)}


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    main()
