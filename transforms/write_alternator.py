"""Write Arrow pages to Alternator (or any DynamoDB-API target) with BatchWriteItem.

Per page: decode the Arrow batch into full-item puts, collapse duplicate keys, and hand
them to a `StickyWriter` (each partition key through one node; batches, concurrency,
rate, retries) on the DoFn's own event loop, so pages overlap. What still fails goes to the dead-letter directory. A page's
checkpoint marker is written only after all of its items were written or dead-lettered.

Usage::

    pages | WriteToAlternator(target_spec, {"Music": TableRoute("Music", ("Artist", "SongTitle"))},
                              checkpoint_dir="./checkpoints", dead_letter_dir="./dead-letter")
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import checkpoints
from transforms.arrow_codec import batch_to_items
from transforms.async_runtime import LoopThread
from transforms.batch_writes import WriteOutcome, collapse_by_key, put
from transforms.dead_letter import write_dead_letters
from transforms.endpoints import TargetSpec
from transforms.node_routing import StickyWriter
from transforms.read_segments import METRICS_NAMESPACE, Page


@dataclass(frozen=True)
class TableRoute:
    """Where a source table's items go: the target table and its key attribute names."""

    target: str
    key_names: tuple[str, ...]


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
        self._writer = self._loop.run(StickyWriter.open(
            self._target, batch_size=self._batch_size, concurrency=self._concurrency,
            max_attempts=self._max_attempts, items_per_second=self._items_per_second))
        self._counters: dict[str, _TableCounters] = {}
        self._pending: list = []  # (page, items, future), oldest first
        self._pending_items = 0

    def teardown(self):
        self._loop.run(self._writer.close())
        self._loop.close()

    def _table_counters(self, table: str) -> _TableCounters:
        if table not in self._counters:
            self._counters[table] = _TableCounters(table)
        return self._counters[table]

    def process(self, page: Page):
        route = self._routes[page.table]
        requests = collapse_by_key([put(item) for item in batch_to_items(page.batch)], route.key_names)
        future = self._loop.submit(self._writer.write(route.target, requests, route.key_names[0]))
        self._pending.append((page, len(requests), future))
        self._pending_items += len(requests)
        self._complete_pages(keep_items=self._max_pending_items)

    def finish_bundle(self):
        self._complete_pages(keep_items=0)

    def _complete_pages(self, keep_items: int) -> None:
        """Finish every page already written, then wait (oldest first) while more than
        `keep_items` items are pending. Markers are per page, so their order is free."""
        for entry in [entry for entry in self._pending if entry[2].done()]:
            self._complete(entry)
        while self._pending and self._pending_items > keep_items:
            self._complete(self._pending[0])

    def _complete(self, entry) -> None:
        page, count, future = entry
        self._pending.remove(entry)
        self._pending_items -= count
        outcome: WriteOutcome = future.result()
        counters = self._table_counters(page.table)
        counters.written.inc(count - len(outcome.failures))
        counters.bytes.inc(page.batch.nbytes)
        counters.retries.inc(outcome.retries)
        if outcome.failures:
            counters.dead.inc(len(outcome.failures))
            write_dead_letters(self._dead_letter_dir, outcome.failures,
                               name=f"{page.table}-seg{page.segment:06d}-p{page.index:08d}")
        if self._checkpoint_dir:
            checkpoints.record_page(self._checkpoint_dir, page.table, page.segment, page.index,
                                    page.batch.num_rows, page.batch.nbytes, page.next_key)


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
