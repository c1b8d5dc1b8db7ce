"""The Streams data plane: GetShardIterator and GetRecords as signed JSON requests.

Why not the SDK here: a follower polls every open shard about once a second, and
through aiobotocore each call costs about 1.1 ms of CPU (event hooks, user-agent
building, shape-driven parsing), mostly for empty pages; a thousand shards would need
a core just to ask. These two calls are sent with aiohttp, signed by botocore's own
SigV4 signer with credentials from the same chain as every other client, and parsed
with `json`: about 0.35 ms a call (measured against tests/support/fake_streams.py).
Control-plane calls (DescribeStream, ListStreams) stay on the SDK.

Errors become botocore `ClientError`s with the service's error code, so the retry
policy (`transforms.dynamo.retry`) classifies them exactly as for SDK calls.
`get_records` is the one function that reads a page: a faster decoder can replace its
body without touching its callers.

A NewImage holding a value without exactly one type tag is not an item to write: DynamoDB
Local 3.x sends every empty map in a stream image as `{}` instead of `{"M": {}}` (its
GetItem and Scan do not; awslabs/amazon-dynamodb-local-samples#37), and `{}` could as
well be an empty list. Such a change is applied as for a KEYS_ONLY stream, from the
source's current item (see `windows.window_requests`), never from a guess.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import ssl
import zlib
from typing import AsyncIterator

import aiohttp
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession
from aiohttp.helpers import get_env_proxy_for_url
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.httpsession import get_cert_path
from yarl import URL

from transforms.dynamo.endpoints import Credentials, SourceSpec, aio_session
from transforms.items.ddb_json import decode_item

log = logging.getLogger(__name__)

_TARGET_PREFIX = "DynamoDBStreams_20120810."
_SIGNING_NAME = "dynamodb"  # DynamoDB Streams signs as the dynamodb service
_CONTENT_TYPE = "application/x-amz-json-1.0"


class StreamsData:
    """GetShardIterator and GetRecords against one DynamoDB Streams endpoint."""

    def __init__(self, http: aiohttp.ClientSession, url: str, region: str, credentials):
        self._http = http
        self._url = url.rstrip("/") + "/"
        self._region = region
        self._credentials = credentials  # aiobotocore credentials (refreshed by the provider chain)
        try:  # HTTP(S)_PROXY / NO_PROXY, as the SDK honours them; read once, not per request
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self._url))
        except LookupError:
            self._proxy = self._proxy_auth = None

    async def _call(self, operation: str, params: dict) -> dict:
        body = json.dumps(params).encode()
        request = AWSRequest(method="POST", url=self._url, data=body,
                             headers={"Content-Type": _CONTENT_TYPE, "X-Amz-Target": _TARGET_PREFIX + operation})
        SigV4Auth(await self._credentials.get_frozen_credentials(), _SIGNING_NAME, self._region).add_auth(request)
        async with self._http.post(self._url, data=body, headers=dict(request.headers.raw_items()), proxy=self._proxy,
                                   proxy_auth=self._proxy_auth) as response:
            raw = await response.read()
            expected_crc = response.headers.get("x-amz-crc32")
            status = response.status
        if expected_crc is not None and zlib.crc32(raw) != int(expected_crc):
            raise aiohttp.ClientPayloadError(f"{operation}: response CRC32 mismatch")  # retried as a dropped reply
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        if status >= 300:
            code = str(answer.get("__type", "")).rpartition("#")[2] or ("InternalFailure" if status >= 500 else
                                                                        "UnknownError")
            message = answer.get("message") or answer.get("Message") or raw[:200].decode("utf-8", "replace")
            raise ClientError({"Error": {"Code": code, "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, operation)
        return answer

    async def shard_iterator(self, stream_arn: str, shard_id: str, after: str | None) -> str:
        """An iterator just after sequence number `after`, or at the oldest record (None)."""
        params = {"StreamArn": stream_arn, "ShardId": shard_id}
        params.update({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                      else {"ShardIteratorType": "TRIM_HORIZON"})
        return (await self._call("GetShardIterator", params))["ShardIterator"]

    async def get_records(self, iterator: str, limit: int) -> dict:
        """One page: {"Records": [...], "NextShardIterator": ... (absent once a closed shard ends)}.

        Each record's Keys and NewImage are low-level items as botocore gives them (B as
        bytes, N as text); ApproximateCreationDateTime is epoch seconds; OldImage is
        dropped (a change is applied from its keys and new image), and so is a NewImage
        with a value that has no type (see the module docstring).
        """
        page = await self._call("GetRecords", {"ShardIterator": iterator, "Limit": limit})
        for record in page.setdefault("Records", []):
            _decode_change(record["dynamodb"])
        return page


def _decode_change(change: dict) -> None:
    """A record's Keys and NewImage decoded in place, its OldImage dropped, and its NewImage
    too when a value in it has no single type tag (see the module docstring)."""
    change["Keys"] = decode_item(change["Keys"])
    image = change.pop("NewImage", None)
    if image is not None:
        try:
            change["NewImage"] = decode_item(image)
        except ValueError:  # a value not exactly one type tag (or bad base64): not an item to write
            _warn_untyped_image()
    change.pop("OldImage", None)


@functools.cache
def _warn_untyped_image() -> None:
    """Once a process: the change is applied all the same, from the source."""
    log.warning("the stream sent a change whose NewImage holds a value without its type (DynamoDB Local 3.x sends "
                "an empty map as {}); such changes are applied from the source's current item, as for a KEYS_ONLY "
                "stream")


def _ssl_context(spec: SourceSpec, session: AioSession) -> ssl.SSLContext:
    """TLS checked as the SDK client of the source checks it: `source.ca_file` or
    `insecure_skip_verify`, else AWS_CA_BUNDLE / ca_bundle, else botocore's own bundle."""
    if spec.tls.ca_pem or not spec.tls.verify:
        return spec.tls.ssl_context()
    return ssl.create_default_context(cafile=session.get_config_variable("ca_bundle") or get_cert_path(True))


@contextlib.asynccontextmanager
async def open_streams_data(spec: SourceSpec, endpoint_url: str, max_connections: int = 64
                            ) -> AsyncIterator[StreamsData]:
    """`StreamsData` for the source's Streams endpoint (`endpoint_url`, as the SDK client resolved it)."""
    creds = spec.credentials or Credentials()
    session = aio_session(creds)
    # The keys the SDK clients are given, or what their session provides (profile, chain, assumed role).
    credentials = (AioCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
                   if creds.boto_kwargs() else await session.get_credentials())
    if credentials is None:
        raise NoCredentialsError()
    connector = aiohttp.TCPConnector(limit=max_connections,
                                     ssl=_ssl_context(spec, session) if endpoint_url.startswith("https") else False)
    timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        yield StreamsData(http, endpoint_url, spec.region, credentials)
