"""Point reads of many keys with BatchGetItem (100 keys a request, UnprocessedKeys retried)."""
from __future__ import annotations

import asyncio
from typing import Sequence

from transforms.items.keys import key_of
from transforms.dynamo.retry import UnprocessedItemsLeft, call_with_retry

MAX_KEYS_PER_REQUEST = 100


async def get_items(client, table: str, keys: Sequence[dict], key_names: Sequence[str], *,
                    consistent: bool = True, max_attempts: int = 10) -> dict[tuple, dict]:
    """The items found for `keys`, by `arrow_codec.key_of(item, key_names)`; absent keys are missing."""
    if not keys:
        return {}
    found: dict[tuple, dict] = {}

    async def read(chunk: list[dict]) -> None:
        pending = {table: {"Keys": chunk, "ConsistentRead": consistent}}

        async def attempt() -> None:
            nonlocal pending
            response = await client.batch_get_item(RequestItems=pending)
            for item in response.get("Responses", {}).get(table, []):
                found[key_of(item, key_names)] = item
            left = response.get("UnprocessedKeys") or {}
            if left.get(table, {}).get("Keys"):
                pending = left
                raise UnprocessedItemsLeft(len(left[table]["Keys"]))

        await call_with_retry(attempt, max_attempts=max_attempts)

    chunks = [list(keys[i:i + MAX_KEYS_PER_REQUEST]) for i in range(0, len(keys), MAX_KEYS_PER_REQUEST)]
    await asyncio.gather(*(read(chunk) for chunk in chunks))
    return found
