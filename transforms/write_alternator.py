"""Write Arrow pages to Alternator (or any DynamoDB-API target) with BatchWriteItem.

Per page: decode the Arrow batch, collapse duplicate keys (last wins; Alternator
rejects a batch that names one key twice), cut into chunks of `batch_size`, and keep up
to `concurrency` chunk requests in flight on the DoFn's own event loop. Each chunk is
retried with exponential backoff and full jitter on throttling, server errors,
timeouts and dropped connections; UnprocessedItems are re-sent. A chunk rejected as
invalid is split in halves to find the bad items. What still fails goes to the
dead-letter directory. A page's checkpoint marker is written only after all of its
items were written or dead-lettered.

Usage::

    pages | WriteToAlternator(target_spec, {"Music": TableRoute("Music", ("Artist", "SongTitle"))},
                              checkpoint_dir="./checkpoints", dead_letter_dir="./dead-letter")
"""
from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import checkpoints
from transforms.arrow_codec import batch_to_items, key_of
from transforms.async_runtime import LoopThread
from transforms.dead_letter import FailedWrite, write_dead_letters
from transforms.endpoints import TargetSpec, target_client
from transforms.rate_limit import TokenBucket
from transforms.read_segments import METRICS_NAMESPACE, Page
from transforms.retry import UnprocessedItemsLeft, call_with_retry, error_code, is_retryable


@dataclass(frozen=True)
class TableRoute:
    """Where a source table's items go: the target table and its key attribute names."""

    target: str
    key_names: tuple[str, ...]


def dedupe_last_wins(items: list[dict], key_names: tuple[str, ...]) -> list[dict]:
    """One item per key, the last one seen, in the order of their last appearance."""
    latest = {key_of(item, key_names): item for item in items}
    return list(latest.values()) if len(latest) < len(items) else items


@dataclass
class _PageOutcome:
    """What writing one page came to; filled on the loop thread, read on Beam's thread
    (Beam counters are thread-local, so only Beam's thread may touch them)."""

    failures: list[FailedWrite] = field(default_factory=list)
    retries: int = 0


class _TableCounters:
    def __init__(self, table: str):
        counter = lambda name: Metrics.counter(METRICS_NAMESPACE, f"{table}.{name}")  # noqa: E731
        self.written = counter("items_written")
        self.bytes = counter("bytes_written")
        self.retries = counter("write_retries")
        self.dead = counter("items_dead_lettered")


class _WritePagesFn(beam.DoFn):
    def __init__(self, target: TargetSpec, routes: Mapping[str, TableRoute], batch_size: int, concurrency: int,
                 items_per_second: float | None, max_attempts: int, checkpoint_dir: str | None,
                 dead_letter_dir: str):
        self._target = target
        self._routes = dict(routes)
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._items_per_second = items_per_second
        self._max_attempts = max_attempts
        self._checkpoint_dir = checkpoint_dir
        self._dead_letter_dir = dead_letter_dir
        # Bound memory: at most this many items decoded and waiting or in flight.
        self._max_pending_items = 2 * concurrency * batch_size

    def setup(self):
        self._loop = LoopThread("write-alternator")
        self._client = self._loop.enter(target_client(self._target, max_connections=self._concurrency * 2))
        self._requests = self._loop.run(self._make_semaphore())
        self._bucket = TokenBucket(self._items_per_second) if self._items_per_second else None
        self._counters: dict[str, _TableCounters] = {}
        self._pending: collections.deque = collections.deque()
        self._pending_items = 0

    async def _make_semaphore(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(self._concurrency)

    def teardown(self):
        self._loop.close()

    def _table_counters(self, table: str) -> _TableCounters:
        if table not in self._counters:
            self._counters[table] = _TableCounters(table)
        return self._counters[table]

    def process(self, page: Page):
        route = self._routes[page.table]
        items = dedupe_last_wins(batch_to_items(page.batch), route.key_names)
        future = self._loop.submit(self._write_items(route.target, items))
        self._pending.append((page, len(items), future))
        self._pending_items += len(items)
        self._complete_pages(keep_items=self._max_pending_items)

    def finish_bundle(self):
        self._complete_pages(keep_items=0)

    def _complete_pages(self, keep_items: int) -> None:
        """Finish pages oldest first, waiting while more than `keep_items` are pending."""
        while self._pending and (self._pending_items > keep_items or self._pending[0][2].done()):
            page, count, future = self._pending.popleft()
            self._pending_items -= count
            outcome: _PageOutcome = future.result()
            counters = self._table_counters(page.table)
            counters.written.inc(count - len(outcome.failures))
            counters.bytes.inc(page.batch.nbytes)
            counters.retries.inc(outcome.retries)
            if outcome.failures:
                counters.dead.inc(len(outcome.failures))
                write_dead_letters(self._dead_letter_dir, outcome.failures)
            if self._checkpoint_dir:
                checkpoints.record_page(self._checkpoint_dir, page.table, page.segment, page.index,
                                        page.batch.num_rows, page.batch.nbytes, page.next_key)

    async def _write_items(self, table: str, items: list[dict]) -> _PageOutcome:
        outcome = _PageOutcome()
        chunks = [items[i:i + self._batch_size] for i in range(0, len(items), self._batch_size)]
        await asyncio.gather(*(self._write_chunk(table, chunk, outcome) for chunk in chunks))
        return outcome

    async def _write_chunk(self, table: str, items: list[dict], outcome: _PageOutcome) -> None:
        if self._bucket is not None:
            await self._bucket.acquire(len(items))
        remaining = [{"PutRequest": {"Item": item}} for item in items]

        async def attempt() -> None:
            nonlocal remaining
            async with self._requests:
                response = await self._client.batch_write_item(RequestItems={table: remaining})
            left = response.get("UnprocessedItems", {}).get(table, [])
            if left:
                remaining = left
                raise UnprocessedItemsLeft(len(left))

        def count_retry(_exc: BaseException) -> None:
            outcome.retries += 1

        try:
            await call_with_retry(attempt, max_attempts=self._max_attempts, on_retry=count_retry)
        except Exception as exc:  # noqa: BLE001 - every final failure is dead-lettered, never dropped
            left_items = [r["PutRequest"]["Item"] for r in remaining]
            if len(left_items) > 1 and not is_retryable(exc) and error_code(exc) == "ValidationException":
                half = len(left_items) // 2
                await asyncio.gather(self._write_chunk(table, left_items[:half], outcome),
                                     self._write_chunk(table, left_items[half:], outcome))
                return
            reason = f"{type(exc).__name__}: {exc}"
            outcome.failures.extend(FailedWrite(table, item, reason) for item in left_items)


class WriteToAlternator(beam.PTransform):
    """Write `Page`s to the target tables named by `routes` (keyed by source table)."""

    def __init__(self, target: TargetSpec, routes: Mapping[str, TableRoute], *, batch_size: int = 100,
                 concurrency: int = 16, items_per_second: float | None = None, max_attempts: int = 10,
                 checkpoint_dir: str | None = None, dead_letter_dir: str = "./dead-letter"):
        super().__init__()
        self._fn = _WritePagesFn(target, routes, batch_size, concurrency, items_per_second, max_attempts,
                                 checkpoint_dir, dead_letter_dir)

    def expand(self, pages):
        return pages | "BatchWriteItem" >> beam.ParDo(self._fn)
