"""The one writer: full-item puts and deletes with BatchWriteItem, each key through one node.

Every path that changes the target (bulk pages, stream windows, repairs) writes through
`open_writer(target, settings)`:

- Requests are full-item puts and deletes (`write_requests`: `put(item)`, `delete(key)`), so any replay
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
- Batches of `max_items_per_batch` items and at most `max_request_bytes` of body
  (`dynamo.request_size`: both services refuse a request over 16 MB), `concurrency`
  batches in flight and one token-bucket rate shared by all nodes; transient failures
  retried with exponential backoff and full jitter; UnprocessedItems re-sent; a batch
  rejected as invalid or as too large split to isolate the bad requests. What still
  fails is returned, never dropped.
- For a DynamoDB target (`max_item_bytes`), a put over DynamoDB's item size limit fails at
  once, before batching (`refuse_oversized`): DynamoDB refuses it whatever is tried, and an
  Alternator source can hold one (Alternator has no such limit).
- Requests travel as their JSON text (`items.wire_encode`), written once: straight
  from an Arrow page (`write_batch`) or from request dicts (`write`), and sent through
  the data plane (`dynamo.data_plane`), signed by `dynamo.sigv4`. Only a failed
  request is turned back into a dict, for its dead letter.

The encoders (`items.wire_encode`, `items.digests`, `items.item_size`) are imported at the
first write, not with this module: they load pyarrow and numpy (~0.25 s of CPU), which a
`replicate --until-caught-up` with nothing new to write, the last step of a cutover, never needs.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, Callable, Sequence

import orjson

from transforms.dynamo.data_plane import Cluster, DataPlane, open_cluster
from transforms.dynamo.endpoints import TargetSpec
from transforms.dynamo.rate_limit import TokenBucket
from transforms.dynamo.retry import (REFUSAL_CODES, UnprocessedItemsLeft, call_with_retry, error_code, error_message,
                                     is_retryable)
from transforms.errors import TargetRefusedError
from transforms.dynamo.write_requests import FailedWrite, request_item
from transforms.settings import WriterSettings

if TYPE_CHECKING:
    import pyarrow as pa


# The reply to a BatchWriteItem that wrote everything, as DynamoDB, DynamoDB Local and
# Alternator send it (compact JSON); any other reply is parsed.
_ALL_PROCESSED = b'{"UnprocessedItems":{}}'


@dataclass
class WriteOutcome:
    """Filled on the event loop's thread; read by the caller once the write is done."""

    failures: list[FailedWrite] = field(default_factory=list)
    retries: int = 0


