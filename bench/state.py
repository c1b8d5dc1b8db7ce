"""What bulk-copy state costs: objects written, objects listed per progress poll, time to resume.

Three ways, each labelled in the output:
- measured, real run: `alternator-migrate migrate` of 100,000 items (DynamoDB Local ->
  the local Alternator stand-in, DirectRunner with two worker processes, `auto`
  segments); objects written is the run's `checkpoint_writes` counter;
- measured, state module driven directly: 100,000 and 1,000,000 items, through the
  same `PageRecorder` the writer uses (pages complete out of order, three in flight;
  a simulated clock at the real run's speed), into a local folder; a resume is timed
  on the state as a SIGKILL at 60% would leave it;
- computed: a 10 TB table with `auto` segments, from the same rules.
Listing and reading are counted at Beam's FileSystems, which every store goes through.
The figures of the earlier layout (one marker per 1,000-item page) are computed.

Run: .venv/bin/python -m bench.state
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from apache_beam.io.filesystems import FileSystems

from bench.bulk import seed_bench_table
from bench.measure import run_measured
from pipeline.checks.tables import auto_segments
from testbed.servers import REPO_ROOT, DynamoDBLocal, LocalAlternator
from transforms.state import bulk_checkpoints
from transforms.state.bulk_checkpoints import END, START, PageRecorder, RecordedRange

PAGE_ITEMS = 1000
WORKERS = 2
INTERVAL = 5.0
ITEMS_PER_LIST_REQUEST = 1000  # what S3 and GCS return per listing call


@dataclass
class Calls:
    listed: int = 0  # names returned by listings
    read: int = 0    # objects opened for reading


@contextlib.contextmanager
def counted_calls():
    """Count the names FileSystems.match returns and the objects FileSystems.open reads."""
    calls = Calls()
    match, open_ = FileSystems.match, FileSystems.open

    def counting_match(patterns, limits=None):
        results = match(patterns, limits)
        calls.listed += sum(len(r.metadata_list) for r in results)
        return results

    def counting_open(path, *args, **kwargs):
        calls.read += 1
        return open_(path, *args, **kwargs)

    FileSystems.match, FileSystems.open = staticmethod(counting_match), staticmethod(counting_open)
    try:
        yield calls
    finally:
        FileSystems.match, FileSystems.open = staticmethod(match), staticmethod(open_)


def _poll(root: str, table: str) -> Calls:
    with counted_calls() as calls:
        bulk_checkpoints.progress(root, table)
    return calls


def _timed_resume(root: str, table: str) -> tuple[float, Calls]:
    total = bulk_checkpoints.recorded_segments(root, table)
    with counted_calls() as calls:
        started = time.perf_counter()
        bulk_checkpoints.resume_points(root, table, total)
        seconds = time.perf_counter() - started
    return seconds, calls


def real_run(items: int) -> dict:
    """A real `migrate` of `items` items; its state costs."""
    with DynamoDBLocal() as source, LocalAlternator() as target, tempfile.TemporaryDirectory() as tmp:
        table, workdir = "bench_state", Path(tmp)
        seed_bench_table(source.endpoint, table, items)
        config = workdir / "state.yaml"
        config.write_text(yaml.safe_dump({
            "source": {"endpoint": source.endpoint, "credentials": {"access_key_id": "b", "secret_access_key": "b"}},
            "target": {"alternator": {"seeds": ["127.0.0.1"], "port": target.port}},
            "tables": [{"source": table}],
            "checkpoint_dir": str(workdir / "checkpoints"), "dead_letter_dir": str(workdir / "dead-letter"),
            "pipeline_options": {"runner": "DirectRunner", "direct_num_workers": WORKERS,
                                 "direct_running_mode": "multi_processing"}}))
        seconds, _ = run_measured([sys.executable, "-m", "pipeline.cli", "migrate", "--config", str(config),
                                   "--no-progress", "--report", str(workdir / "report.json")], REPO_ROOT)
        entry = json.loads((workdir / "report.json").read_text())["tables"][table]
        assert entry["written"] == items, f"bench: only {entry['written']} of {items} items written"
        root = str(workdir / "checkpoints")
        poll = _poll(root, table)
        resume_seconds, resume = _timed_resume(root, table)
    return {"items": items, "segments": entry["segments"], "pages": math.ceil(items / PAGE_ITEMS),
            "written": entry["checkpoint_writes"], "listed": poll.listed, "read": poll.read,
            "resume_seconds": resume_seconds, "resume_listed": resume.listed, "resume_read": resume.read,
            "items_per_s": items / seconds}


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def direct_exercise(items: int, items_per_s: float, in_flight: int = 3, kill_at: float = 0.6) -> dict:
    """Drive the state module as `WORKERS` writers copying `items` items would."""
    segments = auto_segments(items, items * 230, PAGE_ITEMS, WORKERS)
    pages = math.ceil(items / PAGE_ITEMS)
    per_segment = [pages // segments + (1 if s < pages % segments else 0) for s in range(segments)]
    rng = random.Random(7)
    root = tempfile.mkdtemp(prefix="bench-state-")
    killed = tempfile.mkdtemp(prefix="bench-state-killed-")
    try:
        bulk_checkpoints.start_fresh(root, "bench", segments)
        clock, written = _Clock(), []
        writers = [PageRecorder(root, INTERVAL, on_record=written.append, clock=clock) for _ in range(WORKERS)]
        # Each writer copies its segments one after the other; the writers run side by side.
        queues = [[(s, i) for s in range(w, segments, WORKERS) for i in range(per_segment[s])] for w in range(WORKERS)]
        keys = {}  # (segment, page) -> its next key (None at the segment's end)
        for s in range(segments):
            for i in range(per_segment[s]):
                keys[(s, i)] = None if i == per_segment[s] - 1 else {"pk": {"S": f"s{s}-p{i}"}}
        step = PAGE_ITEMS / (items_per_s / WORKERS)
        done_pages, snapshot_poll = 0, None
        for position in range(0, max(len(q) for q in queues), in_flight):
            for writer, queue in zip(writers, queues):
                window = queue[position:position + in_flight]
                rng.shuffle(window)  # pages in flight complete in any order
                for s, i in window:
                    clock.now += step / WORKERS
                    start = None if i == 0 else keys[(s, i - 1)]
                    writer.page_done("bench", s, i, start, keys[(s, i)], PAGE_ITEMS, PAGE_ITEMS * 230)
                    done_pages += 1
            if snapshot_poll is None and done_pages >= kill_at * pages:  # SIGKILL here: no flush
                shutil.rmtree(killed)
                shutil.copytree(root, killed)
                snapshot_poll = _poll(root, "bench")
        for writer in writers:
            writer.flush()
        resume_seconds, resume = _timed_resume(killed, "bench")
        final_poll = _poll(root, "bench")
        objects_left = len(bulk_checkpoints.list_ranges(root, "bench"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(killed, ignore_errors=True)
    return {"items": items, "segments": segments, "pages": pages, "written": len(written),
            "objects_left": objects_left, "listed": max(snapshot_poll.listed, final_poll.listed),
            "read": final_poll.read, "resume_seconds": resume_seconds, "resume_listed": resume.listed,
            "resume_read": resume.read}


def ten_terabytes(item_bytes: int = 500, workers: int = 100, items_per_s_per_segment: float = 5000) -> dict:
    """A 10 TB table of `item_bytes` items with `auto` segments: objects written and list
    requests computed; the state such a run leaves when killed (every segment started,
    `workers` of them unfinished) laid out in a local folder, and a poll and a resume of it
    measured there (an object store adds its list requests on top)."""
    size = 10 ** 13
    items = size // item_bytes
    segments = auto_segments(items, size, PAGE_ITEMS, workers)
    pages = math.ceil(items / PAGE_ITEMS)
    segment_seconds = items / segments / items_per_s_per_segment
    writes = segments * (1 + math.ceil(segment_seconds / INTERVAL))
    root = tempfile.mkdtemp(prefix="bench-state-10tb-")
    try:
        bulk_checkpoints.start_fresh(root, "bench", segments)
        folder = Path(bulk_checkpoints.table_dir(root, "bench"))
        per_segment = pages // segments
        for s in range(segments):
            unfinished = s < workers
            next_key = {"pk": {"S": f"s{s}"}} if unfinished else None
            end = bulk_checkpoints.key_digest(next_key, END)
            name = RecordedRange(s, START, end, 0, per_segment // (2 if unfinished else 1),
                                 items // segments, size // segments).name
            (folder / name).write_text(json.dumps({"next_key": next_key}))
        started = time.perf_counter()
        poll = _poll(root, "bench")
        poll_seconds = time.perf_counter() - started
        resume_seconds, resume = _timed_resume(root, "bench")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"items": items, "segments": segments, "pages": pages, "written": writes, "listed": poll.listed,
            "read": poll.read, "list_requests": math.ceil(poll.listed / ITEMS_PER_LIST_REQUEST),
            "poll_seconds": poll_seconds, "resume_seconds": resume_seconds, "resume_read": resume.read,
            "segment_seconds": segment_seconds, "workers": workers, "item_bytes": item_bytes,
            "items_per_s_per_segment": items_per_s_per_segment}


def main(real_items: int = 100_000, direct_items: tuple[int, ...] = (100_000, 1_000_000)) -> dict:
    real = real_run(real_items)
    direct = [direct_exercise(n, real["items_per_s"]) for n in direct_items]
    big = ten_terabytes()
    print(f"bulk-copy state, {INTERVAL:g} s checkpoint interval, 1,000-item pages; 'before' = one marker per page:")
    print(f"  measured, real run of {real['items']:,} items ({real['segments']} auto segments, "
          f"{real['items_per_s']:,.0f} items/s): {real['written']:,} state objects written (before: "
          f"{real['pages']:,}); a progress poll listed {real['listed']:,} names and read {real['read']} object "
          f"(before: {real['pages']:,} names); resume computed in {real['resume_seconds'] * 1000:.1f} ms")
    for d in direct:
        print(f"  measured, state module driven directly, {d['items']:,} items ({d['segments']} segments): "
              f"{d['written']:,} objects written (before: {d['pages']:,}), {d['objects_left']} left at the end; "
              f"a poll lists at most {d['listed']:,} names + reads {d['read']} (before: {d['pages']:,} names); "
              f"resume after a kill at 60%: {d['resume_seconds'] * 1000:.1f} ms, {d['resume_listed']} names "
              f"listed, {d['resume_read']} objects read")
    print(f"  computed, 10 TB of {big['item_bytes']}-byte items, auto segments ({big['workers']} workers): "
          f"{big['segments']:,} segments, {big['pages']:,} pages; ~{big['written']:,} objects written "
          f"(a {big['segment_seconds']:.0f} s segment at {big['items_per_s_per_segment']:,.0f} items/s) vs "
          f"{big['pages']:,} before; a poll lists {big['listed']:,} names ({big['list_requests']:,} list requests) "
          f"+ reads {big['read']} vs {big['pages']:,} names ({math.ceil(big['pages'] / ITEMS_PER_LIST_REQUEST):,} "
          f"requests)")
    print(f"    that state laid out in a local folder: a poll took {big['poll_seconds']:.1f} s, a resume "
          f"{big['resume_seconds']:.1f} s ({big['resume_read']} objects read: the unfinished segments + 1)")
    return {"real": real, "direct": direct, "ten_terabytes": big}


if __name__ == "__main__":
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    main()
