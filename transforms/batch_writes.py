"""BatchWriteItem done right, for every writer: bulk pages, repairs, stream changes.

Writes are full-item puts and deletes (`put(item)`, `delete(key)`), so any replay is
safe. `collapse_by_key` keeps the last request per key: Alternator rejects a batch that
names a key twice, and the last write is the one that counts. `BatchWriter` cuts
requests into batches of `batch_size`, keeps `concurrency` batches in flight, holds a
token-bucket rate, retries transient failures with exponential backoff and full jitter,
re-sends UnprocessedItems, splits a batch rejected as invalid to isolate the bad
requests, and returns what still failed instead of dropping it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Sequence

from transforms.arrow_codec import key_of
from transforms.rate_limit import TokenBucket
from transforms.retry import UnprocessedItemsLeft, call_with_retry, error_code, is_retryable


@dataclass(frozen=True)
class FailedWrite:
    table: str
    request: dict  # {"PutRequest": {"Item": ...}} or {"DeleteRequest": {"Key": ...}}
    error: str


@dataclass
class WriteOutcome:
    """Filled on the event loop's thread; read by the caller once the write is done."""

    failures: list[FailedWrite] = field(default_factory=list)
    retries: int = 0


def put(item: dict) -> dict:
    return {"PutRequest": {"Item": item}}


def delete(key: dict) -> dict:
    return {"DeleteRequest": {"Key": key}}


def request_item(request: dict) -> dict:
    """The item of a put, or the key of a delete."""
    return request["PutRequest"]["Item"] if "PutRequest" in request else request["DeleteRequest"]["Key"]


def collapse_by_key(requests: Sequence[dict], key_names: Sequence[str]) -> list[dict]:
    """One request per key, the last one, in the order of their last appearance."""
    latest = {key_of(request_item(r), key_names): r for r in requests}
    return list(latest.values()) if len(latest) < len(requests) else list(requests)


class BatchWriter:
    """Writes request lists through clients; create and use it on the clients' event loop.

    The concurrency limit and the rate are this writer's, whichever client a call uses.
    """

    def __init__(self, client=None, *, batch_size: int, concurrency: int, max_attempts: int,
                 items_per_second: float | None = None):
        self._client = client
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._in_flight = asyncio.Semaphore(concurrency)
        self._bucket = TokenBucket(items_per_second) if items_per_second else None

    async def write(self, table: str, requests: Sequence[dict], client=None) -> WriteOutcome:
        """Write all requests (already collapsed by key) through `client` (default: the
        writer's); never raises for a failed write."""
        client = client or self._client
        outcome = WriteOutcome()
        batches = [list(requests[i:i + self._batch_size]) for i in range(0, len(requests), self._batch_size)]
        await asyncio.gather(*(self._write_batch(client, table, batch, outcome) for batch in batches))
        return outcome

    async def _write_batch(self, client, table: str, requests: list[dict], outcome: WriteOutcome) -> None:
        if self._bucket is not None:
            await self._bucket.acquire(len(requests))
        remaining = requests

        async def attempt() -> None:
            nonlocal remaining
            async with self._in_flight:
                response = await client.batch_write_item(RequestItems={table: remaining})
            left = response.get("UnprocessedItems", {}).get(table, [])
            if left:
                remaining = left
                raise UnprocessedItemsLeft(len(left))

        def count_retry(_exc: BaseException) -> None:
            outcome.retries += 1

        try:
            await call_with_retry(attempt, max_attempts=self._max_attempts, on_retry=count_retry)
        except Exception as exc:  # noqa: BLE001 - every final failure is reported, never dropped
            if len(remaining) > 1 and not is_retryable(exc) and error_code(exc) == "ValidationException":
                half = len(remaining) // 2
                await asyncio.gather(self._write_batch(client, table, remaining[:half], outcome),
                                     self._write_batch(client, table, remaining[half:], outcome))
                return
            reason = f"{type(exc).__name__}: {exc}"
            outcome.failures.extend(FailedWrite(table, request, reason) for request in remaining)
