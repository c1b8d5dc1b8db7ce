"""Which request failures are worth retrying, and the retry policy for them.

Throttling (DynamoDB's and Alternator's), server errors, the other codes botocore
retries (`TRANSIENT_CODES`), timeouts, dropped connections and damaged replies
(`aws_json.CorruptResponse`) are transient; anything else (validation errors, missing
tables, access denied) is a real problem and must surface at once. Backoff is
exponential with full jitter so many workers that were throttled together do not come
back together.
"""
from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable, TypeVar

import aiohttp
from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from transforms.errors import service_message

T = TypeVar("T")

THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",  # DynamoDB Streams: too many GetRecords on a shard
})
SERVER_ERROR_CODES = frozenset({"InternalServerError", "InternalFailure", "ServiceUnavailable"})
# Transient whatever their status, as botocore classifies them: its standard mode's
# TransientRetryableChecker (botocore/retries/standard.py), and DynamoDB's own policies in
# botocore/data/_retry.json: a write that met a write from another Region of a multi-Region
# table (409; ReplicatedWriteConflictException is modeled retryable) and a transaction
# still in progress.
TRANSIENT_CODES = frozenset({
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "ReplicatedWriteConflictException",
    "TransactionInProgressException",
})
_RETRYABLE_CODES = THROTTLING_CODES | SERVER_ERROR_CODES | TRANSIENT_CODES
# Refusals that no request to the table can get past until someone acts on the credentials,
# the permissions or the table: DynamoDB's common errors marked "OK to retry? No" that are not
# about one request's content (developer guide, "Error handling with DynamoDB",
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html).
# Alternator answers an unknown key with UnrecognizedClientException, a wrong signature with
# InvalidSignatureException, a missing grant with AccessDeniedException (scylladb/scylladb
# alternator/auth.cc and test/alternator/test_authorization.py).
REFUSAL_CODES = frozenset({
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ResourceNotFoundException",
})


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def error_message(exc: BaseException) -> str:
    """The service's message of a ClientError, fit for one line (`errors.service_message`)."""
    if isinstance(exc, ClientError):
        return service_message(exc.response.get("Error", {}).get("Message", ""))
    return str(exc)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(exc) in _RETRYABLE_CODES or status >= 500
    return isinstance(exc, (UnprocessedItemsLeft, BotoConnectionError, HTTPClientError, aiohttp.ClientError,
                            asyncio.TimeoutError, ConnectionError))


async def call_with_retry(call: Callable[[], Awaitable[T]], *, max_attempts: int,
                          on_retry: Callable[[BaseException], None] | None = None,
                          initial_wait: float = 0.05, max_wait: float = 10.0) -> T:
    """Await `call()` until it succeeds, a non-retryable error occurs, or attempts run out.

    The last error is re-raised when attempts run out, so the caller decides what a
    final failure means (for writes: the dead-letter file). The first try is made
    directly and tenacity takes over after it fails: nearly every call succeeds, and
    setting up tenacity's loop for each would cost CPU on every write. The waits are the
    same either way: after try k, a random time up to `initial_wait` * 2^(k-1), at most
    `max_wait`.
    """
    try:
        return await call()
    except Exception as exc:  # noqa: BLE001 - classified as the retry policy says
        if max_attempts <= 1 or not is_retryable(exc):
            raise
        if on_retry is not None:
            on_retry(exc)
    await asyncio.sleep(random.uniform(0, min(initial_wait, max_wait)))

    def before_sleep(state) -> None:
        if on_retry is not None:
            on_retry(state.outcome.exception())

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts - 1),
        wait=wait_random_exponential(multiplier=2 * initial_wait, max=max_wait),
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def invoke() -> T:  # tenacity awaits only coroutine functions, not lambdas returning coroutines
        return await call()

    return await retrying(invoke)


class UnprocessedItemsLeft(Exception):
    """DynamoDB accepted only part of a BatchWriteItem; the rest is retried like throttling."""

    def __init__(self, count: int):
        super().__init__(f"{count} items left unprocessed by BatchWriteItem")
        self.count = count
