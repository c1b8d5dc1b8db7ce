"""A local front that makes DynamoDB Local (or moto's S3) answer like a service far away.

A real source table is often tens to hundreds of milliseconds away from the copier, and
a large one takes days to scan. DynamoDB serves the segments of a parallel scan at once
("each worker ... can scan its segment in parallel", https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan),
and S3 serves many GETs at once ("at least ... 5,500 GET/HEAD requests per second per
partitioned Amazon S3 prefix", https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html),
so what bounds a far copy is the requests it keeps in flight. This aiohttp server
forwards every request to a backend (DynamoDB Local, or moto) unchanged and holds each
Scan's answer `scan_delay` seconds, and each GET of a path that contains `get_path`
`get_delay` seconds, any number of them at once, so tests can compress a long copy into
seconds (a snapshot that outlasts a stream's retention) and benchmarks can measure the
requests a copy keeps in flight (`scans` and `gets`, each an `InFlight`: how many were
answered, the average number in flight while any was, the most at once, and their
average time). Other requests pass through at once. It listens on 127.0.0.1 only.

With `replay_scans`, it also stands in for a source whose CPU is not the copier's, as a
real DynamoDB table's is not: each Scan's first answer is kept, by the request's path and
body, and a later identical Scan gets it from memory without the backend (`replayed`
counts those). The bench uses it so that a copy's rate is not bounded by DynamoDB Local
serving the Scan on the copier's own 2 cores. A Scan's body names its table, segment and
start key, so on a table that does not change a repeated body asks for the same page.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable

from aiohttp import ClientSession, ClientTimeout, web

from testbed.threaded_server import ThreadedServer

_SCAN = "DynamoDB_20120810.Scan"
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class InFlight:
    """What one kind of held request did: counts, concurrency and time, since `reset`."""

    def __init__(self):
        self._lock = threading.Lock()
        self._in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Forget the requests counted so far (those in flight now are counted from now on)."""
        with self._lock:
            self._answered = 0
            self._most = self._in_flight
            self._in_flight_seconds = 0.0  # the integral of requests in flight over time
            self._busy_seconds = 0.0       # time with at least one in flight
            self._seconds = 0.0            # the sum of the requests' times, arrival to answer
            self._last_change = time.monotonic()

    @property
    def answered(self) -> int:
        with self._lock:
            return self._answered

    def concurrency(self) -> float:
        """The average number in flight while any was (0 before the first)."""
        with self._lock:
            self._account(time.monotonic())
            return self._in_flight_seconds / self._busy_seconds if self._busy_seconds else 0.0

    def most(self) -> int:
        """The most in flight at once."""
        with self._lock:
            return self._most

    def latency(self) -> float:
        """The average time from a request's arrival to its answer (0 before the first)."""
        with self._lock:
            return self._seconds / self._answered if self._answered else 0.0

    def busy_seconds(self) -> float:
        """How long at least one was in flight."""
        with self._lock:
            self._account(time.monotonic())
            return self._busy_seconds

    def _account(self, now: float) -> None:
        if self._in_flight:
            self._in_flight_seconds += self._in_flight * (now - self._last_change)
            self._busy_seconds += now - self._last_change
        self._last_change = now

    def started(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self._in_flight += 1
            self._most = max(self._most, self._in_flight)
            return now

    def ended(self, started: float) -> None:
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self._in_flight -= 1
            self._answered += 1
            self._seconds += now - started


class SlowSource(ThreadedServer):
    """The backend's API at `url`, each Scan held `scan_delay` seconds and each GET of a
    path containing `get_path` `get_delay` seconds."""

    thread_name = "slow-source"

    def __init__(self, backend: str, scan_delay: float = 0.0, *, get_delay: float = 0.0, get_path: str = "",
                 replay_scans: bool = False):
        super().__init__()
        self.replay_scans = replay_scans
        self._kept: dict[tuple[str, bytes], tuple[int, bytes, dict]] = {}
        self.replayed = 0
        self.backend = backend.rstrip("/")
        self.scan_delay = scan_delay
        self.get_delay = get_delay
        self.get_path = get_path
        self.port = 0
        self.scans = InFlight()
        self.gets = InFlight()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget what was counted so far (the kept Scan answers stay)."""
        self.scans.reset()
        self.gets.reset()
        self.replayed = 0

    def cpu_seconds(self) -> float:
        """CPU time of the server's thread so far: what serving costs the process it runs in."""
        return asyncio.run_coroutine_threadsafe(self._thread_cpu(), self._loop).result(timeout=10)

    @staticmethod
    async def _thread_cpu() -> float:
        return time.thread_time()

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        async with ClientSession(timeout=ClientTimeout(total=300), auto_decompress=False) as http:
            self._http = http
            await self.serve_app(app, stop, on_ready)

    def _held(self, request: web.Request) -> tuple[InFlight | None, float]:
        if request.headers.get("X-Amz-Target") == _SCAN:
            return self.scans, self.scan_delay
        if self.get_path and request.method == "GET" and self.get_path in request.path:
            return self.gets, self.get_delay
        return None, 0.0

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        meter, delay = self._held(request)
        started = meter.started() if meter else 0.0
        try:
            kept_as = (request.path_qs, body) if self.replay_scans and meter is self.scans else None
            if kept_as in self._kept:
                status, payload, reply_headers = self._kept[kept_as]
                self.replayed += 1
            else:
                status, payload, reply_headers = await self._ask_backend(request, body)
                if kept_as and status == 200:
                    self._kept[kept_as] = status, payload, reply_headers
            if delay:
                await asyncio.sleep(delay)
            return web.Response(status=status, body=payload or None, headers=reply_headers)
        finally:
            if meter:
                meter.ended(started)

    async def _ask_backend(self, request: web.Request, body: bytes) -> tuple[int, bytes, dict]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._http.request(request.method, self.backend + request.path_qs, data=body,
                                      headers=headers) as answer:
            # A HEAD answer's Content-Length is the object's size (S3): kept, with no body.
            dropped = _HOP_HEADERS - {"content-length"} if request.method == "HEAD" else _HOP_HEADERS
            return answer.status, await answer.read(), {k: v for k, v in answer.headers.items()
                                                        if k.lower() not in dropped}
