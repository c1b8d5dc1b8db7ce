"""Bulk-copy checkpoints whose cost grows with segments, not pages, on any Beam filesystem.

Layout under `<checkpoint_dir>/bulk/<source table>/`:

    segments.json    {"total_segments": N}
    run.json         {"started", "items_before", "expected_items", "exact"}: the latest run's
                     start (epoch seconds), the items copied before it, and the items the
                     copy should reach (DescribeTable's estimate, or an export's exact count),
                     so `status` can tell progress and rate from any machine
    seg-000003-start-5f0c9e21d3a4b7e8-p00000000-00000012-n12000-b5321100.json   {"next_key": ...}
    incremental-applied.json   {"exports": [...]}: the incremental exports applied after the
                     full one, once the step that applies them succeeded

Each `seg-` object records one range of a segment's pages as written (or dead-lettered):
every item of segment 3 after the Scan key named by the first digest (`start`: the
segment's beginning) up to and including the key named by the second (`end`: the
segment's end), pages 0 to 11, 12,000 items, 5,321,100 bytes; the file holds that last
key, where a resume continues. Names carry the counts, so progress is one listing.

Ranges chain only where one ends at exactly the key where the next begins, whichever
writer, bundle attempt or run recorded them: a resume that started from a recorded key
continues that chain, and a retried scan whose page boundaries moved (the table
changed) cannot be spliced into another attempt's. A segment's state is its longest
chain from `start`, so nothing counts as done unless it and everything before it in
the segment was written.

Writers (`PageRecorder`) merge pages as they complete, in any order, and rewrite a
growing range under its new name (then delete the old one) at most every few seconds,
and at once when it reaches the segment's end. Scan and write are fused on every
runner, so one writer sees all pages of a segment and a segment ends with one object;
if they are not (a shuffle between them), each writer records the ranges it has and
the chains still join up, at up to one object per range per bundle.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence


from transforms.items.ddb_json import decode_item, encode_item
from transforms.state.files import delete, delete_tree, join, listing, read_json, write_json
from transforms.state.paths import with_slashes

__all__ = ["START", "END", "RecordedRange", "SegmentResume", "TableProgress", "RunNote", "PageRecorder", "table_dir",
           "start_fresh", "recorded_segments", "note_run", "read_run", "list_ranges", "progress", "resume_points",
           "key_digest"]

START, END = "start", "end"
_RANGE = re.compile(r"seg-(\d+)-(start|[0-9a-f]{16})-(end|[0-9a-f]{16})-p(\d+)-(\d+)-n(\d+)-b(\d+)\.json$")


def key_digest(key: dict | None, edge: str) -> str:
    """A short name for a Scan key; None is the segment's `edge` (START or END)."""
    if key is None:
        return edge
    text = json.dumps(encode_item(key), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class RecordedRange:
    """Pages `first_page`..`end_page - 1` of a segment: the items after key `start` up to key `end`."""

    segment: int
    start: str
    end: str
    first_page: int
    end_page: int
    items: int
    bytes: int

    @property
    def name(self) -> str:
        return (f"seg-{self.segment:06d}-{self.start}-{self.end}-p{self.first_page:08d}-{self.end_page:08d}"
                f"-n{self.items}-b{self.bytes}.json")


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
    # Figures along with the position (equality is about how far the copy got): bytes of the
    # items recorded, and when the newest checkpoint object was written (epoch seconds).
    bytes: int = field(default=0, compare=False)
    updated: float | None = field(default=None, compare=False)

    @property
    def finished(self) -> bool:
        return self.segments_done >= self.total_segments


def table_dir(checkpoint_dir: str, table: str) -> str:
    return join(checkpoint_dir, "bulk", table)


def _applied_path(checkpoint_dir: str, table: str) -> str:
    return join(table_dir(checkpoint_dir, table), "incremental-applied.json")


def incremental_applied(checkpoint_dir: str, table: str, exports: Sequence[str]) -> bool:
    """Whether these incremental exports (in this order) were applied to the table; True if
    there are none. The step is applied again as a whole after an interruption: its puts and
    deletes are of the latest state."""
    return not exports or read_json(_applied_path(checkpoint_dir, table)) == {"exports": list(exports)}


def record_incremental_applied(checkpoint_dir: str, table: str, exports: Sequence[str]) -> None:
    """Record, after the step's pipeline succeeded, that these incremental exports were applied."""
    write_json(_applied_path(checkpoint_dir, table), {"exports": list(exports)})


def start_fresh(checkpoint_dir: str, table: str, total_segments: int) -> None:
    """Forget an earlier run of this table and record the segmentation of this one."""
    directory = table_dir(checkpoint_dir, table)
    delete_tree(directory)
    write_json(join(directory, "segments.json"), {"total_segments": total_segments})


def recorded_segments(checkpoint_dir: str, table: str) -> int | None:
    """The segment count of an earlier run, which a resume must reuse; None if no run."""
    recorded = read_json(join(table_dir(checkpoint_dir, table), "segments.json"))
    return None if recorded is None else int(recorded["total_segments"])


@dataclass(frozen=True)
class RunNote:
    """What the latest run of a table noted when it started (`run.json`)."""

    started: float
    items_before: int
    expected_items: int | None = None
    exact: bool = False


def note_run(checkpoint_dir: str, table: str, note: RunNote) -> None:
    write_json(join(table_dir(checkpoint_dir, table), "run.json"), asdict(note))


def read_run(checkpoint_dir: str, table: str) -> RunNote | None:
    found = read_json(join(table_dir(checkpoint_dir, table), "run.json"))
    return None if found is None else RunNote(**found)


def _listing(checkpoint_dir: str, table: str) -> tuple[dict[str, RecordedRange], list[str], float | None]:
    """One listing of the table's state: range objects by path, leftovers of killed writes, and
    when the newest range object was written (None: none is there)."""
    ranges, leftovers, newest = {}, [], None
    for meta in listing(join(table_dir(checkpoint_dir, table), "seg-*")):
        m = _RANGE.search(with_slashes(meta.path))
        if m:
            ranges[meta.path] = RecordedRange(int(m[1]), m[2], m[3], int(m[4]), int(m[5]), int(m[6]), int(m[7]))
            if meta.last_updated_in_seconds:
                newest = max(newest or 0.0, meta.last_updated_in_seconds)
        else:  # a temporary name left by a write that was killed before its rename
            leftovers.append(meta.path)
    return ranges, leftovers, newest


def list_ranges(checkpoint_dir: str, table: str) -> list[RecordedRange]:
    """Every range object of the table, as one listing shows them."""
    return list(_listing(checkpoint_dir, table)[0].values())


@dataclass(frozen=True)
class _Chain:
    """Ranges joined end to start from the segment's beginning; `last` is the newest link."""

    pages: int = 0
    items: int = 0
    bytes: int = 0
    last: RecordedRange | None = None
    last_path: str | None = None
    before: "_Chain | None" = None

    def paths(self) -> Iterable[str]:
        chain: _Chain | None = self
        while chain is not None and chain.last_path is not None:
            yield chain.last_path
            chain = chain.before

    @property
    def done(self) -> bool:
        return self.last is not None and self.last.end == END


def _longest_chains(ranges: dict[str, RecordedRange]) -> dict[int, _Chain]:
    """Per segment, the longest chain of ranges from its beginning (by pages; the end wins)."""
    by_segment: dict[int, list[tuple[str, RecordedRange]]] = {}
    for path, r in ranges.items():
        by_segment.setdefault(r.segment, []).append((path, r))
    chains = {}
    for segment, entries in by_segment.items():
        reached: dict[str, _Chain] = {START: _Chain()}
        # A range can only follow one that starts on an earlier page, so one pass in page order suffices.
        for path, r in sorted(entries, key=lambda e: (e[1].first_page, -e[1].end_page)):
            at = reached.get(r.start)
            if at is None:
                continue
            longer = _Chain(at.pages + r.end_page - r.first_page, at.items + r.items, at.bytes + r.bytes, r, path, at)
            if r.end not in reached or longer.pages > reached[r.end].pages:
                reached[r.end] = longer
        chains[segment] = reached.get(END) or max(reached.values(), key=lambda c: c.pages)
    return chains


def progress(checkpoint_dir: str, table: str) -> TableProgress | None:
    """How far an earlier (or the running) copy of the table got; None if there was none.

    Costs one read (segments.json) and one listing of O(segments) names, whatever the table's size."""
    total = recorded_segments(checkpoint_dir, table)
    if total is None:
        return None
    ranges, _, newest = _listing(checkpoint_dir, table)
    chains = _longest_chains(ranges)
    return TableProgress(total, sum(1 for c in chains.values() if c.done), sum(c.items for c in chains.values()),
                         sum(c.bytes for c in chains.values()), newest)


def resume_points(checkpoint_dir: str, table: str, total_segments: int) -> list[SegmentResume]:
    """Per segment, where to continue. One listing, one read per unfinished segment with
    progress, and the objects off every chain (superseded, or past a gap) are deleted."""
    ranges, leftovers, _ = _listing(checkpoint_dir, table)
    chains = _longest_chains(ranges)
    points = []
    for segment in range(total_segments):
        chain = chains.get(segment, _Chain())
        start_key = None
        if chain.last is not None and not chain.done:
            start_key = decode_item(read_json(chain.last_path)["next_key"])
        points.append(SegmentResume(segment, chain.last.end_page if chain.last else 0, start_key, chain.done))
    kept = {path for chain in chains.values() for path in chain.paths()}
    delete([path for path in ranges if path not in kept] + leftovers)
    return points


@dataclass
class _Range:
    """A writer's run of completed pages, its last key, and the objects that recorded it or its parts."""

    span: RecordedRange
    next_key: dict | None
    written: str | None = None  # the object holding exactly this range
    superseded: list[str] = field(default_factory=list)  # objects of its parts, deleted once it is written

    def join(self, after: "_Range") -> "_Range":
        a, b = self.span, after.span
        return _Range(RecordedRange(a.segment, a.start, b.end, a.first_page, b.end_page, a.items + b.items,
                                    a.bytes + b.bytes), after.next_key, None,
                      self.superseded + after.superseded + [p for p in (self.written, after.written) if p])


class _SegmentPages:
    """One segment's completed pages in one writer, merged into ranges by their keys."""

    def __init__(self, now: float):
        self.by_start: dict[str, _Range] = {}
        self.by_end: dict[str, _Range] = {}
        self.recorded_at = now

    def add(self, page: _Range) -> None:
        joined = page
        before = self.by_end.pop(page.span.start, None)
        if before is not None:
            del self.by_start[before.span.start]
            joined = before.join(joined)
        after = self.by_start.pop(page.span.end, None)
        if after is not None:
            del self.by_end[after.span.end]
            joined = joined.join(after)
        self.by_start[joined.span.start] = joined
        self.by_end[joined.span.end] = joined

    def first(self) -> _Range:
        """The range with the lowest pages: where the segment's scan began, when scan and write are fused."""
        return min(self.by_start.values(), key=lambda r: r.span.first_page)


class PageRecorder:
    """What one writer records about the pages it wrote (see the module docstring).

    Call `page_done` after a page's items were all written or dead-lettered, in any order,
    and `flush` at the end of every bundle. `on_record(table)` is called for every object
    written, on the caller's thread (Beam counters live there).
    """

    def __init__(self, checkpoint_dir: str, interval_seconds: float,
                 on_record: Callable[[str], None] = lambda table: None,
                 clock: Callable[[], float] = time.monotonic):
        self._dir = checkpoint_dir
        self._interval = interval_seconds
        self._on_record = on_record
        self._clock = clock
        self._segments: dict[tuple[str, int], _SegmentPages] = {}

    def page_done(self, table: str, segment: int, index: int, start_key: dict | None, next_key: dict | None,
                  items: int, nbytes: int) -> None:
        now = self._clock()
        pages = self._segments.setdefault((table, segment), _SegmentPages(now))
        pages.add(_Range(RecordedRange(segment, key_digest(start_key, START), key_digest(next_key, END), index,
                                       index + 1, items, nbytes), next_key))
        first = pages.first()
        if first.span.end == END or now - pages.recorded_at >= self._interval:
            self._record(table, first)
            pages.recorded_at = now
            if first.span.end == END and len(pages.by_start) == 1:  # the segment is complete: nothing more to hold
                del self._segments[(table, segment)]

    def flush(self) -> None:
        """Record every range not recorded yet, and forget them (the bundle is over)."""
        for (table, _segment), pages in self._segments.items():
            for r in pages.by_start.values():
                self._record(table, r)
        self._segments.clear()

    def _record(self, table: str, r: _Range) -> None:
        path = join(table_dir(self._dir, table), r.span.name)
        if r.written == path:
            return
        write_json(path, {"next_key": encode_item(r.next_key)})  # the new object first: a reader always sees one
        self._on_record(table)
        delete([p for p in r.superseded + [r.written] if p and p != path])
        r.written, r.superseded = path, []
