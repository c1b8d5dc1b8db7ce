"""Unit tests of the small pieces: checkpoints, table schema, writer helpers, retry, rate."""
from __future__ import annotations

import asyncio
import re
import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pipeline.tables import auto_segments
from transforms import checkpoints, table_schema
from transforms.endpoints import Credentials
from transforms.rate_limit import TokenBucket, share_of
from transforms.retry import UnprocessedItemsLeft, call_with_retry, is_retryable
from transforms.batch_writes import collapse_by_key, delete, put


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "BatchWriteItem")


# --- checkpoints --------------------------------------------------------------------------

def test_resume_takes_the_gap_free_prefix_and_drops_markers_after_a_gap(tmp_path):
    root = str(tmp_path)
    checkpoints.start_fresh(root, "t", 3)
    key = {"pk": {"S": "a"}, "raw": {"B": b"\x00\x01"}}
    # segment 0: pages 0, 1 done, 2 missing (in flight when the run died), 3 done
    for page in (0, 1, 3):
        checkpoints.record_page(root, "t", 0, page, 10, 100, {"pk": {"S": f"p{page}"}, "raw": {"B": b"\x00"}})
    checkpoints.record_page(root, "t", 0, 1, 10, 100, key)
    # segment 1: finished in two pages; segment 2: nothing yet
    checkpoints.record_page(root, "t", 1, 0, 10, 100, key)
    checkpoints.record_page(root, "t", 1, 1, 5, 50, None)

    points = checkpoints.resume_points(root, "t", 3)

    assert points[0] == checkpoints.SegmentResume(0, 2, key, False)
    assert points[1].done and points[1].pages_done == 2
    assert points[2] == checkpoints.SegmentResume(2, 0, None, False)
    remaining = {(m.segment, m.page) for m in checkpoints.list_markers(root, "t")}
    assert remaining == {(0, 0), (0, 1), (1, 0), (1, 1)}  # page 3 of segment 0 will be redone
    assert checkpoints.recorded_segments(root, "t") == 3


def test_start_fresh_forgets_an_earlier_run(tmp_path):
    root = str(tmp_path)
    checkpoints.start_fresh(root, "t", 2)
    checkpoints.record_page(root, "t", 0, 0, 1, 1, None)
    checkpoints.start_fresh(root, "t", 5)
    assert checkpoints.list_markers(root, "t") == []
    assert checkpoints.recorded_segments(root, "t") == 5
    assert checkpoints.recorded_segments(root, "other") is None


# --- table schema -------------------------------------------------------------------------

DESCRIPTION = {
    "TableName": "src",
    "KeySchema": [{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "N"},
                             {"AttributeName": "g", "AttributeType": "B"}],
    "GlobalSecondaryIndexes": [{"IndexName": "gi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["a", "b"]},
                                "ProvisionedThroughput": {"ReadCapacityUnits": 5}, "IndexStatus": "ACTIVE"}],
    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
}


def test_create_request_copies_keys_and_indexes_with_renames_and_on_demand_billing():
    request = table_schema.create_table_request(DESCRIPTION, "dst", {"sk": "sort", "a": "alpha"})
    assert request["TableName"] == "dst" and request["BillingMode"] == "PAY_PER_REQUEST"
    assert {"AttributeName": "sort", "KeyType": "RANGE"} in request["KeySchema"]
    assert {"AttributeName": "sort", "AttributeType": "N"} in request["AttributeDefinitions"]
    assert request["GlobalSecondaryIndexes"] == [{
        "IndexName": "gi", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["alpha", "b"]}}]
    assert "ProvisionedThroughput" not in request and "LocalSecondaryIndexes" not in request


def test_key_schema_puts_the_partition_key_first_and_shows_roles():
    key = table_schema.key_schema(DESCRIPTION)
    assert key.names == ("pk", "sk")
    assert str(key) == "pk S (HASH), sk N (RANGE)"
    assert table_schema.key_schema(DESCRIPTION, {"pk": "id"}).names == ("id", "sk")


def test_portable_tags_drop_reserved_prefixes_and_keep_at_most_50():
    tags = [{"Key": "system:write_isolation", "Value": "x"}, {"Key": "aws:cloudformation:stack", "Value": "y"}]
    tags += [{"Key": f"k{i}", "Value": str(i)} for i in range(52)]
    kept, dropped = table_schema.portable_tags(tags)
    assert len(kept) == 50 and kept[0]["Key"] == "k0"
    assert dropped == ["system:write_isolation", "aws:cloudformation:stack", "k50", "k51"]


# --- writer helpers -----------------------------------------------------------------------

