"""Bulk-copy checkpoints: what writers record, what progress shows and what a resume continues from.

These drive `PageRecorder` the way the writer does (pages complete in any order, a
bundle ends with `flush`) against a real local folder; the end-to-end kill and resume
is in tests/e2e/test_bulk.py.
"""
from __future__ import annotations

from pathlib import Path

from transforms.state import bulk_checkpoints
from transforms.state.bulk_checkpoints import PageRecorder, SegmentResume


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def key(n: int) -> dict:
    return {"pk": {"S": f"k{n:04d}"}, "raw": {"B": bytes([n % 256, 0])}}


def pages(count: int, first: int = 0, start: dict | None = None, tag: str = "") -> list[tuple]:
    """(index, start key, next key) of a segment's pages; the last one ends the segment.
    `tag` gives another scan attempt other page boundaries (the table changed in between)."""
    out, before = [], start
    for index in range(first, first + count):
        after = None if index == first + count - 1 else {"pk": {"S": f"k{index:04d}{tag}"}}
        out.append((index, before, after))
        before = after
    return out


def done(recorder: PageRecorder, table: str, segment: int, page: tuple, items: int = 10) -> None:
    index, start, after = page
    recorder.page_done(table, segment, index, start, after, items, 100 * items)


def state_objects(root: str, table: str = "t") -> list[Path]:
    return sorted(Path(bulk_checkpoints.table_dir(root, table)).glob("seg-*"))


def test_pages_completed_out_of_order_count_only_as_a_gap_free_prefix(tmp_path):
    root, clock = str(tmp_path), Clock()
    bulk_checkpoints.start_fresh(root, "t", 1)
    recorder = PageRecorder(root, 5.0, clock=clock)
    segment = pages(6)
    for i in (0, 2, 1, 4, 5):  # page 3 is still in flight when the run dies
        clock.now += 3
        done(recorder, "t", 0, segment[i])
    # No flush: the process was killed. What the recorder wrote every 5 s is all there is.

    points = bulk_checkpoints.resume_points(root, "t", 1)

    assert points == [SegmentResume(0, 3, segment[2][2], False)]  # continue after page 2, from its next key
    progress = bulk_checkpoints.progress(root, "t")
    assert (progress.items, progress.segments_done, progress.total_segments) == (30, 0, 1)


def test_a_segment_ends_with_one_object_however_many_pages_it_had(tmp_path):
    root, clock = str(tmp_path), Clock()
    bulk_checkpoints.start_fresh(root, "t", 3)
    written = []
    recorder = PageRecorder(root, 5.0, on_record=written.append, clock=clock)
    segments = {s: pages(200) for s in range(3)}
    for index in range(200):  # three segments interleaved, one page per second each
        clock.now += 1
        for s, segment in segments.items():
            done(recorder, "t", s, segment[index])
    recorder.flush()

    assert len(state_objects(root)) == 3  # one object per segment: O(segments), not O(pages)
    assert len(written) == 3 * 40  # every 5 s per segment, and at its end: 600 pages, 120 writes
    assert all(table == "t" for table in written)
    assert bulk_checkpoints.progress(root, "t") == bulk_checkpoints.TableProgress(3, 3, 3 * 200 * 10)
    assert [p.done for p in bulk_checkpoints.resume_points(root, "t", 3)] == [True, True, True]


def test_a_short_segment_is_written_once_at_its_end(tmp_path):
    root, clock = str(tmp_path), Clock()
    bulk_checkpoints.start_fresh(root, "t", 1)
    written = []
    recorder = PageRecorder(root, 5.0, on_record=written.append, clock=clock)
    for page in pages(4):
        clock.now += 1
        done(recorder, "t", 0, page)

    assert written == ["t"]  # before any flush: the segment's end is recorded at once
    assert bulk_checkpoints.progress(root, "t").finished


def test_pages_of_one_segment_spread_over_writers_still_join_up(tmp_path):
    """A shuffle between scan and write: every other page lands on another writer."""
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 1)
    first, second = PageRecorder(root, 5.0), PageRecorder(root, 5.0)
    segment = pages(10)
    for page in segment:
        done(first if page[0] % 2 else second, "t", 0, page)
    second.flush()
    assert not bulk_checkpoints.progress(root, "t").finished  # half the pages are not recorded yet
    first.flush()

    assert bulk_checkpoints.progress(root, "t") == bulk_checkpoints.TableProgress(1, 1, 100)
    assert bulk_checkpoints.resume_points(root, "t", 1) == [SegmentResume(0, 10, None, True)]


def test_ranges_of_two_scan_attempts_are_never_spliced(tmp_path):
    """A retried bundle re-scans the segment, and the table changed: page boundaries moved.
    Attempt A recorded pages 0-1; attempt B's pages 2-3 (to the end) cannot follow them."""
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 1)
    a, b = pages(4), pages(4, tag="-moved")
    first, retry = PageRecorder(root, 5.0), PageRecorder(root, 5.0)
    for page in a[:2]:
        done(first, "t", 0, page)
    first.flush()
    for page in b[2:]:
        done(retry, "t", 0, page)
    retry.flush()

    assert bulk_checkpoints.progress(root, "t") == bulk_checkpoints.TableProgress(1, 0, 20)
    assert bulk_checkpoints.resume_points(root, "t", 1) == [SegmentResume(0, 2, a[1][2], False)]
    assert len(state_objects(root)) == 1  # the resume dropped B's range: no chain can reach it


def test_a_resumed_segment_continues_the_chain_it_started_from(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 1)
    segment = pages(6)
    killed = PageRecorder(root, 5.0)
    for page in segment[:3]:
        done(killed, "t", 0, page)
    killed.flush()
    point, = bulk_checkpoints.resume_points(root, "t", 1)
    assert (point.pages_done, point.start_key) == (3, segment[2][2])

    resumed = PageRecorder(root, 5.0)
    for page in pages(3, first=point.pages_done, start=point.start_key):
        done(resumed, "t", 0, page, items=7)

    assert bulk_checkpoints.progress(root, "t") == bulk_checkpoints.TableProgress(1, 1, 3 * 10 + 3 * 7)


def test_resume_deletes_superseded_objects_and_leftovers_of_killed_writes(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    segment = pages(5)
    short, long = PageRecorder(root, 5.0), PageRecorder(root, 5.0)  # two attempts at the same segment
    for page in segment[:2]:
        done(short, "t", 0, page)
    short.flush()
    for page in segment[:4]:
        done(long, "t", 0, page)
    long.flush()
    leftover = Path(bulk_checkpoints.table_dir(root, "t")) / "seg-000001-start-end.json.tmp-0123"
    leftover.write_text("{")
    assert len(state_objects(root)) == 3

    points = bulk_checkpoints.resume_points(root, "t", 2)

    assert points == [SegmentResume(0, 4, segment[3][2], False), SegmentResume(1, 0, None, False)]
    assert [r.end_page for r in bulk_checkpoints.list_ranges(root, "t")] == [4]
    assert len(state_objects(root)) == 1


def test_start_fresh_forgets_an_earlier_run(tmp_path):
    root = str(tmp_path)
    bulk_checkpoints.start_fresh(root, "t", 2)
    done(PageRecorder(root, 5.0), "t", 0, (0, None, None))
    bulk_checkpoints.start_fresh(root, "t", 5)
    assert bulk_checkpoints.list_ranges(root, "t") == []
    assert bulk_checkpoints.recorded_segments(root, "t") == 5
    assert bulk_checkpoints.recorded_segments(root, "other") is None
    assert bulk_checkpoints.progress(root, "other") is None
