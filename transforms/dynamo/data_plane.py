"""The data plane: Scan and BatchWriteItem as signed JSON requests over aiohttp.

Why not the SDK here: an aiobotocore call walks every value of its request and of its
response through the service model's shapes (validation, serialisation, parsing): about
300 microseconds of CPU per item copied, where the whole copy now costs a tenth of that.
These calls carry bytes: the caller writes the request body (`items.wire_encode`) and
reads the response body (`items.wire_decode`). Control-plane calls (DescribeTable,
CreateTable, TTL, tags, Streams' DescribeStream) stay on the SDK.

What is the same as through the SDK, by construction:

* Signing: botocore's own `SigV4Auth` signs each request, with credentials from the
  same chain as the SDK clients (the spec's keys, else `endpoints.session_for`: its
  profile, an assumed role refreshed before it expires, or the default chain), frozen
  once per request so a refresh never mixes an old key with a new token. A target without `credentials` is an Alternator cluster
  without authorization and gets unsigned requests, as before; a plain target endpoint
  signs with the default chain, as the SDK did.
* TLS: the endpoint spec's settings (`TlsSettings.ssl_context()`: its CA, or the
  system's; or no verification when `insecure_skip_verify` says so).
* Errors: a response with status >= 301 is parsed by botocore's own JSON parser into
  the `ClientError` the SDK would raise (same `Error.Code`, message, status), so
  `retry.is_retryable` classifies throttling, 5xx and validation errors exactly as
  before; dropped connections and timeouts are aiohttp's and asyncio's errors, which
  it retries too.
* `x-amz-crc32`: checked when the server sends it (DynamoDB does); a mismatch raises
  `CorruptResponse`, an `aiohttp.ClientPayloadError`, so it is retried like a dropped
  reply. (The SDK checks it only inside its own retry loop, which ours replaces.)

`Cluster` is one side's data plane: one endpoint, or the nodes of an Alternator cluster
found by alternator-client's discovery (`/localnodes`), each with its own connection
pool. Readers spread their requests over the nodes; the writer picks a node per key.
"""
from __future__ import annotations

import contextlib
import itertools
import zlib
from typing import AsyncIterator

import aiohttp
import botocore.parsers
from aiohttp.helpers import get_env_proxy_for_url
from aiobotocore.credentials import AioCredentials
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, NoCredentialsError
from yarl import URL

from transforms.dynamo.endpoints import Credentials, SourceSpec, TargetSpec, TlsSettings, alternator_config, session_for

__all__ = ["CorruptResponse", "DataPlane", "Cluster", "open_cluster"]

_TARGET_PREFIX = "DynamoDB_20120810."
_CONTENT_TYPE = "application/x-amz-json-1.0"
_ERRORS = botocore.parsers.create_parser("json")  # the SDK's parser for DynamoDB's JSON protocol


class CorruptResponse(aiohttp.ClientPayloadError):
    """A response body that does not match its x-amz-crc32 header (retried as a dropped reply)."""


