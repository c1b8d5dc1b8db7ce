"""Run an asyncio server of the testbed in a daemon thread with its own event loop."""
from __future__ import annotations

import asyncio
import threading
from typing import Callable

from aiohttp import web


class ThreadedServer:
    """Subclasses implement `serve(stop, on_ready)`; this runs it from `start()` to `stop()`."""

    thread_name = "test-server"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
        raise NotImplementedError

    def start(self):
        """Serve from a daemon thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve_in_thread(ready))
            except BaseException as exc:  # reported to start(), which re-raises it
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def serve_app(self, app: web.Application, stop: asyncio.Event, on_ready: Callable[[], None]) -> None:
        """Serve `app` on 127.0.0.1:`self.port` (0: any free port, then noted there) until `stop` is set."""
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

    async def _serve_in_thread(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        await self.serve(self._stop_event, on_ready=ready.set)
