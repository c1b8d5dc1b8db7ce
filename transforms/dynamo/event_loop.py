"""One asyncio event loop per DoFn instance, running in its own daemon thread.

Why a thread: Beam calls `process` synchronously. If a DoFn drove its loop with
`run_until_complete`, its requests would only make progress while that DoFn is inside
`process`, and a fused reader and writer would take turns instead of overlapping. With
the loop in a thread, a writer can keep `concurrency` requests in flight while the
reader parses the next page.

`LoopDoFn` is the base of every DoFn that talks to DynamoDB or Alternator: it creates
the loop in `setup`, lets the subclass open its clients on it (`open_clients`), and
closes them all, then the loop, in `teardown`.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import Any, AsyncContextManager, Awaitable, Callable, TypeVar

import apache_beam as beam

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "alternator-migrate-loop"):
        self._loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future:
        """Schedule a coroutine on the loop; the caller waits on the returned future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call_soon(self, callback: Callable[[], Any]) -> None:
        """Have the loop call `callback` (e.g. release an asyncio primitive) from any thread."""
        self._loop.call_soon_threadsafe(callback)

    def run(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return self.submit(coro).result()

    def enter(self, context: AsyncContextManager[Any]) -> Any:
        """Open an async context (a client, a writer) that lives until `close`."""
        return self.run(self._stack.enter_async_context(context))

    def close(self) -> None:
        """Close the contexts opened with `enter` (last first), cancel what still runs on the
        loop, then stop the loop and its thread."""
        if self._loop.is_closed():
            return
        try:
            self.run(self._shut_down())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    async def _shut_down(self) -> None:
        try:
            await self._stack.aclose()
        finally:
            await _cancel_other_tasks()


async def _cancel_other_tasks(grace_seconds: float = 5.0) -> None:
    """Cancel the tasks still pending (a request in flight when Ctrl-C stopped the run) and let
    them finish on the loop. Left pending, a task would be destroyed after the loop closed, and
    its clean-up (closing its connection) would fail there with 'Event loop is closed'; its
    caller would wait for ever."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    if others:
        await asyncio.wait(others, timeout=grace_seconds)


class LoopDoFn(beam.DoFn):
    """A DoFn that owns an event loop (`self.loop`) and the async clients opened on it."""

    def setup(self):
        self.loop = LoopThread(type(self).__name__)
        self.open_clients()

    def open_clients(self) -> None:
        """Open this DoFn's clients with `self.loop.enter(...)`; they close in `teardown`."""

    def teardown(self):
        self.loop.close()
