"""Bulk copy: CPU per item, throughput and memory of the tool, a naive copy and the ceiling.

Starts DynamoDB Local (the source's store) and two targets, seeds a table of ~0.5 KB items,
then, for each target, in each of its rounds (`main`), copies it to a fresh target table with:

- the tool: `alternator-migrate migrate` as a user runs it (DirectRunner, two worker
  processes); with `--before`, also the same command from the revision before the data
  plane (`measure.BASELINE_REVISION`), when git can give it (stand-in only);
- a naive copy: boto3, one thread, Scan pages and BatchWriteItem of 25 (`naive_copy`);
- the ceiling: the same items as pre-built requests, sent at the best concurrency
  (found on a sample before the rounds; `intake`); its rate is the target's raw intake.

The targets:

- the local Alternator stand-in (`target.alternator`, 100 items a request): moto behind
  testbed/alternator_front.py. Its backend is one Python process, the limit of
  every copy to it; the tool also runs there with as many requests in flight as the
  ceiling (its best concurrency over the workers).
- a fast target (`target.endpoint`, signed, 25 items a request, as DynamoDB takes):
  a second DynamoDB Local, in memory. Chosen over dynalite (npm; Node and LevelDB in
  memory) by its intake of these items from pre-built signed requests of 25, measured
  side by side on this machine (load 8-16, 50,000 items, 3 rounds at 64 in flight):
  4,300, 6,900 and 6,000 items/s (the first with a cold JVM; the concurrency sample
  warms it before the rounds here) against 2,300, 5,300 and 5,900 for dynalite, which
  was ahead only at 8 in flight; and it is already installed. It is multi-threaded (it used
  1.2-1.4 cores under the ceiling): on a 2-core machine, what the copy's own processes
  and the source use comes out of the target's share, which the CPU figures show.
- the same fast target on a core of its own, everything else (this process, the source,
  the copy, the ceiling's client, the naive copy) on the other cores
  (`target_on_own_core`), as a real target cluster runs on machines of its own. Its rate
  says whether the copy keeps the target as busy as pre-built requests do; on 2 shared
  cores the copy also slows the target (beside the copy the target took 130 us of CPU an
  item, under the ceiling 120: ae42cd5's run).

The source: DynamoDB Local behind `testbed/slow_source.SlowSource` with `replay_scans`
(no delay), which keeps each Scan page's answer from a first copy before the rounds and
answers every later Scan from memory. A real source table's CPU is AWS's, not the
copier's; read directly from DynamoDB Local, the source took ~90 us of CPU an item of the
copier's 2 cores (8f27a56's run) and bounded the copy to the fast target below its goal
whatever the tool did. The front's own CPU (its thread) is reported as the source's.

The naive copy copies the first `SAMPLE` items only: its cost per item does not depend
on the table's size, and it is slow. The ceiling copies every item, right after the
tool in the same round, and the tool's rate is compared with it round by round: on a
shared machine the target's speed drifts between minutes, and against a ceiling taken
on 20,000 items at another moment the same code's rate came out at 0.66 to 1.16 of it.
The target's busy share (CPU seconds of its server process per second of copying) shows
whether a low rate is the tool's fault (target idle) or the target's (busy).

CPU is user + sys of every process of a run; start-up (the same command on an empty
table) is measured apart and subtracted, and so is its wall time for the rates. The CPU
subtracted is the median of the rounds' start-ups: one start-up of the tool costs ~6 s of
CPU (two Beam worker processes), and a single one that ran slow or fast by a second moved
that round's figure by 10 us an item (a round once read 1/36 of the naive copy). Figures
are medians over the rounds; ratios are taken within this run, because the machine is
shared and its absolute speed varies. The tool's CPU per item is also divided by the naive
copy's of the same round: the load of a shared machine drifts between rounds and inflates
CPU per item (two worker processes and a JVM on two cores), so a round's own pair is the
fairest comparison; their median is printed beside the ratio of medians.

Run: .venv/bin/python -m bench.bulk [ITEMS] [ROUNDS] [FAST_ROUNDS] [--before]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import psutil
import yaml

from bench import intake
from bench.measure import Measured, baseline_checkout, median, run_counted
from testbed import seed
from testbed.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator
from testbed.slow_source import SlowSource
from transforms.items.ddb_json import encode_item

CONCURRENCIES = (4, 8, 16, 32, 64)
WORKERS = 2
SAMPLE = 20_000
CPU_SHARE_GOAL, CPU_SHARE_AIM = 6, 10  # the tool's CPU per item: at most 1/6 of the naive copy's, aiming at 1/10
STAND_IN_RATE_GOAL = 0.85  # the tool's rate over the target's raw intake
FAST_RATE_GOAL = 0.9
OWN_CORE_ROUNDS = 5


def bench_item(i: int) -> dict:
    """A typical item (~0.5 KB in DynamoDB JSON): keys, scalars, binary, a set, a small map, text."""
    return {"pk": {"S": f"user#{i:08d}"}, "sk": {"N": str(i % 7)}, "name": {"S": f"name {i}"},
            "email": {"S": f"user{i}@example.com"}, "price": {"N": f"{i % 1000}.{i % 100:02d}"},
            "qty": {"N": str(i % 500)}, "active": {"BOOL": i % 2 == 0}, "tags": {"SS": ["a", f"t{i % 5}"]},
            "blob": {"B": i.to_bytes(8, "big") + b"\x00" * 24},
            "address": {"M": {"street": {"S": f"{i % 999} Main Street"}, "city": {"S": "Paris"},
                              "zip": {"N": str(75000 + i % 20)}}},
            "created": {"S": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T12:34:56Z"}, "note": {"S": "x" * 160}}


def create_bench_table(endpoint: str, table: str) -> None:
    seed.create_table(endpoint, table, **seed.keyed_by("pk", sort=("sk", "N")))


def seed_items(endpoint: str, table: str, items: int) -> None:
    """Put `bench_item(0..items-1)` in `table`, in chunks (the bench's memory stays small)."""
    for start in range(0, items, 50_000):
        seed.put_items(endpoint, table, (bench_item(i) for i in range(start, min(items, start + 50_000))))


def seed_bench_table(endpoint: str, table: str, items: int) -> None:
    create_bench_table(endpoint, table)
    seed_items(endpoint, table, items)


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(root)}


