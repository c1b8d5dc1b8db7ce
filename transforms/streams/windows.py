"""Stream windows: a shard's page of changes as target writes, and writes shared across shards.

A window is one GetRecords page of one shard. INSERT/MODIFY with a NewImage become a
full-item put, REMOVE a delete; for KEYS_ONLY and OLD_IMAGE streams the current item
is read from the source (consistent) and put, or deleted if gone. The window is
collapsed to the last change per key, then renamed per item as in the snapshot; a
change the renames cannot map is handed back to be dead-lettered.

With the table's `expiry` (skip_expired), a put of an item the source's TTL would delete
becomes a delete of its key. Not writing it at all would leave the target holding the
item's previous, live version (copied before its TTL attribute was set in the past), a
version the source no longer has; deleting makes the target what the snapshot would
have made it, and the source's own TTL delete (a REMOVE) arrives later and deletes
again, which is harmless: every write is a full put or a delete.

`WindowWriter` joins the windows that many shards hand in at about the same time into
shared `TargetWriter.write` calls: with a thousand shards a window holds a handful of
changes, and one BatchWriteItem per window would cost a request per change. Order per
key still holds: a shard hands in its next window only after this one was
acknowledged, a key's changes live in one shard at a time (children start after their
parent is fully applied), two windows that name the same key are never in flight
together, and a window never passes an earlier one that names a key of it (so one
caller may hand in several windows without waiting: the spool's apply does).
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from transforms.dynamo.point_reads import get_items
from transforms.dynamo.write_requests import FailedWrite, collapse_by_key, delete, put, request_item
from transforms.dynamo.writer import TargetWriter
from transforms.items.keys import key_of
from transforms.items.renames import RenameConflict
from transforms.table_pair import TablePair

# Below this many queued requests a flush waits a moment for other shards' windows.
LINGER_SECONDS = 0.05


async def window_requests(table: TablePair, records: list[dict], source_items,
                          read_attempts: int) -> tuple[list[dict], list[FailedWrite]]:
    """The target writes for one page of stream records, one per key, in stream order; and
    the changes the renames cannot map (the item holds an attribute and its new name)."""
    without_image = any(r["eventName"] != "REMOVE" and "NewImage" not in r["dynamodb"] for r in records)
    if without_image:  # KEYS_ONLY or OLD_IMAGE: the source's current item decides
        keys = list({key_of(r["dynamodb"]["Keys"], table.source_key_names): r["dynamodb"]["Keys"]
                     for r in records}.items())
        current = await get_items(source_items, table.source, [k for _, k in keys], table.source_key_names,
                                  max_attempts=read_attempts)
        changes = [put(current[ref]) if ref in current else delete(key) for ref, key in keys]
    else:
        changes = collapse_by_key([delete(r["dynamodb"]["Keys"]) if r["eventName"] == "REMOVE"
                                   else put(r["dynamodb"]["NewImage"]) for r in records], table.source_key_names)
    if table.expiry is not None:
        changes = [_unless_expired(change, table) for change in changes]
    requests, refused = [], []
    for change in changes:
        try:
            requests.append(put(table.to_target(change["PutRequest"]["Item"])) if "PutRequest" in change
                            else delete(table.to_target(change["DeleteRequest"]["Key"])))
        except RenameConflict as exc:
            refused.append(FailedWrite(table.target, change, f"RenameConflict: {exc}", source_naming=True))
    return requests, refused


def _unless_expired(change: dict, table: TablePair) -> dict:
    """A put of an item the table's TTL would delete, as a delete of its key (see the module docstring)."""
    item = change.get("PutRequest", {}).get("Item")
    if item is None or not table.expiry.is_expired(item):
        return change
    return delete({name: item[name] for name in table.source_key_names})


@dataclass(eq=False)
class _Waiting:
    requests: list[dict]
    keys: frozenset
    done: asyncio.Future


@dataclass(eq=False)
class _TableQueue:
    table: TablePair
    waiting: deque = field(default_factory=deque)
    queued: int = 0                                      # requests waiting
    in_flight: set = field(default_factory=set)          # keys being written
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    flusher: asyncio.Task | None = None


