"""Signed AWS JSON-1.0 requests over `http1.Origin`: the one client of the data plane, for the
table API (Scan, BatchWriteItem: `dynamo.data_plane`) and DynamoDB Streams
(GetShardIterator, GetRecords: `streams.records`).

Why not the SDK for these calls: an aiobotocore call walks every value of its request and
response through the service model's shapes, CPU paid for every item copied, and spends
more in event hooks and user-agent building on every call, empty or not, which a follower
polling many idle shards pays every second (figures: docs/design.md, Data plane). These
calls carry bytes: the caller writes the body and decodes the reply. Control-plane calls
stay on the SDK.

What is the same as through the SDK, by construction:

* Signing: SigV4 (service `dynamodb`, which DynamoDB Streams signs as too) by
  `sigv4.RequestSigner`, tested equal to botocore's `SigV4Auth` and cheaper (see
  there), with credentials from the same chain as the SDK clients
  (`signing_credentials`), frozen once per request so a refresh never mixes an old key
  with a new token. Unsigned when the caller passes no credentials.
* TLS: `TlsSettings.ssl_context(session)`, the context botocore builds: `ca_file` or
  `insecure_skip_verify`, else AWS_CA_BUNDLE or the profile's `ca_bundle`, else
  botocore's bundle.
* Proxies: HTTP(S)_PROXY and NO_PROXY, read once per endpoint (`http1`).
* `Accept-Encoding: identity`, as aiobotocore sends it, and no decompression: DynamoDB
  and DynamoDB Streams gzip a large reply for a client that accepts it and compute
  `x-amz-crc32` over the bytes as sent (aws-sdk-go-v2
  service/dynamodb/internal/customizations/doc.go; aws-sdk-java-v2's
  codegen-resources/dynamodbstreams/customization.config:
  "calculateCrc32FromCompressedData": true), so the CRC is checked over the bytes
  received.
* Errors: a reply with status >= 301 goes through botocore's JSON-protocol parser into
  the `ClientError` the SDK raises (same code, message and status), as
  botocore/parsers.py `ResponseParser.parse` does, so `retry.is_retryable` classifies it
  as for SDK calls.
* Damaged replies raise `CorruptResponse`, a `ConnectionError`, retried like a dropped
  reply: a body that does not match its `x-amz-crc32` (botocore's
  `RetryDDBChecksumError`), a header that is not a number, and a success reply that does
  not decode (not JSON, or not the shape the caller reads: a proxy's page, a cut body).
"""
from __future__ import annotations

import contextlib
import ssl
import zlib
from typing import AsyncIterator, Callable, TypeVar

import urllib.parse

import botocore.parsers
import orjson
from aiobotocore.credentials import AioCredentials
from botocore.exceptions import ClientError, NoCredentialsError

from transforms.dynamo.endpoints import Credentials, aio_session
from transforms.dynamo.http1 import Origin
from transforms.dynamo.sigv4 import RequestSigner

__all__ = ["CorruptResponse", "JsonEndpoint", "open_endpoint", "signing_credentials",
           "TABLE_TARGET_PREFIX", "STREAMS_TARGET_PREFIX"]

T = TypeVar("T")

TABLE_TARGET_PREFIX = "DynamoDB_20120810."
STREAMS_TARGET_PREFIX = "DynamoDBStreams_20120810."
_SIGNING_NAME = "dynamodb"  # DynamoDB Streams signs as the dynamodb service too
_CONTENT_TYPE = "application/x-amz-json-1.0"
_ERRORS = botocore.parsers.create_parser("json")  # the SDK's parser for DynamoDB's JSON protocol
# What a decoder raises for a body that is not JSON (ValueError, UnicodeDecodeError) or not
# the shape it reads (a missing key, a list where an object was due).
_UNDECODABLE = (ValueError, KeyError, TypeError, AttributeError)


class CorruptResponse(ConnectionError):
    """A reply damaged on its way (see the module docstring); retried as a dropped reply."""


class JsonEndpoint:
    """AWS JSON-1.0 requests to one URL, for one API's `X-Amz-Target` prefix; use it on the
    event loop it was opened on."""

    def __init__(self, origin: Origin, url: str, target_prefix: str, region: str, credentials):
        self._origin = origin
        self._url = url.rstrip("/") + "/"
        self._path = urllib.parse.urlsplit(self._url).path
        self._target_prefix = target_prefix
        self._credentials = credentials  # aiobotocore credentials, or None: unsigned
        self._signer = RequestSigner(self._url, region, _SIGNING_NAME)

    async def _headers(self, operation: str, body: bytes) -> dict:
        headers = {"Content-Type": _CONTENT_TYPE, "X-Amz-Target": self._target_prefix + operation,
                   "Accept-Encoding": "identity"}
        if self._credentials is None:
            return headers
        return self._signer.sign(headers, body, await self._credentials.get_frozen_credentials())

    async def call(self, operation: str, body: bytes, decode: Callable[[bytes], T] = orjson.loads) -> T:
        """POST one request; `decode` of the reply's body, or the `ClientError` the SDK would raise."""
        reply = await self._origin.post(self._path, await self._headers(operation, body), body)
        status, payload = reply.status, reply.body
        _check_crc32(operation, payload, reply.headers.get("x-amz-crc32"))
        if status >= 301:
            parsed = _ERRORS.parse({"status_code": status, "headers": reply.headers, "body": payload}, None)
            raise ClientError(parsed, operation)
        try:
            return decode(payload)
        except _UNDECODABLE as exc:
            raise CorruptResponse(f"{operation}: a {status} reply that does not decode "
                                  f"({type(exc).__name__}: {str(exc)[:200]})") from exc


def _check_crc32(operation: str, payload: bytes, header: str | None) -> None:
    """`CorruptResponse` unless `payload` (the bytes received) matches `header` (absent: nothing to check)."""
    if header is None:
        return
    try:
        expected = int(header)
    except ValueError:
        raise CorruptResponse(f"{operation}: the reply's x-amz-crc32 is not a number: {header[:40]!r}") from None
    if zlib.crc32(payload) != expected:
        raise CorruptResponse(f"{operation}: the reply does not match its x-amz-crc32")


async def signing_credentials(credentials: Credentials | None, region: str | None = None) -> AioCredentials:
    """Credentials for signing, as the SDK clients get them: the spec's keys, else its
    session's chain (a profile, a role assumed and refreshed, or the default chain)."""
    credentials = credentials or Credentials()
    if credentials.boto_kwargs():
        return AioCredentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    found = await aio_session(credentials, region).get_credentials()
    if found is None:
        raise NoCredentialsError()
    return found


@contextlib.asynccontextmanager
async def open_endpoint(url: str, target_prefix: str, region: str, credentials, tls: ssl.SSLContext,
                        max_connections: int) -> AsyncIterator[JsonEndpoint]:
    """A `JsonEndpoint` with its own connection pool; `credentials` None: unsigned requests;
    `tls` is used for an https URL."""
    origin = Origin(url, tls, max_connections)
    try:
        yield JsonEndpoint(origin, url, target_prefix, region, credentials)
    finally:
        origin.close()