def _pin(pid: int, cores: set[int]) -> None:
    """Put every thread of a process on `cores` (`os.sched_setaffinity` of a pid moves only
    its main thread); again until no new thread shows up, as a thread inherits its maker's."""
    done: set[int] = set()
    while threads := {int(tid) for tid in os.listdir(f"/proc/{pid}/task")} - done:
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cores)
            except ProcessLookupError:
                pass  # the thread ended meanwhile
        done |= threads


@contextmanager
def target_on_own_core(target_pid: int) -> Iterator[bool]:
    """Within: the target's server process on the last core, this process and every other
    process it started on the rest (processes started within inherit that), as a target
    cluster runs on machines of its own; False, and nothing moved, with fewer than 2 cores.
    Every process is put back on the cores it had."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        yield False
        return
    others = [os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True)
                             if child.pid != target_pid)]
    had = {pid: os.sched_getaffinity(pid) for pid in (target_pid, *others)}
    _pin(target_pid, {cores[-1]})
    for pid in others:
        _pin(pid, set(cores[:-1]))
    try:
        yield True
    finally:
        for pid, cores_had in had.items():
            _pin(pid, cores_had)


@dataclass(frozen=True)
class Target:
    """What a copy writes to: its URL, the tool's `target` section, items a request, its server's pid."""

    label: str
    url: str
    config: dict
    per_request: int
    pid: int
    signed: bool


def stand_in_target(stand_in: LocalAlternator) -> Target:
    return Target("the local Alternator stand-in (moto behind testbed/alternator_front.py)", stand_in.url,
                  {"alternator": {"seeds": ["127.0.0.1"], "port": stand_in.port}}, 100, stand_in.moto.pid, False)


def fast_target(server: DynamoDBLocal) -> Target:
    return Target("DynamoDB Local -inMemory (a second instance; Java)", server.endpoint,
                  {"endpoint": server.endpoint, "credentials": {"access_key_id": "test", "secret_access_key": "test"}},
                  25, server.pid, True)


def _migrate(root: Path, source: str, target: Target, table: str, target_table: str, workdir: Path,
             concurrency: int | None = None) -> tuple[Measured, int]:
    """One `migrate` run (`concurrency`: write.concurrency, each worker's requests in flight)."""
    config = {
        "source": {"endpoint": source, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
        "target": target.config,
        "tables": [{"source": table, "target": target_table}],
        "checkpoint_dir": str(workdir / "checkpoints" / target_table),
        "dead_letter_dir": str(workdir / "dead-letter"),
        "pipeline_options": {"runner": "DirectRunner", "direct_num_workers": WORKERS,
                             "direct_running_mode": "multi_processing"},
    }
    if concurrency is not None:
        config["write"] = {"concurrency": concurrency}
    path = workdir / f"{target_table}.yaml"
    path.write_text(yaml.safe_dump(config))
    report = workdir / f"{target_table}.json"
    measured = run_counted([sys.executable, "-m", "pipeline.cli", "migrate", "--config", str(path), "--no-progress",
                            "--report", str(report)], root, _env(root))
    return measured, json.loads(report.read_text())["tables"][table]["written"]


def _naive(source: str, target: str, table: str, target_table: str) -> Measured:
    create_bench_table(target, target_table)
    return run_counted([sys.executable, "-m", "bench.naive_copy", source, table, target, target_table], REPO_ROOT)


def process_cpu(pid: int) -> Callable[[], float]:
    """The CPU seconds (user + sys) a process has used so far, as a function."""
    process = psutil.Process(pid)

    def cpu() -> float:
        times = process.cpu_times()
        return times.user + times.system
    return cpu


class _BusyShare:
    """CPU seconds a server spends per second of a copy: how close to its limit it runs."""

    def __init__(self, cpu: Callable[[], float]):
        self._cpu = cpu

    def __enter__(self) -> "_BusyShare":
        self.cpu_seconds, self._started = 0.0, self._cpu()
        return self

    def __exit__(self, *exc_info) -> None:
        self.cpu_seconds = self._cpu() - self._started


def _intake(items_file: Path, items: int, target: Target, target_table: str, concurrency: int) -> dict:
    """The ceiling's own figures: items, seconds and CPU seconds of the sending alone."""
    create_bench_table(target.url, target_table)
    out = subprocess.run([sys.executable, "-m", "bench.intake", str(items_file), str(items), target.url, target_table,
                          str(target.per_request), str(concurrency), *(["signed"] if target.signed else [])],
                         cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _drop(endpoint: str, table: str) -> None:
    """Free the target's memory (moto keeps every table) for the next copy."""
    seed.client_for(endpoint).delete_table(TableName=table)


def _best_concurrency(items_file: Path, sample: int, target: Target) -> tuple[int, dict[int, float]]:
    rates = {}
    for concurrency in CONCURRENCIES:
        figures = _intake(items_file, sample, target, f"intake_c{concurrency}", concurrency)
        _drop(target.url, f"intake_c{concurrency}")
        rates[concurrency] = figures["items"] / figures["seconds"]
    return max(rates, key=rates.get), rates


def copy_rounds(source: SlowSource, target: Target, tools: dict[str, Path], matched: bool, items_file: Path, items: int,
                sample: int, rounds: int, workdir: Path) -> dict:
    """Each round: every tool (name -> source tree, default settings; with `matched`, also this
    tree with as many requests in flight as the ceiling), the ceiling on the same items, then
    the naive copy of the sample. Figures as `_figures`, and "setup": the ceiling's concurrency."""
    concurrency, rates = _best_concurrency(items_file, sample, target)
    matched_concurrency = max(1, concurrency // WORKERS)
    runners = {name: (root, None) for name, root in tools.items()}
    if matched:
        runners["matched"] = (REPO_ROOT, matched_concurrency)
    runs: dict[str, list] = {name: [] for name in (*runners, "naive", "ceiling")}
    for round_ in range(rounds):
        for name, (root, write_concurrency) in runners.items():
            start, _ = _migrate(root, source.url, target, "bench_empty", f"{name}_empty_{round_}", workdir,
                                write_concurrency)
            with _BusyShare(process_cpu(target.pid)) as backend, _BusyShare(source.cpu_seconds) as reader:
                full, written = _migrate(root, source.url, target, "bench_bulk", f"{name}_{round_}", workdir,
                                         write_concurrency)
            assert written == items, f"bench: {name} wrote {written} of {items} items"
            runs[name].append({"start": start, "full": full, "items": items,
                               "target_cpu_seconds": backend.cpu_seconds, "source_cpu_seconds": reader.cpu_seconds})
            for done in (f"{name}_empty_{round_}", f"{name}_{round_}"):
                _drop(target.url, done)
        with _BusyShare(process_cpu(target.pid)) as backend:
            ceiling = _intake(items_file, items, target, f"ceiling_{round_}", concurrency)
        runs["ceiling"].append({**ceiling, "target_cpu_seconds": backend.cpu_seconds})
        _drop(target.url, f"ceiling_{round_}")
        start = _naive(source.url, target.url, "bench_empty", f"naive_empty_{round_}")
        full = _naive(source.url, target.url, "bench_sample", f"naive_{round_}")
        runs["naive"].append({"start": start, "full": full, "items": sample})
        for done in (f"naive_empty_{round_}", f"naive_{round_}"):
            _drop(target.url, done)
    return {**_figures(runs), "setup": {"concurrency": concurrency, "rates": rates, "matched": matched_concurrency}}


def _keep_source_pages(source: SlowSource, target: Target, tools: dict[str, Path], workdir: Path) -> None:
    """Have the replaying source keep every Scan page the rounds ask for: one copy of each
    table by each tool and by the naive copy (they also warm the target's JVM)."""
    for name, root in tools.items():
        for table in ("bench_empty", "bench_bulk"):
            _migrate(root, source.url, target, table, f"keep_{name}_{table}", workdir)
            _drop(target.url, f"keep_{name}_{table}")
    for table in ("bench_empty", "bench_sample"):
        _naive(source.url, target.url, table, f"keep_naive_{table}")
        _drop(target.url, f"keep_naive_{table}")
    source.reset()


def main(items: int = 100_000, rounds: int = 3, fast_rounds: int = 7, before: bool = False) -> dict:
    """`rounds` to the stand-in, `fast_rounds` to the fast target: a round there is short (a
    minute), and its figures drift more from round to round (a JVM target sharing 2 cores with
    the copy: the same code read 0.62 to 1.12 of the ceiling over two runs of 3 and 4 rounds, and
    one run's 5 rounds put its CPU at 1/4.5 to 1/8.3 of the naive copy's), so more of them steady
    its medians."""
    sample = min(items, SAMPLE)
    with DynamoDBLocal() as store, SlowSource(store.endpoint, replay_scans=True) as source, \
            LocalAlternator() as stand_in, DynamoDBLocal() as fast, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for table in ("bench_bulk", "bench_sample", "bench_empty"):
            create_bench_table(store.endpoint, table)
        seed_items(store.endpoint, "bench_bulk", items)
        seed_items(store.endpoint, "bench_sample", sample)
        items_file = workdir / "items.jsonl"
        intake.save_items(store.endpoint, "bench_bulk", items_file)
        tools = {"tool": REPO_ROOT}
        baseline = baseline_checkout(REPO_ROOT) if before else None
        if baseline is not None:
            tools["before"] = baseline
        _keep_source_pages(source, fast_target(fast), tools, workdir)
        print(f"bulk copy of {items:,} items (~{len(json.dumps(encode_item(bench_item(1))))} B each; the naive "
              f"copy copies the first {sample:,}), medians of {rounds} rounds ({fast_rounds} to the fast target) in "
              f"one run; CPU = user + sys of all processes, start-up subtracted", flush=True)
        figures = {}
        for target, target_tools, matched, rate_goal, target_rounds in (
                (stand_in_target(stand_in), tools, True, STAND_IN_RATE_GOAL, rounds),
                (fast_target(fast), {"tool": REPO_ROOT}, False, FAST_RATE_GOAL, fast_rounds)):
            figures[target.label] = copy_rounds(source, target, target_tools, matched, items_file, items,
                                                sample, target_rounds, workdir)
            _print(target, figures[target.label], sample, rate_goal)
        with target_on_own_core(fast.pid) as pinned:
            shared = fast_target(fast)
            own_core = replace(shared, label=f"{shared.label} on a core of its own (everything else on the "
                                             "other cores)")
            if pinned:
                figures[own_core.label] = copy_rounds(source, own_core, {"tool": REPO_ROOT}, False, items_file,
                                                      items, sample, OWN_CORE_ROUNDS, workdir)
                _print(own_core, figures[own_core.label], sample, FAST_RATE_GOAL)
            else:
                print(f"against {own_core.label}: not measured, this machine gives this process one core")
        print(f"source: {source.replayed:,} of {source.scans.answered:,} Scan pages answered from memory "
              f"(DynamoDB Local behind testbed/slow_source.py, pages kept from a copy before the rounds)")
    return figures


def _figures(runs: dict) -> dict:
    """Medians over the rounds; each copy's rate also as a share of its own round's ceiling."""
    figures = {}
    ceilings = runs["ceiling"]
    for run in ceilings:
        run["items_per_s"] = run["items"] / run["seconds"]
        run["target_busy"] = run["target_cpu_seconds"] / run["seconds"]
    figures["ceiling"] = {"cpu_us_per_item": median(r["cpu_seconds"] / r["items"] * 1e6 for r in ceilings),
                          "items_per_s": median(r["items_per_s"] for r in ceilings),
                          "target_busy": median(r["target_busy"] for r in ceilings),
                          "target_us_per_item": median(r["target_cpu_seconds"] / r["items"] * 1e6 for r in ceilings)}
    copies = {name: measured for name, measured in runs.items() if name != "ceiling"}
    for measured in copies.values():
        start_cpu = median(r["start"].cpu_seconds for r in measured)
        for run in measured:
            run["copy_seconds"] = max(1e-3, run["full"].seconds - run["start"].seconds)
            run["items_per_s"] = run["items"] / run["copy_seconds"]
            run["cpu_us_per_item"] = (run["full"].cpu_seconds - start_cpu) / run["items"] * 1e6
    for name, measured in copies.items():
        figures[name] = {
            "cpu_us_per_item": median(r["cpu_us_per_item"] for r in measured),
            "start_up_cpu_s": median(r["start"].cpu_seconds for r in measured),
            "items_per_s": median(r["items_per_s"] for r in measured),
            "max_rss_mib": median(r["full"].max_rss_mib for r in measured),
        }
        if name != "naive":
            figures[name]["vs_naive_cpu_by_round"] = [r["cpu_us_per_item"] / n["cpu_us_per_item"]
                                                      for r, n in zip(measured, runs["naive"])]
            figures[name]["vs_ceiling_by_round"] = [r["items_per_s"] / c["items_per_s"]
                                                    for r, c in zip(measured, ceilings)]
            figures[name]["vs_ceiling"] = median(figures[name]["vs_ceiling_by_round"])
            figures[name]["target_busy"] = median(r["target_cpu_seconds"] / r["copy_seconds"] for r in measured)
            for server in ("target", "source"):
                figures[name][f"{server}_us_per_item"] = median(r[f"{server}_cpu_seconds"] / r["items"] * 1e6
                                                                for r in measured)
    return figures


def _print(target: Target, figures: dict, sample: int, rate_goal: float) -> None:
    setup = figures["setup"]
    print(f"against {target.label}, {target.per_request} items a request:")
    labels = {"naive": "naive boto3 copy (1 thread, batches of 25)", "before": "alternator-migrate before issue 8",
              "tool": "alternator-migrate migrate (write.concurrency 16)",
              "matched": f"the same, write.concurrency {setup['matched']} ({setup['matched'] * WORKERS} in flight)",
              "ceiling": f"ceiling: pre-built requests, {setup['concurrency']} in flight"}
    for name in ("naive", "before", "tool", "matched", "ceiling"):
        if name not in figures:
            continue
        f = figures[name]
        start = f"  (start-up {f['start_up_cpu_s']:.1f} s CPU)" if "start_up_cpu_s" in f else ""
        rss = f"  peak {f['max_rss_mib']:.0f} MiB" if "max_rss_mib" in f else ""
        print(f"  {labels[name]:<52} {f['cpu_us_per_item']:>7.1f} us/item  {f['items_per_s']:>8,.0f} items/s"
              f"{start}{rss}")
    tool, naive, ceiling = figures["tool"], figures["naive"], figures["ceiling"]
    share = tool["cpu_us_per_item"] / naive["cpu_us_per_item"]
    by_round = tool["vs_naive_cpu_by_round"]
    print(f"  tool CPU/item vs naive: {share:.2f} = 1/{1 / share:.1f}; round by round (each round's tool and naive "
          f"copy minutes apart): " + ", ".join(f"1/{1 / r:.1f}" for r in by_round)
          + f", median 1/{1 / median(by_round):.1f} (goal: at most 1/{CPU_SHARE_GOAL}, "
            f"on the way to 1/{CPU_SHARE_AIM})")
    rate_runs = [("as many in flight as the ceiling", figures["matched"])] if "matched" in figures else []
    for name, f in (*rate_runs, ("write.concurrency 16", tool)):
        print(f"  tool rate vs the target's raw intake, {name}: {f['vs_ceiling']:.2f} (rounds: "
              + ", ".join(f"{r:.2f}" for r in f["vs_ceiling_by_round"]) + f"; goal: at least {rate_goal})")
    busy = " and ".join(f"{figures[name]['target_busy']:.0%}" for name in ("matched", "tool") if name in figures)
    print(f"  target server's process busy (a core = 100%): {busy} during the tool's copies, "
          f"{ceiling['target_busy']:.0%} under the ceiling")
    print(f"  CPU per item of every process at work (us): the tool's copy {tool['cpu_us_per_item']:.0f} + source "
          f"front (replayed pages) {tool['source_us_per_item']:.0f} + target server "
          f"{tool['target_us_per_item']:.0f}; the ceiling {ceiling['cpu_us_per_item']:.0f} + target server "
          f"{ceiling['target_us_per_item']:.0f}")
    print("  intake of the first {:,} items by concurrency: ".format(sample)
          + ", ".join(f"{c}: {r:,.0f}/s" for c, r in setup["rates"].items()))
    if "before" in figures:
        before = figures["before"]
        print(f"  tool vs before: CPU/item {tool['cpu_us_per_item'] / before['cpu_us_per_item']:.2f}, "
              f"peak memory {tool['max_rss_mib']:.0f} vs {before['max_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    arguments = [arg for arg in sys.argv[1:] if arg != "--before"]
    main(*(int(arg) for arg in arguments[:3]), before="--before" in sys.argv)
