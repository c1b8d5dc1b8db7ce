"""The Streams data plane: GetShardIterator and GetRecords as signed JSON requests.

A follower polls every open shard about once a second, so these two calls skip the SDK
(about 1.1 ms of CPU a call through aiobotocore, mostly for empty pages): they are
`aws_json.JsonEndpoint` calls, the same client as the table data plane's (signing with
the source's credentials, TLS, proxies, CRC over the bytes received, botocore's error
parser, `CorruptResponse` for a damaged reply). Control-plane calls (DescribeStream,
ListStreams) stay on the SDK.

`get_records` is the one function that reads a page: a faster decoder can replace `_page`
without touching its callers.
"""
from __future__ import annotations

import contextlib
from typing import AsyncIterator

import orjson

from transforms.dynamo.aws_json import STREAMS_TARGET_PREFIX, JsonEndpoint, open_endpoint, signing_credentials
from transforms.dynamo.endpoints import SourceSpec, aio_session
from transforms.items.ddb_json import decode_item


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
        dropped (a change is applied from its keys and new image).
        """
        return await self._endpoint.call("GetRecords", orjson.dumps({"ShardIterator": iterator, "Limit": limit}),
                                         _page)


def _iterator(body: bytes) -> str:
    return orjson.loads(body)["ShardIterator"]


def _page(body: bytes) -> dict:
    page = orjson.loads(body)
    for record in page.setdefault("Records", []):
        change = record["dynamodb"]
        change["Keys"] = decode_item(change["Keys"])
        if "NewImage" in change:
            change["NewImage"] = decode_item(change["NewImage"])
        change.pop("OldImage", None)
    return page


@contextlib.asynccontextmanager
async def open_streams_data(spec: SourceSpec, endpoint_url: str, max_connections: int = 64
                            ) -> AsyncIterator[StreamsData]:
    """`StreamsData` for the source's Streams endpoint (`endpoint_url`, as the SDK client resolved it)."""
    credentials = await signing_credentials(spec.credentials)
    tls = spec.tls.ssl_context(aio_session(spec.credentials))
    async with open_endpoint(endpoint_url, STREAMS_TARGET_PREFIX, spec.region, credentials, tls,
                             max_connections) as endpoint:
        yield StreamsData(endpoint)
