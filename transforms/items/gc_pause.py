"""One scoped pause of Python's cyclic garbage collector, shared by every codec.

Why pause it: decoding a page creates tens of thousands of small dicts, lists and
strings; every 700 allocations the collector would run, and its older generations
rescan every live object (the whole page), which costs more than the work itself
(docs/design.md, The GC pause). None of these objects forms a reference cycle, so the pause leaves no
garbage behind: they are freed by reference counting as usual.

What the pause means for the rest of the process: `gc.disable()` is process-wide,
so other threads (Beam's, the event loop's) run with the collector paused too while
a page is decoded or encoded; cyclic garbage they make meanwhile is collected after
the pause, which lasts one page's work (milliseconds). Pauses nest and overlap
safely across threads: a count under a lock re-enables the collector when the last
one ends, so one thread never turns it back on under another's decode. A collector
the application switched off itself is left off.
"""
from __future__ import annotations

import contextlib
import gc
import threading

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0
_we_disabled = False


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic GC for the duration of the block (see the module docstring)."""
    global _depth, _we_disabled
    with _lock:
        if _depth == 0:
            _we_disabled = gc.isenabled()
            if _we_disabled:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _we_disabled:
                _we_disabled = False
                gc.enable()
