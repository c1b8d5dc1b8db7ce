"""Write scanned pages to Alternator (or any DynamoDB-API target) with BatchWriteItem.

Per page: decode the Arrow batch into items, rename attributes for the target, collapse
duplicate keys, and hand the puts to the writer (`dynamo.writer`: each partition key
through one node; batches, concurrency, rate, retries) on the DoFn's own event loop, so
pages overlap. What still fails goes to the dead-letter folder. A page's checkpoint
is written only after all of its items were written or dead-lettered.
"""
from __future__ import annotations

from typing import Mapping

import apache_beam as beam
from apache_beam.transforms.display import DisplayDataItem

from transforms import metrics
from transforms.dynamo.endpoints import TargetSpec
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.writer import FailedWrite, WriteOutcome, WriterSettings, collapse_by_key, open_writer, put
from transforms.items.arrow_codec import batch_to_items
from transforms.items.renames import RenameConflict
from transforms.scan import Page
from transforms.state import bulk_checkpoints
from transforms.state.dead_letters import write_dead_letters
from transforms.state.storage import StorageOptions
from transforms.table_pair import TablePair

__all__ = ["WriteTables"]


class _TableCounters:
    def __init__(self, table: str):
        self.written = metrics.counter(table, "items_written")
        self.bytes = metrics.counter(table, "bytes_written")
        self.retries = metrics.counter(table, "write_retries")
        self.dead = metrics.counter(table, "items_dead_lettered")


class _WritePagesFn(LoopDoFn):
    def __init__(self, target: TargetSpec, pairs: Mapping[str, TablePair], settings: WriterSettings,
                 checkpoint_dir: str | None, dead_letter_dir: str, storage: StorageOptions):
        self._target = target
        self._pairs = dict(pairs)
        self._settings = settings
        self._checkpoint_dir = checkpoint_dir
        self._dead_letter_dir = dead_letter_dir
        self._storage = storage
        # Bound memory: at most this many items decoded and waiting or in flight.
        self._max_pending_items = 2 * settings.concurrency * settings.batch_size

    def open_clients(self):
        self._storage.install()
        self._writer = self.loop.enter(open_writer(self._target, self._settings))
        self._counters: dict[str, _TableCounters] = {}
        self._pending: list = []  # (page, items, refused items, future), oldest first
        self._pending_items = 0

    def _table_counters(self, table: str) -> _TableCounters:
        if table not in self._counters:
            self._counters[table] = _TableCounters(table)
        return self._counters[table]

    def process(self, page: Page):
        pair = self._pairs[page.table]
        requests, refused = [], []
        for item in batch_to_items(page.batch):
            try:
                requests.append(put(pair.to_target(item)))
            except RenameConflict as exc:  # the rest of the page is written; this item is dead-lettered
                refused.append(FailedWrite(pair.target, put(item), f"RenameConflict: {exc}"))
        requests = collapse_by_key(requests, pair.key_names)
        future = self.loop.submit(self._writer.write(pair.target, requests, pair.key_names[0]))
        self._pending.append((page, len(requests) + len(refused), refused, future))
        self._pending_items += len(requests)
        self._complete_pages(keep_items=self._max_pending_items)

    def finish_bundle(self):
        while self._pending:  # every page, also one with no items left (an empty last page)
            self._complete(self._pending[0])

    def _complete_pages(self, keep_items: int) -> None:
        """Finish every page already written, then wait (oldest first) while more than
        `keep_items` items are pending. Checkpoints are per page, so their order is free."""
        for entry in [entry for entry in self._pending if entry[3].done()]:
            self._complete(entry)
        while self._pending and self._pending_items > keep_items:
            self._complete(self._pending[0])

    def _complete(self, entry) -> None:
        page, count, refused, future = entry
        self._pending.remove(entry)
        self._pending_items -= count - len(refused)
        outcome: WriteOutcome = future.result()
        outcome.failures.extend(refused)
        counters = self._table_counters(page.table)
        counters.written.inc(count - len(outcome.failures))
        counters.bytes.inc(page.batch.nbytes)
        counters.retries.inc(outcome.retries)
        if outcome.failures:
            counters.dead.inc(len(outcome.failures))
            write_dead_letters(self._dead_letter_dir, outcome.failures,
                               name=f"{page.table}-seg{page.segment:06d}-p{page.index:08d}")
        if self._checkpoint_dir:
            bulk_checkpoints.record_page(self._checkpoint_dir, page.table, page.segment, page.index,
                                         page.batch.num_rows, page.batch.nbytes, page.next_key)


class WriteTables(beam.PTransform):
    """Write `Page`s to their target tables as full-item puts; emits nothing.

    Args:
        target: the Alternator cluster (or DynamoDB-API endpoint) to write to.
        pairs: per source table, its target table, key and renames.
        settings: batch size, concurrency, this worker's rate, and attempts.
        checkpoint_dir: where each written page is recorded (None: no checkpoints).
        dead_letter_dir: where writes that failed after every retry go.
        storage: the filesystem options for those two folders (S3 endpoint and keys...).
    """

    def __init__(self, target: TargetSpec, pairs: Mapping[str, TablePair], settings: WriterSettings, *,
                 checkpoint_dir: str | None, dead_letter_dir: str, storage: StorageOptions):
        super().__init__()
        self._fn = _WritePagesFn(target, pairs, settings, checkpoint_dir, dead_letter_dir, storage)
        self._target = target
        self._settings = settings

    def display_data(self):
        return {"target": DisplayDataItem(self._target.describe(), label="Target"),
                "batch_size": DisplayDataItem(self._settings.batch_size, label="Items per BatchWriteItem"),
                "concurrency": DisplayDataItem(self._settings.concurrency, label="Batches in flight")}

    def expand(self, pages):
        return pages | "BatchWriteItem" >> beam.ParDo(self._fn)
