"""Live progress of a bulk copy, read from the checkpoints."""
from __future__ import annotations

import io
import re
import time

from pipeline.progress import ProgressWatcher, poll_interval
from transforms.state import bulk_checkpoints


def test_progress_is_read_from_the_checkpoints(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    earlier = bulk_checkpoints.PageRecorder(root, 5.0)
    earlier.page_done("t", 0, 0, None, None, 700, 7000)  # from an earlier run: not this run's speed
    out = io.StringIO()
    watcher = ProgressWatcher(root, {"t": None}, interval=0.05, stream=out)
    watcher.start()
    writer = bulk_checkpoints.PageRecorder(root, 5.0)
    writer.page_done("t", 1, 0, None, {"pk": {"S": "x"}}, 300, 3000)
    writer.page_done("t", 1, 1, {"pk": {"S": "x"}}, None, 200, 2000)
    time.sleep(0.2)
    watcher.stop()

    lines = out.getvalue().splitlines()
    assert lines[-2].endswith("] done")
    table_line = lines[-1]
    assert table_line.startswith("  t: 1,200 items, ") and table_line.endswith("items/s, segments 2/2")
    rate = re.search(r"items, ([\d,]+) items/s", table_line).group(1)
    assert int(rate.replace(",", "")) > 0
    assert watcher.finished_after("t", default=-1) > 0


def test_object_stores_are_polled_every_few_seconds_local_folders_every_second():
    assert poll_interval("/var/checkpoints") == poll_interval("file:///var/checkpoints") == 1.0
    assert poll_interval("gs://bucket/checkpoints") == poll_interval("s3://bucket/checkpoints") == 5.0
