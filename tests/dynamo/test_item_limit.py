"""A DynamoDB target's 400 KB item limit in the writer: an item over it fails at once, unsent.

DynamoDB Local is the DynamoDB target here: it refuses an item over the limit with its own
ValidationException ("Item size has exceeded the maximum allowed size"), as DynamoDB does.
Had the writer sent the item, its dead letter would carry that message, after a split of
the batch; it carries the writer's own reason instead, with no retry.
"""
from __future__ import annotations

import asyncio

import pytest

from testbed import seed
from tests.support.cli_runs import unique
from transforms.dynamo.endpoints import Credentials, TargetSpec
from transforms.dynamo.write_requests import put
from transforms.dynamo.writer import WriterSettings, open_writer, refuse_oversized
from transforms.items.item_size import MAX_ITEM_BYTES, item_size
from transforms.items.wire_encode import request_row

BIG = {"pk": {"S": "big"}, "blob": {"B": b"\x07" * MAX_ITEM_BYTES}}  # 409,609 bytes as DynamoDB counts


def _small(n: int) -> dict:
    return {"pk": {"S": f"k{n}"}, "v": {"N": str(n)}}


def test_only_puts_over_the_limit_are_refused_and_only_for_a_dynamodb_target():
    rows = [request_row(put(_small(1))), request_row(put(BIG)), request_row(put(_small(2)))]

    sent, refused = refuse_oversized("T", rows, MAX_ITEM_BYTES)
    unlimited = refuse_oversized("T", rows, None)

    assert sent == [rows[0], rows[2]]
    assert [f.request for f in refused] == [put(BIG)] and refused[0].permanent
    assert f"{item_size(BIG):,} bytes" in refused[0].error and "400 KB" in refused[0].error
    assert unlimited == (rows, [])  # Alternator: no limit


@pytest.mark.integration
def test_an_item_over_400_kb_is_dead_lettered_without_a_request(dynamodb_local):
    table = unique("item_limit")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("pk"))
    # DynamoDB Local wants signed requests; a non-AWS endpoint is signed only with target.credentials
    target = TargetSpec(endpoint=dynamodb_local.endpoint, credentials=Credentials("test", "test"))
    requests = [put(_small(n)) for n in range(30)] + [put(BIG)]

    async def write():
        settings = WriterSettings(max_items_per_batch=25, max_attempts=3, max_item_bytes=MAX_ITEM_BYTES)
        async with open_writer(target, settings) as writer:
            return await writer.write(table, requests, "pk")

    outcome = asyncio.run(write())

    assert [f.request for f in outcome.failures] == [put(BIG)]
    assert outcome.failures[0].error.startswith("ItemTooLarge: ")  # ours: DynamoDB Local never saw it
    assert outcome.retries == 0
    assert seed.table_items(dynamodb_local.endpoint, table) == sorted(seed.canonical(_small(n)) for n in range(30))
