"""Point reads of large items against moto, which answers BatchGetItem as DynamoDB documents:
at most 16 MiB of items an answer, the other keys in `UnprocessedKeys` ("A single operation
can retrieve up to 16 MB of data... returns a partial result if the response size limit is
exceeded", https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html;
moto/dynamodb/responses.py `batch_get_item`). Straight to moto, not through the Alternator
front, which answers whole as Alternator does."""
from __future__ import annotations

import asyncio

import pytest

from testbed import seed
from tests.support.cli_runs import unique
from transforms.dynamo.endpoints import Credentials, TargetSpec, node_client
from transforms.dynamo.point_reads import get_items

pytestmark = pytest.mark.integration


def test_keys_left_by_a_partial_answer_are_asked_again_until_none_is_left(alternator_clean):
    moto = alternator_clean.moto.endpoint
    table = unique("reads")
    seed.create_table(moto, table, **seed.keyed_by("pk"))
    client = seed.client_for(moto)
    value = "v" * 350_000  # 60 items: 21 MB, more than one answer holds
    for first in range(0, 60, 10):
        client.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}, "v": {"S": value}}}} for i in range(first, first + 10)]})
    keys = [{"pk": {"S": f"k{i}"}} for i in range(60)] + [{"pk": {"S": "absent"}}]
    assert client.batch_get_item(RequestItems={table: {"Keys": keys}})["UnprocessedKeys"]  # a partial answer

    async def read():
        spec = TargetSpec(endpoint=moto, credentials=Credentials("test", "test"))
        async with node_client(spec, moto) as dynamodb:
            # One attempt: answers that return a part are progress, not failed attempts.
            return await get_items(dynamodb, table, keys, ("pk",), max_attempts=1)

    found = asyncio.run(read())

    assert sorted(found) == sorted(((("S", f"k{i}"),) for i in range(60)))
    assert all(item["v"]["S"] == value for item in found.values())
