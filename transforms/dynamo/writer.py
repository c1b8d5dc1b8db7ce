"""The one writer: full-item puts and deletes with BatchWriteItem, each key through one node.

Every path that changes the target (bulk pages, stream windows, repairs) writes through
`open_writer(target, settings)`:

- Requests are full-item puts and deletes (`put(item)`, `delete(key)`), so any replay
  is safe. `collapse_by_key` keeps the last request per key: Alternator rejects a batch
  that names a key twice, and the last write is the one that counts.
- Each partition key goes to the same Alternator node, chosen by rendezvous hashing
  over the live nodes (found at /localnodes, within the configured datacenter/rack, by
  alternator-client's `AsyncHelper`). Alternator stamps a write with the receiving
  node's clock, so two writes of a key sent to two nodes with skewed clocks could land
  in the wrong order: a replayed stream change could hide behind the snapshot's older
  copy. A node joining or leaving moves only its own keys. The library's own
  key-affinity mode routes a whole batch by the majority of its keys, which would move
  a key between nodes from one batch to the next. With `target.endpoint` (no
  discovery) there is one node.
- Batches of `batch_size`, `concurrency` batches in flight and one token-bucket rate
  shared by all nodes; transient failures retried with exponential backoff and full
  jitter; UnprocessedItems re-sent; a batch rejected as invalid split to isolate the
  bad requests. What still fails is returned, never dropped.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

from transforms.dynamo.endpoints import TargetSpec, alternator_config, node_client
from transforms.dynamo.rate_limit import TokenBucket
from transforms.dynamo.retry import UnprocessedItemsLeft, call_with_retry, error_code, is_retryable
from transforms.items.digests import key_digest
from transforms.items.keys import key_of


@dataclass(frozen=True)
class WriterSettings:
    """How one worker writes; built once by the launcher (the rate is this worker's share)."""

    batch_size: int = 100
    concurrency: int = 16
    max_attempts: int = 10
    items_per_second: float | None = None


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


def node_for(partition_key: bytes, nodes: Sequence[str]) -> str:
    """Rendezvous (highest random weight) hashing: stable as nodes come and go."""
    return max(nodes, key=lambda node: hashlib.blake2b(partition_key + node.encode(), digest_size=8).digest())


class TargetWriter:
    """Writes request lists to target tables; use it on the event loop it was opened on."""

    def __init__(self, spec: TargetSpec, settings: WriterSettings, helper, clients: contextlib.AsyncExitStack):
        self._spec = spec
        self._settings = settings
        self._helper = helper  # alternator-client's node discovery, or None for target.endpoint
        self._stack = clients
        self._clients: dict[str, object] = {}  # node -> client bound to it
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._bucket = TokenBucket(settings.items_per_second) if settings.items_per_second else None

    def _nodes(self) -> list[str]:
        if self._spec.endpoint:
            return [self._spec.endpoint]
        return sorted(self._helper.get_nodes()) or sorted(self._spec.alternator_seeds)

    async def _client(self, node: str):
        if node not in self._clients:
            url = node if self._spec.endpoint else self._spec.node_url(node)
            self._clients[node] = await self._stack.enter_async_context(
                node_client(self._spec, url, max_connections=64))
        return self._clients[node]

    async def write(self, table: str, requests: Sequence[dict], partition_key: str) -> WriteOutcome:
        """Write requests (one per key), each through its key's node; never raises for a failed write."""
        nodes = self._nodes()
        by_node: dict[str, list[dict]] = {}
        for request in requests:
            key = {partition_key: request_item(request)[partition_key]}
            by_node.setdefault(node_for(key_digest(key, (partition_key,)), nodes), []).append(request)
        clients = {node: await self._client(node) for node in by_node}
        outcome = WriteOutcome()
        size = self._settings.batch_size
        await asyncio.gather(*(self._write_batch(clients[node], table, batch[i:i + size], outcome)
                               for node, batch in by_node.items() for i in range(0, len(batch), size)))
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
            await call_with_retry(attempt, max_attempts=self._settings.max_attempts, on_retry=count_retry)
        except Exception as exc:  # noqa: BLE001 - every final failure is reported, never dropped
            if len(remaining) > 1 and not is_retryable(exc) and error_code(exc) == "ValidationException":
                half = len(remaining) // 2
                await asyncio.gather(self._write_batch(client, table, remaining[:half], outcome),
                                     self._write_batch(client, table, remaining[half:], outcome))
                return
            reason = f"{type(exc).__name__}: {exc}"
            outcome.failures.extend(FailedWrite(table, request, reason) for request in remaining)


@contextlib.asynccontextmanager
async def open_writer(spec: TargetSpec, settings: WriterSettings) -> AsyncIterator[TargetWriter]:
    """A `TargetWriter` for the target, with node discovery for an Alternator cluster."""
    async with contextlib.AsyncExitStack() as stack:
        helper = None
        if not spec.endpoint:
            from alternator.async_client import AsyncHelper
            helper = AsyncHelper(alternator_config(spec))
            await helper.start()
            stack.push_async_callback(helper.stop)
        yield TargetWriter(spec, settings, helper, stack)
