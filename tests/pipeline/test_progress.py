"""Live progress of a bulk copy, read from the checkpoints."""
from __future__ import annotations

import io
import re
import time

from pipeline.progress import ProgressWatcher
from transforms.state import bulk_checkpoints


def test_progress_is_read_from_the_checkpoint_markers(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    bulk_checkpoints.record_page(root, "t", 0, 0, 700, 7000, None)  # from an earlier run: not this run's speed
    out = io.StringIO()
    watcher = ProgressWatcher(root, {"t": None}, interval=0.05, stream=out)
    watcher.start()
    bulk_checkpoints.record_page(root, "t", 1, 0, 300, 3000, {"pk": {"S": "x"}})
    bulk_checkpoints.record_page(root, "t", 1, 1, 200, 2000, None)
    time.sleep(0.2)
    watcher.stop()

    lines = out.getvalue().splitlines()
    assert lines[-2].endswith("] done")
    table_line = lines[-1]
    assert table_line.startswith("  t: 1,200 items, ") and table_line.endswith("items/s, segments 2/2")
    rate = re.search(r"items, ([\d,]+) items/s", table_line).group(1)
    assert int(rate.replace(",", "")) > 0
    assert watcher.finished_after("t", default=-1) > 0