def nodes_for(partition_keys: Sequence[bytes], nodes: Sequence[str]) -> list[str]:
    """Rendezvous (highest random weight) hashing, stable as nodes come and go: per partition key
    (its digest), the node of highest `node_score` (the first of them on a tie), scored for a
    whole page at once in numpy (why: docs/design.md, Data plane, "Node routing")."""
    import numpy as np  # noqa: PLC0415 - see the module docstring

    width = len(partition_keys[0]) if partition_keys else 8
    keys = np.frombuffer(b"".join(partition_keys), dtype="<u8").reshape(len(partition_keys), width // 8)[:, 0]
    scores = np.stack([_mixed(keys ^ np.uint64(_node_seed(node))) for node in nodes])
    return [nodes[i] for i in scores.argmax(axis=0).tolist()]


def node_score(partition_key: bytes, node: str) -> int:
    """One key's score on one node: splitmix64's finalizer of the key digest's first 8 bytes
    (little-endian) XOR the node's seed; `nodes_for` computes the same for a whole page."""
    import numpy as np  # noqa: PLC0415 - see the module docstring

    key = np.frombuffer(partition_key[:8], dtype="<u8")
    return int(_mixed(key ^ np.uint64(_node_seed(node)))[0])


def _node_seed(node: str) -> int:
    return int.from_bytes(hashlib.blake2b(node.encode(), digest_size=8).digest(), "little")


def _mixed(z):
    """splitmix64's finalizer over a uint64 array (numpy's uint64 products wrap mod 2^64)."""
    import numpy as np  # noqa: PLC0415 - see the module docstring

    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def last_per_key(batch: pa.RecordBatch, key_names: Sequence[str]) -> pa.RecordBatch:
    """`collapse_by_key` for a batch: the last row of each key, in their order (a Scan page
    holds every key once, which is checked in C)."""
    from transforms.items.digests import distinct_keys, key_texts  # noqa: PLC0415 - see the module docstring

    if distinct_keys(batch, key_names) == batch.num_rows:
        return batch
    latest = {text: row for row, text in enumerate(key_texts(batch, key_names))}
    return batch.take(sorted(latest.values()))


def refuse_oversized(table: str, rows: list[bytes], max_item_bytes: int | None
                     ) -> tuple[list[bytes], list[FailedWrite]]:
    """The request texts to send, and the puts over a DynamoDB target's item size limit as
    permanent failures, never sent: no retry or split can make DynamoDB take them."""
    from transforms.items.item_size import oversized_puts  # noqa: PLC0415 - see the module docstring
    from transforms.items.wire_encode import request_of  # noqa: PLC0415

    oversized = oversized_puts(rows, max_item_bytes) if max_item_bytes else {}
    if not oversized:
        return rows, []
    refused = [FailedWrite(table, request_of(rows[i]), f"ItemTooLarge: the item is {size:,} bytes as DynamoDB counts "
                           f"them (attribute names and values), over DynamoDB's item size limit of 400 KB "
                           f"({max_item_bytes:,} bytes); not sent", permanent=True)
               for i, size in oversized.items()]
    return [row for i, row in enumerate(rows) if i not in oversized], refused


class TargetWriter:
    """Writes requests to target tables; use it on the event loop it was opened on."""

    def __init__(self, cluster: Cluster, settings: WriterSettings):
        self._cluster = cluster
        self._settings = settings
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._bucket = TokenBucket(settings.max_items_per_second) if settings.max_items_per_second else None

    async def write(self, table: str, requests: Sequence[dict], partition_key: str) -> WriteOutcome:
        """Write request dicts (one per key), each through its key's node; never raises for a failed write."""
        from transforms.items.digests import key_digest  # noqa: PLC0415 - see the module docstring
        from transforms.items.wire_encode import request_row  # noqa: PLC0415

        def partition_keys() -> list[bytes]:
            return [key_digest({partition_key: request_item(r)[partition_key]}, (partition_key,)) for r in requests]

        return await self._write_rows(table, [request_row(request) for request in requests], partition_keys)

    async def write_batch(self, table: str, batch: pa.RecordBatch, key_names: Sequence[str]) -> WriteOutcome:
        """Put every row of a batch (the `arrow_codec` layout, target naming, one row per key)."""
        from transforms.items.digests import key_texts, text_digest  # noqa: PLC0415 - see the module docstring
        from transforms.items.wire_encode import put_rows  # noqa: PLC0415

        def partition_keys() -> list[bytes]:
            return [text_digest(text) for text in key_texts(batch, key_names[:1])]

        return await self._write_rows(table, put_rows(batch), partition_keys)

    async def _write_rows(self, table: str, rows: list[bytes], partition_keys: Callable[[], list[bytes]]
                          ) -> WriteOutcome:
        """Write request texts; `partition_keys()` gives their partition keys' digests (which node)."""
        from transforms.dynamo.request_size import cut_by_size  # noqa: PLC0415 - see the module docstring

        nodes = self._cluster.nodes()
        if len(nodes) == 1:
            by_node = {nodes[0]: rows}
        else:
            by_node = {}
            for row, node in zip(rows, nodes_for(partition_keys(), nodes)):
                by_node.setdefault(node, []).append(row)
        outcome = WriteOutcome()
        for node, node_rows in by_node.items():
            by_node[node], refused = refuse_oversized(table, node_rows, self._settings.max_item_bytes)
            outcome.failures.extend(refused)
        planes = {node: await self._cluster.node(node) for node in by_node}
        settings = self._settings
        await asyncio.gather(*(self._write_batch(planes[node], table, batch, outcome)
                               for node, node_rows in by_node.items()
                               for batch in cut_by_size(table, node_rows, settings.max_items_per_batch,
                                                        settings.max_request_bytes)))
        return outcome

    async def _write_batch(self, plane: DataPlane, table: str, rows: list[bytes], outcome: WriteOutcome) -> None:
        from transforms.dynamo.request_size import too_large  # noqa: PLC0415 - see the module docstring
        from transforms.items.wire_encode import batch_write_body, request_of  # noqa: PLC0415

        if self._bucket is not None:
            await self._bucket.acquire(len(rows))
        remaining = rows

        def unprocessed(reply: bytes) -> list | None:
            if reply == _ALL_PROCESSED:  # nearly every reply: nothing to parse
                return None
            return (orjson.loads(reply).get("UnprocessedItems") or {}).get(table)

        async def attempt() -> None:
            nonlocal remaining
            async with self._in_flight:
                left = await plane.call("BatchWriteItem", batch_write_body(table, remaining), unprocessed)
            if left:
                remaining = [orjson.dumps(request) for request in left]
                raise UnprocessedItemsLeft(len(left))

        def count_retry(_exc: BaseException) -> None:
            outcome.retries += 1

        try:
            await call_with_retry(attempt, max_attempts=self._settings.max_attempts, on_retry=count_retry)
        except Exception as exc:  # noqa: BLE001 - every final failure is reported, never dropped
            if error_code(exc) in REFUSAL_CODES:
                raise TargetRefusedError(
                    f"{table}: the target refused BatchWriteItem: {error_code(exc)}: {error_message(exc)}; "
                    f"nothing was written to the dead-letter folder: fix the target's credentials, "
                    f"permissions or table, then run the command again (a copy goes on with --resume)") from exc
            if len(remaining) > 1 and (too_large(exc) or
                                       not is_retryable(exc) and error_code(exc) == "ValidationException"):
                half = len(remaining) // 2
                await asyncio.gather(self._write_batch(plane, table, remaining[:half], outcome),
                                     self._write_batch(plane, table, remaining[half:], outcome))
                return
            reason = f"{type(exc).__name__}: {exc}"
            outcome.failures.extend(FailedWrite(table, request_of(row), reason) for row in remaining)


@contextlib.asynccontextmanager
async def open_writer(spec: TargetSpec, settings: WriterSettings) -> AsyncIterator[TargetWriter]:
    """A `TargetWriter` for the target, with node discovery for an Alternator cluster."""
    async with open_cluster(spec, max_connections=64) as cluster:
        yield TargetWriter(cluster, settings)
