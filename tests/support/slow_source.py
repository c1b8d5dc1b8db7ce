"""A test-only front that makes DynamoDB Local answer like a table far away.

A real source table is often tens to hundreds of milliseconds away from the copier, and
a large one takes days to scan. DynamoDB serves the segments of a parallel scan at once
("each worker ... can scan its segment in parallel", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan),
so what bounds a far copy is the Scan pages it keeps in flight. This aiohttp server
forwards every DynamoDB request to a backend (DynamoDB Local) unchanged and holds each
Scan's answer `scan_delay` seconds, any number of them at once, so tests can compress a
long copy into seconds (a snapshot that outlasts a stream's retention) and benchmarks
can measure the pages a copy keeps in flight (`scan_concurrency`: Scans in flight,
averaged over the time any was) and what a Scan took (`scan_latency`). Other operations
pass through at once. It listens on 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable

from aiohttp import ClientSession, ClientTimeout, web

from tests.support.threaded_server import ThreadedServer

_SCAN = "DynamoDB_20120810.Scan"
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class SlowSource(ThreadedServer):
    """DynamoDB's API at `url`, answered by `backend`, each Scan held `scan_delay` seconds."""

    thread_name = "slow-source"

    def __init__(self, backend: str, scan_delay: float = 0.0):
        super().__init__()
        self.backend = backend.rstrip("/")
        self.scan_delay = scan_delay
        self.port = 0
        self._lock = threading.Lock()
        self._in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Forget the Scans counted so far (those in flight now are counted from now on)."""
        with self._lock:
            self._scans = 0
            self._most_in_flight = self._in_flight
            self._in_flight_seconds = 0.0  # the integral of Scans in flight over time
            self._busy_seconds = 0.0       # time with at least one Scan in flight
            self._scan_seconds = 0.0       # the sum of the Scans' times, arrival to answer
            self._last_change = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def scans(self) -> int:
        """Scan requests answered so far."""
        with self._lock:
            return self._scans

    def scan_concurrency(self) -> float:
        """The average number of Scans in flight while any was (0 before the first)."""
        with self._lock:
            self._account(time.monotonic())
            return self._in_flight_seconds / self._busy_seconds if self._busy_seconds else 0.0

    def most_in_flight(self) -> int:
        """The most Scans in flight at once."""
        with self._lock:
            return self._most_in_flight

    def scan_latency(self) -> float:
        """The average time from a Scan's arrival to its answer (0 before the first)."""
        with self._lock:
            return self._scan_seconds / self._scans if self._scans else 0.0

    def scan_busy_seconds(self) -> float:
        """How long at least one Scan was in flight."""
        with self._lock:
            self._account(time.monotonic())
            return self._busy_seconds

    def _account(self, now: float) -> None:
        if self._in_flight:
            self._in_flight_seconds += self._in_flight * (now - self._last_change)
            self._busy_seconds += now - self._last_change
        self._last_change = now

    def _scan_started(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self._in_flight += 1
            self._most_in_flight = max(self._most_in_flight, self._in_flight)
            return now

    def _scan_ended(self, started: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self._in_flight -= 1
            self._scans += 1
            self._scan_seconds += now - started

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        async with ClientSession(timeout=ClientTimeout(total=300), auto_decompress=False) as http:
            self._http = http
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", self.port)
                await site.start()
                self.port = runner.addresses[0][1]
                on_ready()
                await stop.wait()
            finally:
                await runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        scan = request.headers.get("X-Amz-Target") == _SCAN
        started = self._scan_started() if scan else 0.0
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
            async with self._http.request(request.method, self.backend + request.path_qs, data=body,
                                          headers=headers) as answer:
                payload = await answer.read()
                status = answer.status
                reply_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            if scan and self.scan_delay:
                await asyncio.sleep(self.scan_delay)
            return web.Response(status=status, body=payload, headers=reply_headers)
        finally:
            if scan:
                self._scan_ended(started)
