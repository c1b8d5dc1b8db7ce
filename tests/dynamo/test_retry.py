"""Which failures are retried, and how often."""
from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from transforms.dynamo.aws_json import CorruptResponse
from transforms.dynamo.retry import UnprocessedItemsLeft, call_with_retry, is_retryable


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "BatchWriteItem")


@pytest.mark.parametrize("exc, retryable", [
    (_client_error("ProvisionedThroughputExceededException", 400), True),
    (_client_error("ThrottlingException", 400), True),
    (_client_error("RequestLimitExceeded", 400), True),
    (_client_error("InternalServerError", 500), True),
    (_client_error("SomethingNew", 503), True),
    (_client_error("RequestTimeout", 400), True),  # botocore's transient codes, whatever the status
    (_client_error("ReplicatedWriteConflictException", 409), True),
    (_client_error("TransactionInProgressException", 400), True),
    (CorruptResponse("Scan: the reply does not match its x-amz-crc32"), True),
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


@pytest.mark.parametrize("code, max_attempts", [
    ("ValidationException", 5),  # not retryable
    ("ThrottlingException", 1),  # retryable, but one attempt was allowed
])
def test_call_with_retry_tries_once(code, max_attempts):
    calls = []

    async def failing():
        calls.append(1)
        raise _client_error(code, 400)

    with pytest.raises(ClientError):
        asyncio.run(call_with_retry(failing, max_attempts=max_attempts, initial_wait=0.001))
    assert len(calls) == 1


def test_call_with_retry_returns_what_a_later_try_gives():
    """The first try is made outside tenacity; a retryable failure there hands over to it."""
    calls, retried = [], []

    async def fails_twice():
        calls.append(1)
        if len(calls) < 3:
            raise UnprocessedItemsLeft(2)
        return "written"

    assert asyncio.run(call_with_retry(fails_twice, max_attempts=3, on_retry=retried.append,
                                       initial_wait=0.001)) == "written"
    assert len(calls) == 3 and [type(exc) for exc in retried] == [UnprocessedItemsLeft, UnprocessedItemsLeft]

