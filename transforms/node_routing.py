"""Write every partition key through the same Alternator node.

Alternator stamps a write with the clock of the node that receives it, so two writes
of one key sent to two nodes with skewed clocks can land in the wrong order: a replayed
stream change could hide behind the snapshot's older copy, or a repair behind a
replicated change. So every writer (bulk, replication, repair) uses `StickyWriter`: it
picks a node per partition key by rendezvous hashing over the live nodes (found at
/localnodes, within the configured datacenter/rack, by alternator-client's
`AsyncHelper`) and sends each node only its keys, through a plain client bound to that
node. A node joining or leaving moves only its own keys; the load still spreads over
all nodes because keys do.

With `target.endpoint` (no discovery) there is one node and nothing to choose.
"""
from __future__ import annotations

import asyncio
import hashlib
from typing import Sequence

from transforms.batch_writes import BatchWriter, WriteOutcome, request_item
from transforms.digests import key_digest
from transforms.endpoints import TargetSpec, alternator_config, node_client


def node_for(partition_key: bytes, nodes: Sequence[str]) -> str:
    """Rendezvous (highest random weight) hashing: stable as nodes come and go."""
    return max(nodes, key=lambda node: hashlib.blake2b(partition_key + node.encode(), digest_size=8).digest())


class StickyWriter:
    """BatchWriteItem per node, each partition key always through the same node.

    Open with `await StickyWriter.open(spec, ...)` on the event loop that will use it,
    close with `await writer.close()`. Concurrency and rate are shared by all nodes.
    """

    def __init__(self, spec: TargetSpec, writer: BatchWriter):
        self._spec = spec
        self._writer = writer
        self._helper = None
        self._clients: dict[str, object] = {}  # node -> client
        self._contexts: list = []

    @classmethod
    async def open(cls, spec: TargetSpec, *, batch_size: int, concurrency: int, max_attempts: int,
                   items_per_second: float | None) -> "StickyWriter":
        sticky = cls(spec, BatchWriter(batch_size=batch_size, concurrency=concurrency, max_attempts=max_attempts,
                                       items_per_second=items_per_second))
        if not spec.endpoint:
            from alternator.async_client import AsyncHelper
            sticky._helper = AsyncHelper(alternator_config(spec))
            await sticky._helper.start()
        return sticky

    def _nodes(self) -> list[str]:
        if self._spec.endpoint:
            return [self._spec.endpoint]
        return sorted(self._helper.get_nodes()) or sorted(self._spec.alternator_seeds)

    async def _client(self, node: str):
        if node not in self._clients:
            url = node if self._spec.endpoint else self._spec.node_url(node)
            context = node_client(self._spec, url, max_connections=64)
            self._contexts.append(context)
            self._clients[node] = await context.__aenter__()
        return self._clients[node]

    async def write(self, table: str, requests: Sequence[dict], partition_key: str) -> WriteOutcome:
        """Write requests (one per key) grouped by node; never raises for a failed write."""
        nodes = self._nodes()
        by_node: dict[str, list[dict]] = {}
        for request in requests:
            key = {partition_key: request_item(request)[partition_key]}
            by_node.setdefault(node_for(key_digest(key, (partition_key,)), nodes), []).append(request)
        clients = {node: await self._client(node) for node in by_node}
        outcomes = await asyncio.gather(*(self._writer.write(table, batch, clients[node])
                                          for node, batch in by_node.items()))
        merged = WriteOutcome()
        for outcome in outcomes:
            merged.failures.extend(outcome.failures)
            merged.retries += outcome.retries
        return merged

    async def close(self) -> None:
        for context in reversed(self._contexts):
            await context.__aexit__(None, None, None)
        if self._helper is not None:
            await self._helper.stop()
