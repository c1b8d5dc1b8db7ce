"""Write every partition key through the same Alternator node.

Alternator stamps a write with the clock of the node that receives it, so two writes
of one key sent to two nodes with skewed clocks can land in the wrong order. For
replication, where order per key is the whole point, `StickyWriter` picks a node per
partition key by rendezvous hashing over the live nodes (found at /localnodes by
alternator-client's `AsyncHelper`) and sends each node only its keys, through a plain
client bound to that node. A node joining or leaving moves only its own keys.

With `target.endpoint` (no discovery) there is one node and nothing to choose.
"""
from __future__ import annotations

import asyncio
import hashlib
from typing import Sequence

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore import UNSIGNED

from transforms.batch_writes import BatchWriter, WriteOutcome, request_item
from transforms.digests import key_digest
from transforms.endpoints import Credentials, TargetSpec, target_client


def node_for(partition_key: bytes, nodes: Sequence[str]) -> str:
    """Rendezvous (highest random weight) hashing: stable as nodes come and go."""
    return max(nodes, key=lambda node: hashlib.blake2b(partition_key + node.encode(), digest_size=8).digest())


class StickyWriter:
    """BatchWriteItem per node, each partition key always through the same node.

    Open with `await StickyWriter.open(spec, ...)` on the event loop that will use it,
    close with `await writer.close()`.
    """

    def __init__(self, spec: TargetSpec, *, batch_size: int, concurrency: int, max_attempts: int,
                 items_per_second: float | None):
        self._spec = spec
        self._writer_args = dict(batch_size=batch_size, concurrency=concurrency, max_attempts=max_attempts,
                                 items_per_second=items_per_second)
        self._helper = None
        self._session = AioSession()
        self._clients: dict[str, object] = {}
        self._contexts: list = []
        self._writers: dict[str, BatchWriter] = {}

    @classmethod
    async def open(cls, spec: TargetSpec, **writer_args) -> "StickyWriter":
        sticky = cls(spec, **writer_args)
        if spec.endpoint:
            context = target_client(spec)
            sticky._contexts.append(context)
            sticky._writers[spec.endpoint] = BatchWriter(await context.__aenter__(), **sticky._writer_args)
        else:
            from alternator import Config
            from alternator.async_client import AsyncHelper
            sticky._helper = AsyncHelper(Config(seed_hosts=list(spec.alternator_seeds), port=spec.alternator_port,
                                                scheme=spec.alternator_scheme))
            await sticky._helper.start()
        return sticky

    def _nodes(self) -> list[str]:
        if self._spec.endpoint:
            return [self._spec.endpoint]
        return sorted(self._helper.get_nodes()) or list(self._spec.alternator_seeds)

    async def _writer(self, node: str) -> BatchWriter:
        if node not in self._writers:
            creds = self._spec.credentials or Credentials()
            config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10,
                               read_timeout=60, max_pool_connections=64,
                               **({} if creds.access_key_id else {"signature_version": UNSIGNED}))
            context = self._session.create_client(
                "dynamodb", region_name=self._spec.region, config=config, **creds.boto_kwargs(),
                endpoint_url=f"{self._spec.alternator_scheme}://{node}:{self._spec.alternator_port}")
            self._contexts.append(context)
            self._writers[node] = BatchWriter(await context.__aenter__(), **self._writer_args)
        return self._writers[node]

    async def write(self, table: str, requests: Sequence[dict], partition_key: str) -> WriteOutcome:
        """Write requests (one per key) grouped by node; never raises for a failed write."""
        nodes = self._nodes()
        by_node: dict[str, list[dict]] = {}
        for request in requests:
            key = {partition_key: request_item(request)[partition_key]}
            by_node.setdefault(node_for(key_digest(key, (partition_key,)), nodes), []).append(request)
        writers = {node: await self._writer(node) for node in by_node}
        outcomes = await asyncio.gather(*(writers[node].write(table, batch) for node, batch in by_node.items()))
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
