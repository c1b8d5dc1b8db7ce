"""Live progress of a bulk copy (or a validation's scans), read from the checkpoints.

The checkpoints are the only thing every runner shares with the launcher (Dataflow
workers can write to gs:// but cannot print to your terminal), so progress is one
listing of O(segments) names per table (`bulk_checkpoints.progress`): items copied,
items/s, segments done of total. A local folder is polled every second; an object
store, which lists ~1,000 names per request, every 5 seconds; and never more often
than twice the time the last poll took, so a huge listing cannot keep the launcher busy.

A segment's checkpoint grows in steps, at most every `checkpoint_interval_seconds`, so the
rate is taken over a window of at least twice that interval: a shorter one swings between
0 and double. Percent and ETA come from the items a table should reach: DescribeTable's
ItemCount, which DynamoDB refreshes about every 6 hours (approximate, shown with `~`), or
an export's manifest (exact).

On a terminal the lines are redrawn in place (ANSI cursor-up and erase-line, each line cut
to the terminal's width so none wraps); elsewhere a block is printed every 10 seconds.
"""
from __future__ import annotations

import collections
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, TextIO

from apache_beam.io.filesystems import FileSystems

from transforms.state import bulk_checkpoints

NOT_A_TERMINAL_EVERY = 10.0  # seconds between blocks when stderr is not a terminal


def poll_interval(checkpoint_dir: str) -> float:
    """Seconds between polls of checkpoints kept at `checkpoint_dir`."""
    return 1.0 if FileSystems.get_scheme(checkpoint_dir) in (None, "file") else 5.0