def test_collapse_keeps_the_last_request_per_key():
    requests = [put({"pk": {"S": "a"}, "v": {"N": "1"}}), put({"pk": {"S": "b"}, "v": {"N": "2"}}),
                put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests, ("pk",)) == [put({"pk": {"S": "a"}, "v": {"N": "3"}}), delete({"pk": {"S": "b"}})]
    assert collapse_by_key(requests[:2], ("pk",)) == requests[:2]
    # 1.0 and 1 are the same number key
    assert len(collapse_by_key([delete({"pk": {"N": "1.0"}}), delete({"pk": {"N": "1"}})], ("pk",))) == 1


def test_auto_segments_scale_with_workers_and_size_but_skip_empty_segments():
    assert auto_segments(item_count=5, size_bytes=500, page_size=1000, workers=2) == 1
    assert auto_segments(item_count=50_000, size_bytes=20 << 20, page_size=1000, workers=2) == 8
    assert auto_segments(item_count=10**9, size_bytes=1 << 40, page_size=1000, workers=10) == 16384


# --- retry --------------------------------------------------------------------------------

@pytest.mark.parametrize("exc, retryable", [
    (_client_error("ProvisionedThroughputExceededException", 400), True),
    (_client_error("ThrottlingException", 400), True),
    (_client_error("RequestLimitExceeded", 400), True),
    (_client_error("InternalServerError", 500), True),
    (_client_error("SomethingNew", 503), True),
    (UnprocessedItemsLeft(3), True),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    (asyncio.TimeoutError(), True),
    (_client_error("ValidationException", 400), False),
    (_client_error("ResourceNotFoundException", 400), False),
    (ValueError("bug"), False),
])
def test_retryable_errors(exc, retryable):
    assert is_retryable(exc) is retryable


def test_call_with_retry_retries_transient_errors_then_gives_up_with_the_last_error():
    calls, retried = [], []

    async def flaky():
        calls.append(1)
        raise _client_error("RequestLimitExceeded", 400)

    with pytest.raises(ClientError):
        asyncio.run(call_with_retry(flaky, max_attempts=4, on_retry=retried.append, initial_wait=0.001))
    assert len(calls) == 4 and len(retried) == 3


def test_call_with_retry_does_not_retry_a_validation_error():
    calls = []

    async def invalid():
        calls.append(1)
        raise _client_error("ValidationException", 400)

    with pytest.raises(ClientError):
        asyncio.run(call_with_retry(invalid, max_attempts=5, initial_wait=0.001))
    assert len(calls) == 1


# --- rate limit and secrets ---------------------------------------------------------------

def test_token_bucket_holds_the_rate_at_least_this_slow():
    """A lower bound only: a loaded machine can make it slower, never faster."""
    async def take():
        bucket = TokenBucket(2000)
        for _ in range(30):
            await bucket.acquire(100)   # 3000 items at 2000/s: >= 0.5 s after the first 2000 burst

    started = time.monotonic()
    asyncio.run(take())
    assert time.monotonic() - started >= 0.45
    assert share_of(1000, 4) == 250 and share_of(None, 4) is None


def test_credentials_never_show_their_secrets():
    creds = Credentials("AKIDSECRETID", "very-secret-value", "session-secret")
    assert "very-secret-value" not in repr(creds) and "AKIDSECRETID" not in repr(creds)
    assert "session-secret" not in str(creds)


# --- progress -----------------------------------------------------------------------------

def test_progress_is_read_from_the_checkpoint_markers(tmp_path):
    import io

    from pipeline.progress import ProgressWatcher

    root = str(tmp_path)
    checkpoints.start_fresh(root, "t", 2)
    checkpoints.record_page(root, "t", 0, 0, 700, 7000, None)  # from an earlier run: not this run's speed
    out = io.StringIO()
    watcher = ProgressWatcher(root, {"t": None}, interval=0.05, stream=out)
    watcher.start()
    checkpoints.record_page(root, "t", 1, 0, 300, 3000, {"pk": {"S": "x"}})
    checkpoints.record_page(root, "t", 1, 1, 200, 2000, None)
    time.sleep(0.2)
    watcher.stop()

    lines = out.getvalue().splitlines()
    assert lines[-2].endswith("] done")
    table_line = lines[-1]
    assert table_line.startswith("  t: 1,200 items, ") and table_line.endswith("items/s, segments 2/2")
    rate = re.search(r"items, ([\d,]+) items/s", table_line).group(1)
    assert int(rate.replace(",", "")) > 0
    assert watcher.finished_after("t", default=-1) > 0
