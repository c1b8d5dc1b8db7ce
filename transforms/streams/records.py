"""The Streams data plane: GetShardIterator and GetRecords as signed JSON requests.

A follower polls every open shard about once a second, so these two calls skip the SDK
(whose fixed CPU cost a call would be paid mostly for empty pages): they are
`aws_json.JsonEndpoint` calls, the same client as the table data plane's (signing with
the source's credentials, TLS, proxies, CRC over the bytes received, botocore's error
parser, `CorruptResponse` for a damaged reply). Control-plane calls (DescribeStream,
ListStreams) stay on the SDK.

`get_records` is the one function that reads a page: a faster decoder can replace `_page`
without touching its callers.

A NewImage holding a value without exactly one type tag is not an item to write: DynamoDB
Local 3.x sends every empty map in a stream image as `{}` instead of `{"M": {}}` (its
GetItem and Scan do not; awslabs/amazon-dynamodb-local-samples#37), and `{}` could as
well be an empty list. Such a change is applied as for a KEYS_ONLY stream, from the
source's current item (see `windows.window_requests`), never from a guess.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from typing import AsyncIterator

import orjson

from transforms.dynamo.aws_json import STREAMS_TARGET_PREFIX, JsonEndpoint, open_endpoint, signing_credentials
from transforms.dynamo.endpoints import SourceSpec, aio_session
from transforms.items.ddb_json import decode_item

log = logging.getLogger(__name__)


class StreamsData:
    """GetShardIterator and GetRecords against one DynamoDB Streams endpoint."""

    def __init__(self, endpoint: JsonEndpoint):
        self._endpoint = endpoint

    async def shard_iterator(self, stream_arn: str, shard_id: str, after: str | None) -> str:
        """An iterator just after sequence number `after`, or at the oldest record (None)."""
        params = {"StreamArn": stream_arn, "ShardId": shard_id}
        params.update({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after} if after
                      else {"ShardIteratorType": "TRIM_HORIZON"})
        return await self._endpoint.call("GetShardIterator", orjson.dumps(params), _iterator)

    async def get_records(self, iterator: str, limit: int) -> dict:
        """One page: {"Records": [...], "NextShardIterator": ... (absent once a closed shard ends)}.

        Each record's Keys and NewImage are low-level items as botocore gives them (B as
        bytes, N as text); ApproximateCreationDateTime is epoch seconds; OldImage is
        dropped (a change is applied from its keys and new image), and so is a NewImage
        with a value that has no type (see the module docstring).
        """
        return await self._endpoint.call("GetRecords", orjson.dumps({"ShardIterator": iterator, "Limit": limit}),
                                         _page)


def _iterator(body: bytes) -> str:
    return orjson.loads(body)["ShardIterator"]


def _page(body: bytes) -> dict:
    page = orjson.loads(body)
    for record in page.setdefault("Records", []):
        decode_change(record["dynamodb"])
    return page


def decode_change(change: dict) -> None:
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


@contextlib.asynccontextmanager
async def open_streams_data(spec: SourceSpec, endpoint_url: str, max_connections: int = 64
                            ) -> AsyncIterator[StreamsData]:
    """`StreamsData` for the source's Streams endpoint (`endpoint_url`, as the SDK client resolved it)."""
    credentials = await signing_credentials(spec.credentials, spec.region)
    tls = spec.tls.ssl_context(aio_session(spec.credentials, spec.region))
    async with open_endpoint(endpoint_url, STREAMS_TARGET_PREFIX, spec.region, credentials, tls,
                             max_connections) as endpoint:
        yield StreamsData(endpoint)
