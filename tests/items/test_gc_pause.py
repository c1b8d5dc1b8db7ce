"""The codecs' GC pause: scoped across threads, and a collector switched off stays off."""
from __future__ import annotations

import gc
import threading

from transforms.items.gc_pause import gc_paused


def test_overlapping_pauses_in_two_threads_end_with_the_last_one():
    entered, release = threading.Event(), threading.Event()

    def other_thread():
        with gc_paused():
            entered.set()
            release.wait(10)

    assert gc.isenabled()
    thread = threading.Thread(target=other_thread)
    thread.start()
    entered.wait(10)
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's pause still holds
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_application_stays_off():
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with gc_paused():
        pass
    assert gc.isenabled()
