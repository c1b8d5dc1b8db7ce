"""The data plane of the table API: Scan and BatchWriteItem as signed JSON requests.

The requests are `aws_json.JsonEndpoint` calls (signing, TLS, proxies, CRC, errors: see
there, shared with the Streams data plane). The caller writes the request body
(`items.wire_encode`) and decodes the response body (`items.wire_decode`).
Control-plane calls (DescribeTable, CreateTable, TTL, tags, Streams' DescribeStream)
stay on the SDK.

Who signs: the source always, with its credentials or the AWS default chain; the
target as `TargetSpec.signed` says (its credentials; without them only AWS DynamoDB's
own endpoints, with the default chain; anything else unsigned).

`Cluster` is one side's data plane: one endpoint, or the nodes of an Alternator cluster
found by alternator-client's discovery (`/localnodes`), each with its own connection
pool. Readers spread their requests over the nodes; the writer picks a node per key.
"""
from __future__ import annotations

import contextlib
import itertools
import ssl
from typing import AsyncIterator, Callable, TypeVar

import orjson

from transforms.dynamo.aws_json import TABLE_TARGET_PREFIX, JsonEndpoint, open_endpoint, signing_credentials
from transforms.dynamo.endpoints import SourceSpec, TargetSpec, aio_session, alternator_config, session_for

__all__ = ["DataPlane", "Cluster", "open_cluster"]

T = TypeVar("T")

DataPlane = JsonEndpoint  # one node's table API


class Cluster:
    """One side's data plane: a single endpoint, or an Alternator cluster's live nodes."""

    def __init__(self, spec: SourceSpec | TargetSpec, credentials, tls: ssl.SSLContext, endpoint: str | None,
                 helper, stack: contextlib.AsyncExitStack, max_connections: int):
        self._spec = spec
        self._credentials = credentials  # None: unsigned
        self._tls = tls
        self._endpoint = endpoint  # the one URL; None for a cluster
        self._helper = helper  # alternator-client's node discovery, for a cluster
        self._stack = stack
        self._max_connections = max_connections
        self._planes: dict[str, DataPlane] = {}
        self._turn = itertools.count()

    def nodes(self) -> list[str]:
        """The nodes to send to (sorted): the live ones, or the seeds until discovery answers."""
        if self._helper is None:
            return [self._endpoint]
        return sorted(self._helper.get_nodes()) or sorted(self._spec.alternator_seeds)

    async def node(self, node: str) -> DataPlane:
        """The data plane of one node (of `nodes()`), opened on first use."""
        plane = self._planes.get(node)
        if plane is None:
            url = self._spec.node_url(node) if self._helper is not None else node
            plane = self._planes[node] = await self._stack.enter_async_context(
                open_endpoint(url, TABLE_TARGET_PREFIX, self._spec.region, self._credentials, self._tls,
                              self._max_connections))
        return plane

    async def call(self, operation: str, body: bytes, decode: Callable[[bytes], T] = orjson.loads) -> T:
        """One request, sent to the nodes in turn (reads: the load spreads over the cluster)."""
        nodes = self.nodes()
        return await (await self.node(nodes[next(self._turn) % len(nodes)])).call(operation, body, decode)


async def _aws_endpoint(spec: SourceSpec) -> str:
    """DynamoDB's URL in the spec's region as the SDK resolves it (partition, FIPS and
    AWS_ENDPOINT_URL_DYNAMODB settings included)."""
    async with session_for(spec.credentials, spec.region).create_client("dynamodb", region_name=spec.region) as client:
        return client.meta.endpoint_url


@contextlib.asynccontextmanager
async def open_cluster(spec: SourceSpec | TargetSpec, max_connections: int = 32) -> AsyncIterator[Cluster]:
    """The data plane of the source or the target (see `Cluster`)."""
    async with contextlib.AsyncExitStack() as stack:
        helper = None
        endpoint = spec.endpoint
        if isinstance(spec, TargetSpec):
            signed = spec.signed
            if not spec.endpoint:
                from alternator.async_client import AsyncHelper
                helper = AsyncHelper(alternator_config(spec))
                await helper.start()
                stack.push_async_callback(helper.stop)
        else:
            signed = True
            endpoint = endpoint or await _aws_endpoint(spec)
        credentials = await signing_credentials(spec.credentials, spec.region) if signed else None
        tls = spec.tls.ssl_context(aio_session(spec.credentials, spec.region))
        yield Cluster(spec, credentials, tls, endpoint, helper, stack, max_connections)
