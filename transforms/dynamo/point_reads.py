"""Point reads of many keys with BatchGetItem: 100 keys a request, unprocessed keys asked again.

DynamoDB answers at most 16 MB of items a BatchGetItem and hands the rest back as
`UnprocessedKeys` (100 items of 300 KB: 52 returned; https://docs.aws.amazon.com/
amazondynamodb/latest/APIReference/API_BatchGetItem.html), as it does for throttled
reads. An answer that processed some keys made progress: its unprocessed keys are asked
again at once, in groups no larger than what that answer processed, until none is left,
and none of that counts as a failed attempt (large items would otherwise use up the
attempts on answers that each return a part). Only an answer that processed nothing is
retried with backoff, as throttling is, `max_attempts` times. (Alternator has no such cap
and leaves keys unprocessed only when their reads fail: alternator/executor_read.cc,
`batch_get_item`.)
"""
from __future__ import annotations

import asyncio
from typing import Sequence

from transforms.dynamo.retry import UnprocessedItemsLeft, call_with_retry
from transforms.items.keys import key_of

MAX_KEYS_PER_REQUEST = 100


def _groups(keys: Sequence[dict], size: int) -> list[list[dict]]:
    return [list(keys[i:i + size]) for i in range(0, len(keys), size)]


async def get_items(client, table: str, keys: Sequence[dict], key_names: Sequence[str], *,
                    consistent: bool = True, max_attempts: int = 10) -> dict[tuple, dict]:
    """The items found for `keys`, by `arrow_codec.key_of(item, key_names)`; absent keys are missing."""
    found: dict[tuple, dict] = {}

    async def read(group: list[dict]) -> None:
        async def attempt() -> tuple[int, list[dict]]:
            response = await client.batch_get_item(RequestItems={table: {"Keys": group,
                                                                         "ConsistentRead": consistent}})
            for item in response.get("Responses", {}).get(table, []):
                found[key_of(item, key_names)] = item
            left = ((response.get("UnprocessedKeys") or {}).get(table) or {}).get("Keys") or []
            if len(left) == len(group):  # nothing processed: throttled, retried with backoff
                raise UnprocessedItemsLeft(len(left))
            return len(group) - len(left), left

        processed, left = await call_with_retry(attempt, max_attempts=max_attempts)
        if left:  # a part was answered: the rest in groups of what fitted
            await asyncio.gather(*(read(smaller) for smaller in _groups(left, processed)))

    await asyncio.gather(*(read(group) for group in _groups(keys, MAX_KEYS_PER_REQUEST)))
    return found