class DataPlane:
    """Signed (or unsigned) DynamoDB JSON requests to one URL; use it on the loop it was opened on."""

    def __init__(self, http: aiohttp.ClientSession, url: str, region: str, credentials):
        self._http = http
        self._url = url.rstrip("/") + "/"
        self._region = region
        self._credentials = credentials  # aiobotocore credentials, or None: unsigned
        self._signer: SigV4Auth | None = None
        try:  # HTTP(S)_PROXY and NO_PROXY, honoured as the SDK honours them; read once, not per request
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self._url))
        except LookupError:
            self._proxy = self._proxy_auth = None

    async def _headers(self, operation: str, body: bytes) -> dict:
        headers = {"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET_PREFIX + operation,
                   "Accept-Encoding": "identity"}  # the CRC is over the bytes as sent
        if self._credentials is None:
            return headers
        frozen = await self._credentials.get_frozen_credentials()
        if self._signer is None or self._signer.credentials != frozen:
            self._signer = SigV4Auth(frozen, "dynamodb", self._region)
        request = AWSRequest(method="POST", url=self._url, data=body, headers=headers)
        self._signer.add_auth(request)
        return dict(request.headers.items())

    async def call(self, operation: str, body: bytes) -> bytes:
        """POST one request; the response body, or the `ClientError` the SDK would raise."""
        headers = await self._headers(operation, body)
        async with self._http.post(self._url, data=body, headers=headers, proxy=self._proxy,
                                   proxy_auth=self._proxy_auth) as response:
            payload = await response.read()
            status, response_headers = response.status, response.headers
        expected = response_headers.get("x-amz-crc32")
        if expected is not None and zlib.crc32(payload) != int(expected):
            raise CorruptResponse(f"{operation}: the response does not match its x-amz-crc32")
        if status >= 301:
            headers = {name.lower(): value for name, value in response_headers.items()}
            parsed = _ERRORS.parse({"status_code": status, "headers": headers, "body": payload}, None)
            raise ClientError(parsed, operation)
        return payload


async def _credentials(credentials: Credentials | None):
    """Credentials for signing, as the SDK clients get them: the spec's keys, else its session's
    chain (a profile, a role assumed and refreshed, or the default chain)."""
    credentials = credentials or Credentials()
    if credentials.boto_kwargs():
        return AioCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    found = await session_for(credentials).get_credentials()
    if found is None:
        raise NoCredentialsError()
    return found


@contextlib.asynccontextmanager
async def _open(url: str, region: str, credentials, tls: TlsSettings, max_connections: int
                ) -> AsyncIterator[DataPlane]:
    connector = aiohttp.TCPConnector(limit=max_connections,
                                     ssl=tls.ssl_context() if url.startswith("https:") else False)
    timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=60)  # as the SDK clients' settings
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                     skip_auto_headers=("User-Agent",)) as http:
        yield DataPlane(http, url, region, credentials)


class Cluster:
    """One side's data plane: a single endpoint, or an Alternator cluster's live nodes."""

    def __init__(self, spec: SourceSpec | TargetSpec, credentials, endpoint: str | None, helper,
                 stack: contextlib.AsyncExitStack, max_connections: int):
        self._spec = spec
        self._credentials = credentials
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
                _open(url, self._spec.region, self._credentials, self._spec.tls, self._max_connections))
        return plane

    async def call(self, operation: str, body: bytes) -> bytes:
        """One request, sent to the nodes in turn (reads: the load spreads over the cluster)."""
        nodes = self.nodes()
        return await (await self.node(nodes[next(self._turn) % len(nodes)])).call(operation, body)


async def _aws_endpoint(spec: SourceSpec) -> str:
    """DynamoDB's URL in the spec's region as the SDK resolves it (partition, FIPS and
    AWS_ENDPOINT_URL_DYNAMODB settings included)."""
    async with session_for(spec.credentials).create_client("dynamodb", region_name=spec.region) as client:
        return client.meta.endpoint_url


@contextlib.asynccontextmanager
async def open_cluster(spec: SourceSpec | TargetSpec, max_connections: int = 32) -> AsyncIterator[Cluster]:
    """The data plane of the source or the target (see `Cluster`)."""
    async with contextlib.AsyncExitStack() as stack:
        helper = None
        endpoint = spec.endpoint
        if isinstance(spec, TargetSpec):
            signed = bool(spec.credentials and spec.credentials.access_key_id) or bool(spec.endpoint)
            if not spec.endpoint:
                from alternator.async_client import AsyncHelper
                helper = AsyncHelper(alternator_config(spec))
                await helper.start()
                stack.push_async_callback(helper.stop)
        else:
            signed = True
            endpoint = endpoint or await _aws_endpoint(spec)
        credentials = await _credentials(spec.credentials) if signed else None
        yield Cluster(spec, credentials, endpoint, helper, stack, max_connections)
