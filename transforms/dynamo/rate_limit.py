"""An asyncio token bucket: caps items written (or read units spent) per second.

A job-wide cap is shared fairly by giving each worker's bucket an equal share of it
(see `share_of`); each bucket is local, so workers never talk to each other.
"""
from __future__ import annotations

import asyncio
import time


def share_of(total_per_second: float | None, workers: int) -> float | None:
    """One worker's fair share of a job-wide rate (None = unlimited)."""
    if total_per_second is None:
        return None
    return total_per_second / max(1, workers)


class TokenBucket:
    def __init__(self, rate_per_second: float, burst: float | None = None):
        self.rate = float(rate_per_second)
        self.capacity = float(burst if burst is not None else max(1.0, rate_per_second))
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, amount: float) -> None:
        """Wait until `amount` tokens are available, then take them.

        A request larger than the bucket is let through once the bucket is full and
        leaves a debt, so the long-run rate still holds.
        """
        async with self._lock:
            self._refill()
            needed = min(amount, self.capacity)
            if self._tokens < needed:
                await asyncio.sleep((needed - self._tokens) / self.rate)
                self._refill()
            self._tokens -= amount

    async def spend(self, amount: float) -> None:
        """Record tokens already used (e.g. read capacity reported after a Scan page)."""
        async with self._lock:
            self._refill()
            self._tokens -= amount
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
