"""The token bucket that caps items or read units per second."""
from __future__ import annotations

import asyncio
import time

from transforms.dynamo.rate_limit import TokenBucket, share_of


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
