"""Write scanned pages to Alternator (or any DynamoDB-API target) with BatchWriteItem.

Per page: leave out the items the source's TTL would delete (with `skip_expired`,
counted as `items_expired`), rename attributes for the target (per row, on the Arrow
batch), keep the last row per key, and hand the batch to the writer (`dynamo.writer`: request texts written
straight from the batch, each partition key through one node; batches, concurrency,
rate, retries) on the DoFn's own event loop, so pages overlap. A row the renames cannot
map is dead-lettered as the source item, and the rest of its page is written; what
still fails after retries goes to the dead-letter folder too. A page counts for the
checkpoints only after all of its items were written or dead-lettered; pages may
complete in any order, and `bulk_checkpoints.PageRecorder` records only ranges of
completed pages, a few seconds apart, so state grows with segments, not pages.
"""
from __future__ import annotations

from typing import Mapping

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.display import DisplayDataItem

from transforms import metrics
from transforms.dynamo.endpoints import TargetSpec
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.write_requests import FailedWrite, put
from transforms.dynamo.writer import WriteOutcome, WriterSettings, last_per_key, open_writer
from transforms.items.arrow_codec import batch_to_items
from transforms.items.renames import rename_batch
from transforms.metrics import Figure
from transforms.page import Page
from transforms.state import bulk_checkpoints
from transforms.state.dead_letters import write_dead_letters
from transforms.state.storage import StorageOptions
from transforms.table_pair import TablePair

__all__ = ["WriteTables"]


class _TableCounters:
    def __init__(self, table: str):
        self.written = metrics.counter(table, Figure.ITEMS_WRITTEN)
        self.bytes = metrics.counter(table, Figure.BYTES_WRITTEN)
        self.retries = metrics.counter(table, Figure.WRITE_RETRIES)
        self.dead = metrics.counter(table, Figure.ITEMS_DEAD_LETTERED)
        self.expired = metrics.counter(table, Figure.ITEMS_EXPIRED)
        self.checkpoints = metrics.counter(table, Figure.CHECKPOINT_WRITES)


class _WritePagesFn(LoopDoFn):
    def __init__(self, target: TargetSpec, pairs: Mapping[str, TablePair], settings: WriterSettings,
                 checkpoint_dir: str | None, checkpoint_seconds: float, dead_letter_dir: str,
                 storage: StorageOptions):
        self._target = target
        self._pairs = dict(pairs)
        self._settings = settings
        self._checkpoint_dir = checkpoint_dir
        self._checkpoint_seconds = checkpoint_seconds
        self._dead_letter_dir = dead_letter_dir
        self._storage = storage
        # Bound memory: at most this many items decoded and waiting or in flight, plus the
        # newest page, which is never waited for (see `_complete_pages`).
        self._max_pending_items = 2 * settings.concurrency * settings.max_items_per_batch

    def open_clients(self):
        self._storage.install()
        self._writer = self.loop.enter(open_writer(self._target, self._settings))
        self._counters: dict[str, _TableCounters] = {}
        self._pending: list = []  # (page, items, refused items, future), oldest first
        self._pending_items = 0
        self._recorder = None
        if self._checkpoint_dir:
            self._recorder = bulk_checkpoints.PageRecorder(
                self._checkpoint_dir, self._checkpoint_seconds,
                on_record=lambda table: self._table_counters(table).checkpoints.inc())

    def _table_counters(self, table: str) -> _TableCounters:
        if table not in self._counters:
            self._counters[table] = _TableCounters(table)
        return self._counters[table]

    def process(self, page: Page):
        pair = self._pairs[page.table]
        source = page.batch
        if pair.expiry is not None:  # the items the source's TTL would delete are left out
            source, expired = pair.expiry.split(source)
            self._table_counters(page.table).expired.inc(expired)
        batch, conflicts = rename_batch(source, pair.renames)
        refused = []
        if conflicts:  # the rest of the page is written; these items are dead-lettered
            rows = sorted(conflicts)
            refused = [FailedWrite(pair.target, put(item), f"RenameConflict: {conflicts[row]}", source_naming=True)
                       for row, item in zip(rows, batch_to_items(source.take(rows)))]
            batch = batch.filter(pa.array([row not in conflicts for row in range(batch.num_rows)]))
        batch = last_per_key(batch, pair.key_names)
        future = self.loop.submit(self._writer.write_batch(pair.target, batch, pair.key_names))
        self._pending.append((page, batch.num_rows + len(refused), refused, future))
        self._pending_items += batch.num_rows
        self._complete_pages(keep_items=self._max_pending_items)

    def finish_bundle(self):
        while self._pending:  # every page, also one with no items left (an empty last page)
            self._complete(self._pending[0])
        if self._recorder is not None:
            self._recorder.flush()

    def _complete_pages(self, keep_items: int) -> None:
        """Finish every page already written, then wait (oldest first) while more than
        `keep_items` items are pending, but never for the newest page: its writes go on
        while the next page is read. (A 1 MB Scan page holds ~1,700 items of 0.6 KB, more
        than `keep_items` at 25 items a request: waiting for it left no write in flight
        while each next page was read and decoded.) The recorder joins pages completed
        out of order."""
        for entry in [entry for entry in self._pending if entry[3].done()]:
            self._complete(entry)
        while len(self._pending) > 1 and self._pending_items > keep_items:
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
        if self._recorder is not None:
            self._recorder.page_done(page.table, page.segment, page.index, page.start_key, page.next_key,
                                     page.batch.num_rows, page.batch.nbytes)


class WriteTables(beam.PTransform):
    """Write `Page`s to their target tables as full-item puts; emits nothing.

    Args:
        target: the Alternator cluster (or DynamoDB-API endpoint) to write to.
        pairs: per source table, its target table, key and renames.
        writer_settings: batch size, concurrency, this worker's rate, and attempts.
        checkpoint_dir: where written pages are recorded (None: no checkpoints).
        checkpoint_seconds: how often, at most, a segment's checkpoint is rewritten while it
            is copied (always at its end and at the end of a bundle).
        dead_letter_dir: where writes that failed after every retry go.
        storage: the filesystem options for those two folders (S3 endpoint and keys...).
    """

    def __init__(self, target: TargetSpec, pairs: Mapping[str, TablePair], writer_settings: WriterSettings, *,
                 checkpoint_dir: str | None, dead_letter_dir: str, storage: StorageOptions,
                 checkpoint_seconds: float = 5.0):
        super().__init__()
        self._fn = _WritePagesFn(target, pairs, writer_settings, checkpoint_dir, checkpoint_seconds, dead_letter_dir,
                                 storage)
        self._target = target
        self._settings = writer_settings

    def display_data(self):
        return {"target": DisplayDataItem(self._target.describe(), label="Target"),
                "max_items_per_batch": DisplayDataItem(self._settings.max_items_per_batch,
                                                       label="Items per BatchWriteItem"),
                "concurrency": DisplayDataItem(self._settings.concurrency, label="Batches in flight")}

    def expand(self, pages):
        return pages | "BatchWriteItem" >> beam.ParDo(self._fn)
