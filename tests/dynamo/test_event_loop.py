"""`LoopThread.close` while a request is still in flight, as when Ctrl-C stops a run: the
request is cancelled on the loop (its caller is told, its connection closed there), so
nothing is left to run its clean-up after the loop has closed.

The peer is a real socket on 127.0.0.1 that accepts the connection and never answers.
"""
from __future__ import annotations

import concurrent.futures
import gc
import socket
import sys

import pytest

from transforms.dynamo.event_loop import LoopThread
from transforms.dynamo.http1 import Origin


def test_a_request_in_flight_when_the_loop_closes_is_cancelled_there_not_left_for_later(monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        loop = LoopThread("test-loop")

        async def open_origin():
            return Origin(f"http://127.0.0.1:{silent.getsockname()[1]}/", None, 1)

        origin = loop.run(open_origin())
        in_flight = loop.submit(origin.post("/", {}, b"{}"))
        peer, _ = silent.accept()
        with peer:
            peer.settimeout(5)
            assert peer.recv(1024).startswith(b"POST / HTTP/1.1")  # sent: it now waits for a reply
            loop.close()
            with pytest.raises(concurrent.futures.CancelledError):
                in_flight.result(timeout=5)
            assert peer.recv(65536) == b""  # the client closed its end before the loop closed
        del in_flight
        gc.collect()
    assert [hook.exc_value for hook in unraisable] == []
