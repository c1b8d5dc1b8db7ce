"""Live progress of a bulk copy and of a validation, read from the checkpoints: the watcher on
its own, then the installed console script on a pseudo-terminal (Python's `pty`) and on a pipe."""
from __future__ import annotations

import io
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
import fcntl
from pathlib import Path

import pytest

from pipeline.progress import ProgressWatcher, Tracked, poll_interval
from tests.support import seed
from tests.support.cli_runs import (CONSOLE_SCRIPT, alternator_target, interrupt, items_copied, run_script,
                                    script_env, start_script, unique, write_config)
from transforms.state import bulk_checkpoints

ERASE_LINE = "\r\x1b[2K"


class _Terminal(io.StringIO):
    """A stream that says it is a terminal (the watcher then redraws in place)."""

    def isatty(self) -> bool:
        return True


def test_progress_is_read_from_the_checkpoints(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    earlier = bulk_checkpoints.PageRecorder(root, 5.0)
    earlier.page_done("t", 0, 0, None, None, 700, 7000)  # from an earlier run: not this run's speed
    out = io.StringIO()
    watcher = ProgressWatcher([Tracked("t", root, "t", 1300)], interval=0.05, stream=out)
    watcher.start()
    writer = bulk_checkpoints.PageRecorder(root, 5.0)
    writer.page_done("t", 1, 0, None, {"pk": {"S": "x"}}, 300, 3000)
    writer.page_done("t", 1, 1, {"pk": {"S": "x"}}, None, 200, 2000)
    time.sleep(0.2)
    watcher.stop()
    watcher.show_end("done", {"t": (500, 2.0)})

    lines = out.getvalue().splitlines()
    assert lines[0] == "t: resuming; 700 items were copied before this run (1 of 2 segments done)"
    assert lines[-2].endswith("] done")
    assert lines[-1] == "  t: 500 items in 2.0 s, 250 items/s, segments 2/2"
    assert watcher.copied("t") == 500
    assert watcher.finished_after("t", default=-1) > 0


def test_the_rate_is_smoothed_over_the_checkpoint_interval(tmp_path):
    """Checkpoints grow in steps (every 0.4 s here); polled every 0.05 s, a rate over one poll
    would read 0 between steps. Over the window (two intervals) it never does once it started."""
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 1)
    out = _Terminal()
    watcher = ProgressWatcher([Tracked("t", root, "t", 100_000)], interval=0.05, window=0.8, stream=out)
    watcher.start()
    writer = bulk_checkpoints.PageRecorder(root, 0.0)
    key = None
    for page in range(6):
        writer.page_done("t", 0, page, key, {"pk": {"S": str(page)}}, 1000, 10_000)
        key = {"pk": {"S": str(page)}}
        time.sleep(0.4)
    watcher.stop()

    rates = [int(m.group(1).replace(",", "")) for m in re.finditer(r", ([\d,]+) items/s", out.getvalue())]
    assert len(rates) > 30
    started = rates.index(next(rate for rate in rates if rate > 0))
    assert min(rates[started:]) > 0, rates
    assert "ETA ~" in out.getvalue()
    assert re.search(r"  t: 6,000 of ~100,000 items \(6%\), [\d,]+ items/s, ETA ~\d+ (s|min), segments 0/1",
                     out.getvalue())


def test_on_a_terminal_the_block_is_redrawn_in_place_and_cut_to_its_width(tmp_path):
    root = str(tmp_path)
    for table in ("a", "b"):
        bulk_checkpoints.start_fresh(root, table, 1)
    out = _Terminal()
    watcher = ProgressWatcher([Tracked(name, root, name, 10, exact=True) for name in ("a", "b")], interval=0.05,
                              stream=out, annotate=lambda label: " | capture: " + "x" * 300)
    watcher.start()
    time.sleep(0.2)
    watcher.stop()
    watcher.show_end("done")

    text = out.getvalue()
    assert not text.startswith("\x1b[")  # the first block is drawn where the cursor is
    assert text.count("\x1b[3A") >= 2  # then each block goes back up over its 3 lines
    assert text.endswith("  b: 0 items in " + text.rsplit("  b: 0 items in ", 1)[1])
    first = text.split("\x1b[3A")[0]
    assert first.count(ERASE_LINE) == 3 and "  a: 0 of 10 items (0%), 0 items/s, segments 0/1" in first


def test_object_stores_are_polled_every_few_seconds_local_folders_every_second():
    assert poll_interval("/var/checkpoints") == poll_interval("file:///var/checkpoints") == 1.0
    assert poll_interval("gs://bucket/checkpoints") == poll_interval("s3://bucket/checkpoints") == 5.0