def per_second(items: int, seconds: float) -> float:
    """The rate a summary shows (the progress's last lines show the same)."""
    return items / max(seconds, 1e-9)


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:,.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def items_of_expected(items: int, expected: int | None, exact: bool, finished: bool) -> str:
    """"412,000 of ~1,000,000 items (41%)": never 100% before the last segment is done (an
    estimate can be low), and `~` where the total is DescribeTable's estimate."""
    if not expected:
        return f"{items:,} items"
    share = 100 if finished else min(99, 100 * items // expected)
    return f"{items:,} of {'' if exact else '~'}{expected:,} items ({share}%)"


@dataclass(frozen=True)
class Tracked:
    """One line of progress: the checkpoints of `table` under `checkpoint_dir`, and the items
    it should reach (None: unknown; `exact`: an export's count, not DescribeTable's estimate)."""

    label: str
    checkpoint_dir: str
    table: str
    expected_items: int | None = None
    exact: bool = False


@dataclass(frozen=True)
class Polled:
    """A line's figures at a poll: this run's items and bytes, and segments done of total."""

    items: int
    bytes: int
    segments_done: int
    segments_total: int


class ProgressWatcher:
    def __init__(self, tracked: Sequence[Tracked], *, enabled: bool = True, interval: float | None = None,
                 window: float = 10.0, doing: str = "copying", stream: TextIO | None = None,
                 on_poll: Callable[[dict[str, Polled]], None] | None = None,
                 annotate: Callable[[str], str] | None = None):
        """`window`: seconds the rate is taken over (at least two polls); `doing`: the header's
        word while it runs; `on_poll`: called after each poll with each line's figures;
        `annotate`: more to say on a line (appended), by label."""
        self._tracked = list(tracked)
        self._on_poll = on_poll
        self._annotate = annotate
        self._enabled = enabled
        self._doing = doing
        self._interval = (poll_interval(self._tracked[0].checkpoint_dir) if self._tracked else 1.0) \
            if interval is None else interval
        self._window = max(window, 2 * self._interval)
        self._poll_seconds = 0.0  # how long the last poll took
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._started = time.monotonic()
        self._finished: dict[str, float] = {}
        self._before: dict[str, tuple[int, int]] = {}  # (items, bytes) copied before this run started
        self._latest: dict[str, bulk_checkpoints.TableProgress] = {}
        self._samples: dict[str, collections.deque] = {}  # (time, items) of recent polls, for the rate
        self._last_print = 0.0
        self._drawn = 0  # lines drawn on the terminal, to go back up over

    def start(self) -> None:
        self._started = time.monotonic()
        for row in self._tracked:  # a resumed run's earlier pages are not this run's speed
            earlier = bulk_checkpoints.progress(row.checkpoint_dir, row.table)
            self._before[row.label] = (earlier.items, earlier.bytes) if earlier else (0, 0)
            self._samples[row.label] = collections.deque([(self._started, self._before[row.label][0])])
            if earlier and earlier.items and self._enabled:
                self._stream.write(f"{row.label}: resuming; {earlier.items:,} items were copied before this run "
                                   f"({earlier.segments_done} of {earlier.total_segments} segments done)\n")
        self._thread.start()

    def items_before(self, label: str) -> int:
        """Items copied before this run started."""
        return self._before.get(label, (0, 0))[0]

    def stop(self) -> None:
        """Stop polling, after one last poll (nothing is drawn: `show_end` draws the end)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._poll(draw=False)

    def show_end(self, outcome: str, figures: Mapping[str, tuple[int, float]] | None = None) -> None:
        """Draw the last lines: per line, `figures` (items, seconds: what the summary shows)
        or, where not given, this run's items from the checkpoints over the line's time."""
        if not self._enabled:
            return
        elapsed = time.monotonic() - self._started
        lines = []
        for row in self._tracked:
            items, seconds = (figures or {}).get(row.label) or (self.copied(row.label),
                                                                self.finished_after(row.label, elapsed))
            state = self._latest.get(row.label)
            done, total = (state.segments_done, state.total_segments) if state else (0, 0)
            lines.append(f"  {row.label}: {items:,} items in {seconds:,.1f} s, {per_second(items, seconds):,.0f} "
                         f"items/s, segments {done}/{total}{self._more(row.label)}")
        self._draw(f"[{elapsed:6.1f}s] {outcome}", lines, self._stream.isatty())

    def copied(self, label: str) -> int:
        """Items this run recorded as copied (after `stop`: to the end)."""
        state = self._latest.get(label)
        return (state.items if state else 0) - self.items_before(label)

    def finished_after(self, label: str, default: float) -> float:
        """Seconds from start until the line's last segment was seen done."""
        return self._finished.get(label, default)

    def _run(self) -> None:
        while not self._stop.wait(max(self._interval, 2 * self._poll_seconds)):
            self._poll(draw=True)

    def _poll(self, draw: bool) -> None:
        now = time.monotonic()
        for row in self._tracked:
            state = bulk_checkpoints.progress(row.checkpoint_dir, row.table) or bulk_checkpoints.TableProgress(0, 0, 0)
            if state.total_segments and state.finished and row.label not in self._finished:
                self._finished[row.label] = now - self._started
            self._latest[row.label] = state
            samples = self._samples.setdefault(row.label, collections.deque([(self._started, 0)]))
            samples.append((now, state.items))
            while len(samples) > 2 and now - samples[1][0] >= self._window:  # keep one sample older than the window
                samples.popleft()
        if self._on_poll is not None:
            self._on_poll({row.label: self._polled(row.label) for row in self._tracked})
        self._poll_seconds = time.monotonic() - now
        interactive = self._stream.isatty()
        if draw and self._enabled and (interactive or now - self._last_print >= NOT_A_TERMINAL_EVERY):
            self._last_print = now
            self._draw(f"[{now - self._started:6.1f}s] {self._doing}", [self._line(row, now) for row in self._tracked],
                       interactive)

    def _polled(self, label: str) -> Polled:
        state, (items, nbytes) = self._latest[label], self._before[label]
        return Polled(state.items - items, state.bytes - nbytes, state.segments_done, state.total_segments)

    def _line(self, row: Tracked, now: float) -> str:
        state = self._latest[row.label]
        then, before = self._samples[row.label][0]
        rate = (state.items - before) / (now - then) if now > then else 0.0
        text = f"  {row.label}: {items_of_expected(state.items, row.expected_items, row.exact, state.finished)}"
        if self.items_before(row.label):
            text += f" ({self.items_before(row.label):,} before this run)"
        if row.label in self._finished:
            return text + (f", done after {self._finished[row.label]:,.1f} s, segments {state.segments_done}/"
                           f"{state.total_segments}{self._more(row.label)}")
        text += f", {rate:,.0f} items/s"
        if row.expected_items and rate > 0 and state.items < row.expected_items:
            text += f", ETA ~{duration_text((row.expected_items - state.items) / rate)}"
        return text + f", segments {state.segments_done}/{state.total_segments}{self._more(row.label)}"

    def _more(self, label: str) -> str:
        return self._annotate(label) if self._annotate is not None else ""

    def _draw(self, header: str, lines: list[str], interactive: bool) -> None:
        block = [header, *lines]
        if interactive:
            width = _columns(self._stream)
            if width:
                block = [line[:width - 1] for line in block]
            up = f"\x1b[{self._drawn}A" if self._drawn else ""
            self._stream.write(up + "".join(f"\r\x1b[2K{line}\n" for line in block))
            self._drawn = len(block)
        else:
            self._stream.write("\n".join(block) + "\n")
        self._stream.flush()


def _columns(stream: TextIO) -> int:
    """The terminal's width (0: unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0
