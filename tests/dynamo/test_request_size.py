"""BatchWriteItem requests cut by their bytes as well as by count, and split when refused as
too large: the cut on its own, then the writer against the Alternator front, which refuses
a body over 16 MiB with 413 as Alternator does (its docstring cites scylladb's source)."""
from __future__ import annotations

import asyncio
import os

import pytest
from botocore.exceptions import ClientError

from testbed import seed
from testbed.alternator_front import MAX_REQUEST_BYTES as ALTERNATOR_LIMIT
from tests.support.cli_runs import unique
from transforms.dynamo.endpoints import Credentials, TargetSpec
from transforms.dynamo.request_size import MAX_REQUEST_BYTES, cut_by_size, too_large
from transforms.dynamo.write_requests import put
from transforms.dynamo.writer import WriterSettings, open_writer
from transforms.items.wire_encode import batch_write_body, request_row

KEY = seed.keyed_by("pk")


def test_batches_hold_at_most_the_count_and_the_bytes_in_order():
    rows = [b"x" * size for size in (40, 10, 30, 30, 5, 70, 1, 1, 1)]
    empty = len(batch_write_body("t", []))

    batches = cut_by_size("t", rows, max_items=3, max_bytes=empty + 72)

    assert [row for batch in batches for row in batch] == rows
    assert [len(batch) for batch in batches] == [2, 3, 2, 2]  # 40,10 | 30,30,5 (count) | 70,1 | 1,1
    assert all(len(batch_write_body("t", batch)) <= empty + 72 for batch in batches)
    assert len(batch_write_body("t", batches[2])) == empty + 72  # exactly the limit is taken
    # A row too large alone still goes, alone (the server's refusal becomes its dead letter).
    assert cut_by_size("t", [b"a", b"y" * 500, b"b"], 100, empty + 10) == [[b"a"], [b"y" * 500], [b"b"]]
    assert cut_by_size("t", [], 100, MAX_REQUEST_BYTES) == []


def test_the_limit_is_under_both_services_caps():
    assert MAX_REQUEST_BYTES <= min(ALTERNATOR_LIMIT, 16 * 10**6)


def test_a_413_is_too_large_whatever_its_body_says():
    def refusal(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "BatchWriteItem")

    assert too_large(refusal(413, "PayloadTooLarge")) and too_large(refusal(413, "413"))
    assert not too_large(refusal(400, "ValidationException")) and not too_large(asyncio.TimeoutError())


def _write(alternator, table: str, items: list[dict], settings: WriterSettings = WriterSettings()):
    async def run():
        target = TargetSpec(endpoint=alternator.url, credentials=Credentials("test", "test"))
        async with open_writer(target, settings) as writer:
            return await writer.write(table, [put(item) for item in items], "pk")
    return asyncio.run(run())


def _items(count: int, binary: int) -> list[dict]:
    return [{"pk": {"S": f"k{i:03}"}, "blob": {"B": os.urandom(binary)}} for i in range(count)]


@pytest.mark.integration
def test_100_large_items_go_in_requests_under_alternators_16_mib(alternator_clean):
    """The issue's case: 100 items of 126 KB of binary (168 KB once base64) make one 17 MB
    request by count, which Alternator refuses whole; cut by bytes, none is refused."""
    table = unique("large")
    seed.create_table(alternator_clean.url, table, **KEY)
    items = _items(100, 126_000)
    assert len(batch_write_body(table, [request_row(put(item)) for item in items])) > ALTERNATOR_LIMIT

    outcome = _write(alternator_clean, table, items)

    assert outcome.failures == [] and outcome.retries == 0
    stats = alternator_clean.front.stats()
    assert stats["requests_too_large"] == 0 and stats["requests_by_operation"]["BatchWriteItem"] == 2
    assert len(seed.scan_all(alternator_clean.url, table)) == 100


@pytest.mark.integration
def test_a_batch_refused_as_too_large_is_split_until_it_fits(alternator_clean):
    """A limit lower than the writer's (a proxy in between, say): the 413 splits the batch;
    only a request too large alone is dead-lettered, with the server's reason."""
    table = unique("split")
    seed.create_table(alternator_clean.url, table, **KEY)
    alternator_clean.front.limit_request_bytes(1 << 20)
    items = _items(20, 60_000)  # 20 x 80 KB of base64: 1.6 MB in one request by count
    oversized = {"pk": {"S": "alone"}, "blob": {"B": os.urandom(900_000)}}

    outcome = _write(alternator_clean, table, items + [oversized])

    assert [(f.request["PutRequest"]["Item"]["pk"], f.error.split(":")[0]) for f in outcome.failures] == [
        ({"S": "alone"}, "ClientError")]
    assert "PayloadTooLarge" in outcome.failures[0].error
    assert alternator_clean.front.stats()["requests_too_large"] >= 2
    assert sorted(item["pk"]["S"] for item in seed.scan_all(alternator_clean.url, table)) == \
        [item["pk"]["S"] for item in items]
