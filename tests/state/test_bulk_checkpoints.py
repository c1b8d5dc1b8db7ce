"""Bulk-copy checkpoints: what a resume continues from."""
from __future__ import annotations

from transforms.state import bulk_checkpoints


def test_resume_takes_the_gap_free_prefix_and_drops_markers_after_a_gap(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 3)
    key = {"pk": {"S": "a"}, "raw": {"B": b"\x00\x01"}}
    # segment 0: pages 0, 1 done, 2 missing (in flight when the run died), 3 done
    for page in (0, 1, 3):
        bulk_checkpoints.record_page(root, "t", 0, page, 10, 100, {"pk": {"S": f"p{page}"}, "raw": {"B": b"\x00"}})
    bulk_checkpoints.record_page(root, "t", 0, 1, 10, 100, key)
    # segment 1: finished in two pages; segment 2: nothing yet
    bulk_checkpoints.record_page(root, "t", 1, 0, 10, 100, key)
    bulk_checkpoints.record_page(root, "t", 1, 1, 5, 50, None)

    points = bulk_checkpoints.resume_points(root, "t", 3)

    assert points[0] == bulk_checkpoints.SegmentResume(0, 2, key, False)
    assert points[1].done and points[1].pages_done == 2
    assert points[2] == bulk_checkpoints.SegmentResume(2, 0, None, False)
    remaining = {(m.segment, m.page) for m in bulk_checkpoints.list_markers(root, "t")}
    assert remaining == {(0, 0), (0, 1), (1, 0), (1, 1)}  # page 3 of segment 0 will be redone
    assert bulk_checkpoints.recorded_segments(root, "t") == 3


def test_start_fresh_forgets_an_earlier_run(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    bulk_checkpoints.record_page(root, "t", 0, 0, 1, 1, None)
    bulk_checkpoints.start_fresh(root, "t", 5)
    assert bulk_checkpoints.list_markers(root, "t") == []
    assert bulk_checkpoints.recorded_segments(root, "t") == 5
    assert bulk_checkpoints.recorded_segments(root, "other") is None
