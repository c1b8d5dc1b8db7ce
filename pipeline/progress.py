"""Live progress of a bulk copy, read from the checkpoints.

The checkpoints are the only thing every runner shares with the launcher (Dataflow
workers can write to gs:// but cannot print to your terminal), so progress is one
listing of O(segments) names per table (`bulk_checkpoints.progress`): items copied,
items/s, segments done of total. A local folder is polled every second; an object
store, which lists ~1,000 names per request, every 5 seconds; and never more often
than twice the time the last poll took, so a huge listing cannot keep the launcher busy.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Mapping, TextIO

from apache_beam.io.filesystems import FileSystems

from transforms.state import bulk_checkpoints


def poll_interval(checkpoint_dir: str) -> float:
    """Seconds between polls of checkpoints kept at `checkpoint_dir`."""
    return 1.0 if FileSystems.get_scheme(checkpoint_dir) in (None, "file") else 5.0


class ProgressWatcher:
    def __init__(self, checkpoint_dir: str, plans: Mapping[str, object], *, enabled: bool = True,
                 interval: float | None = None, stream: TextIO | None = None,
                 on_poll: Callable[[dict[str, int]], None] | None = None,
                 annotate: Callable[[str], str] | None = None):
        """`on_poll`: called after each poll with the items this run copied so far, per table;
        `annotate`: more to say on a table's line (appended)."""
        self._dir = checkpoint_dir
        self._on_poll = on_poll
        self._annotate = annotate
        self._tables = list(plans)
        self._enabled = enabled
        self._interval = poll_interval(checkpoint_dir) if interval is None else interval
        self._poll_seconds = 0.0  # how long the last poll took
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._started = time.monotonic()
        self._finished: dict[str, float] = {}
        self._shown: dict[str, tuple[float, int]] = {}  # table -> (time, items) when last shown
        self._baseline: dict[str, int] = {}  # items already copied when this run started
        self._latest: dict[str, int] = {}  # items copied at the last poll
        self._last_print = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        for table in self._tables:  # a resumed run's earlier pages are not this run's speed
            earlier = bulk_checkpoints.progress(self._dir, table)
            self._baseline[table] = earlier.items if earlier else 0
            self._shown[table] = (self._started, self._baseline[table])
        self._thread.start()

    def stop(self, *, show: bool = True) -> None:
        """Stop polling after a last poll; `show` False (the run was interrupted or failed):
        without its final lines."""
        self._stop.set()
        self._thread.join(timeout=30)
        if not show:
            self._enabled = False
        self._poll(final=True)

    def copied(self, table: str) -> int:
        """Items this run recorded as copied (after `stop`: to the end)."""
        return self._latest.get(table, 0) - self._baseline.get(table, 0)

    def finished_after(self, table: str, default: float) -> float:
        """Seconds from start until the table's last segment was seen done."""
        return self._finished.get(table, default)

    def _run(self) -> None:
        while not self._stop.wait(max(self._interval, 2 * self._poll_seconds)):
            self._poll(final=False)

    def _poll(self, final: bool) -> None:
        now = time.monotonic()
        states = []
        for table in self._tables:
            state = bulk_checkpoints.progress(self._dir, table) or bulk_checkpoints.TableProgress(0, 0, 0)
            if state.total_segments and state.finished and table not in self._finished:
                self._finished[table] = now - self._started
            self._latest[table] = state.items
            states.append((table, state.items, state.segments_done, state.total_segments))
        if self._on_poll is not None:
            self._on_poll({table: self.copied(table) for table in self._tables})
        self._poll_seconds = time.monotonic() - now
        interactive = self._stream.isatty()
        if self._enabled and (final or interactive or now - self._last_print >= 10):
            self._show([self._line(now, final, *state) for state in states], now, final, interactive)

    def _line(self, now: float, final: bool, table: str, items: int, done: int, total: int) -> str:
        """One table's line; items/s since the table was last shown, or over the run at the end."""
        then, before = ((self._started, self._baseline.get(table, 0)) if final
                        else self._shown.get(table, (self._started, 0)))
        self._shown[table] = (now, items)
        rate = (items - before) / (now - then) if now > then else 0.0
        more = self._annotate(table) if self._annotate is not None else ""
        return f"  {table}: {items:,} items, {rate:,.0f} items/s, segments {done}/{total}{more}"

    def _show(self, lines: list[str], now: float, final: bool, interactive: bool) -> None:
        self._last_print = now
        header = f"[{now - self._started:6.1f}s] {'done' if final else 'copying'}"
        if interactive and not final:
            self._stream.write("\x1b[2K\r" + header + " |" + " |".join(lines) + "\r")
        else:
            self._stream.write(header + "\n" + "\n".join(lines) + "\n")
        self._stream.flush()
