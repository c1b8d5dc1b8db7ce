"""Bulk-copy checkpoints: one small marker file per written page, on any Beam filesystem.

Layout under `<checkpoint_dir>/bulk/<source table>/`:

    segments.json                                  {"total_segments": N}
    seg-000003/p00000012-n1000-b53211[-last].json  {"next_key": <LastEvaluatedKey>}

A marker is written only after every item of its page was written (or dead-lettered),
so the markers of a segment form a prefix of its pages, except where pages were in
flight when a run died. Resume takes the longest gap-free prefix and continues from
its last `next_key`. Counts live in the file names so progress can be read from a
directory listing alone, on any runner, without opening files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from apache_beam.io.filesystems import FileSystems

from transforms.items.ddb_json import decode_item, encode_item
from transforms.state.files import delete, delete_tree, matching, read_json, write_json

_MARKER = re.compile(r"seg-(\d+)/p(\d+)-n(\d+)-b(\d+)(-last)?\.json$")


@dataclass(frozen=True)
class PageMarker:
    segment: int
    page: int
    items: int
    bytes: int
    last: bool
    path: str


@dataclass(frozen=True)
class SegmentResume:
    """Where one segment continues: after `pages_done` pages, from `start_key`."""

    segment: int
    pages_done: int
    start_key: dict | None
    done: bool


@dataclass(frozen=True)
class TableProgress:
    """How far the copy of one table got, as its checkpoints record it."""

    total_segments: int
    segments_done: int
    items: int

    @property
    def finished(self) -> bool:
        return self.segments_done >= self.total_segments


def table_dir(checkpoint_dir: str, table: str) -> str:
    return FileSystems.join(checkpoint_dir, "bulk", table)


def record_page(checkpoint_dir: str, table: str, segment: int, page: int, items: int, nbytes: int,
                next_key: dict | None) -> None:
    """Mark one page as written; `next_key` None means it was the segment's last page."""
    name = f"seg-{segment:06d}/p{page:08d}-n{items}-b{nbytes}{'' if next_key else '-last'}.json"
    write_json(FileSystems.join(table_dir(checkpoint_dir, table), name), {"next_key": encode_item(next_key)})


def list_markers(checkpoint_dir: str, table: str) -> list[PageMarker]:
    markers = []
    for path in matching(FileSystems.join(table_dir(checkpoint_dir, table), "seg-*", "*.json")):
        m = _MARKER.search(path.replace("\\", "/"))
        if m:
            markers.append(PageMarker(int(m[1]), int(m[2]), int(m[3]), int(m[4]), bool(m[5]), path))
    return markers


def progress(checkpoint_dir: str, table: str) -> TableProgress | None:
    """How far an earlier (or the running) copy of the table got; None if there was none."""
    total = recorded_segments(checkpoint_dir, table)
    if total is None:
        return None
    markers = list_markers(checkpoint_dir, table)
    return TableProgress(total, sum(1 for m in markers if m.last), sum(m.items for m in markers))


def start_fresh(checkpoint_dir: str, table: str, total_segments: int) -> None:
    """Forget an earlier run of this table and record the segmentation of this one."""
    directory = table_dir(checkpoint_dir, table)
    delete_tree(directory)
    write_json(FileSystems.join(directory, "segments.json"), {"total_segments": total_segments})


def recorded_segments(checkpoint_dir: str, table: str) -> int | None:
    """The segment count of an earlier run, which a resume must reuse; None if no run."""
    recorded = read_json(FileSystems.join(table_dir(checkpoint_dir, table), "segments.json"))
    return None if recorded is None else int(recorded["total_segments"])


def resume_points(checkpoint_dir: str, table: str, total_segments: int) -> list[SegmentResume]:
    """Per segment, where to continue; drops markers past a gap (their pages get rewritten)."""
    by_segment: dict[int, dict[int, PageMarker]] = {}
    for marker in list_markers(checkpoint_dir, table):
        by_segment.setdefault(marker.segment, {})[marker.page] = marker
    points, stale = [], []
    for segment in range(total_segments):
        pages = by_segment.get(segment, {})
        done = 0
        while done in pages and not pages[done].last:
            done += 1
        if done in pages:  # the last page is written: the segment is complete
            points.append(SegmentResume(segment, done + 1, None, True))
            continue
        stale.extend(m.path for p, m in pages.items() if p > done)
        start_key = None
        if done:
            start_key = decode_item(read_json(pages[done - 1].path)["next_key"])
        points.append(SegmentResume(segment, done, start_key, False))
    delete(stale)
    return points