class WindowWriter:
    """Writes windows of many shards through one `TargetWriter`, several windows a request.

    Args:
        writer: the target writer (sticky node per partition key, retries, dead letters left to us).
        max_items_per_batch: items per BatchWriteItem; a queue this long is written without lingering.
        max_requests: the most requests one shared write carries.
        flushes: shared writes in flight per table.
    """

    def __init__(self, writer: TargetWriter, *, max_items_per_batch: int, max_requests: int, flushes: int = 2):
        self._writer = writer
        self._max_items_per_batch, self._max_requests = max_items_per_batch, max_requests
        self._slots = asyncio.Semaphore(flushes)
        self._queues: dict[str, _TableQueue] = {}
        self._flushes: set[asyncio.Task] = set()
        self.retries: dict[str, int] = {}  # write requests retried, by source table

    async def write(self, table: TablePair, requests: list[dict]) -> list[FailedWrite]:
        """Write one window's requests (one per key); the writes that failed after every retry."""
        if not requests:
            return []
        queue = self._queues.get(table.source)
        if queue is None:
            queue = self._queues[table.source] = _TableQueue(table)
        if queue.flusher is None:
            queue.flusher = asyncio.create_task(self._flush_loop(queue))
        keys = frozenset(key_of(request_item(r), table.key_names) for r in requests)
        waiting = _Waiting(requests, keys, asyncio.get_running_loop().create_future())
        queue.waiting.append(waiting)
        queue.queued += len(requests)
        queue.wake.set()
        return await asyncio.shield(waiting.done)  # a cancelled shard leaves its window to finish or fail alone

    async def _flush_loop(self, queue: _TableQueue) -> None:
        while True:
            await queue.wake.wait()
            queue.wake.clear()
            while queue.waiting:
                if queue.queued < self._max_items_per_batch:
                    await asyncio.sleep(LINGER_SECONDS)
                await self._slots.acquire()
                taken = self._take(queue)
                if not taken:  # every waiting window shares a key with a write in flight
                    self._slots.release()
                    break
                task = asyncio.create_task(self._flush(queue, taken))
                self._flushes.add(task)
                task.add_done_callback(self._flushes.discard)

    def _take(self, queue: _TableQueue) -> list[_Waiting]:
        taken, count, kept, passed_over = [], 0, deque(), set()
        while queue.waiting and count < self._max_requests:
            waiting = queue.waiting.popleft()
            if waiting.keys & queue.in_flight or waiting.keys & passed_over:  # never ahead of an earlier one
                kept.append(waiting)
                passed_over |= waiting.keys
                continue
            taken.append(waiting)
            queue.in_flight |= waiting.keys
            count += len(waiting.requests)
        queue.waiting.extendleft(reversed(kept))
        queue.queued -= count
        return taken

    async def _flush(self, queue: _TableQueue, taken: list[_Waiting]) -> None:
        table = queue.table
        try:
            requests = [r for waiting in taken for r in waiting.requests]
            outcome = await self._writer.write(table.target, requests, table.key_names[0])
            self.retries[table.source] = self.retries.get(table.source, 0) + outcome.retries
            failed: dict[int, list[FailedWrite]] = {}
            owner = {key: i for i, waiting in enumerate(taken) for key in waiting.keys}
            for failure in outcome.failures:  # never dropped: an unknown key is charged to the first window
                failed.setdefault(owner.get(key_of(request_item(failure.request), table.key_names), 0),
                                  []).append(failure)
            for i, waiting in enumerate(taken):
                if not waiting.done.done():
                    waiting.done.set_result(failed.get(i, []))
        except asyncio.CancelledError:
            for waiting in taken:
                waiting.done.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiting shard
            for waiting in taken:
                if not waiting.done.done():
                    waiting.done.set_exception(exc)
        finally:
            for waiting in taken:
                queue.in_flight -= waiting.keys
            self._slots.release()
            queue.wake.set()

    async def close(self) -> None:
        """Stop the flushers and cancel the writes still in flight (their windows are not checkpointed)."""
        tasks = [q.flusher for q in self._queues.values() if q.flusher] + list(self._flushes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
