"""What the launcher hands each worker: how it scans and how it writes, and the services'
limits they keep to. Plain values, no Beam, SDK or Arrow, so the launcher reads its config
without loading them; `transforms.scan` and `transforms.dynamo.writer` use them.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_ITEM_BYTES", "MAX_REQUEST_BYTES", "PAGES_IN_FLIGHT", "ScanSettings", "WriterSettings"]

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item size limit, 400 KB of 1,024 bytes (see `items.item_size`)
MAX_REQUEST_BYTES = 16_000_000  # a BatchWriteItem body, under both services' 16 MB (see `dynamo.request_size`)

#: Scan pages a worker keeps in flight by default: at 250 ms a page, 64 pages a second,
#: more than a worker's CPU writes (~15-20 pages of 1,000 items a second).
PAGES_IN_FLIGHT = 16


@dataclass(frozen=True)
class ScanSettings:
    """How one worker scans; built once by the launcher (the read rate is this worker's share)."""

    page_size: int = 1000
    consistent_read: bool = False
    read_units_per_second: float | None = None
    max_attempts: int = 10
    pages_in_flight: int = PAGES_IN_FLIGHT  # per worker: segments scanned side by side
    workers: int = 1  # the job's workers, each given a group of segments where there are enough


@dataclass(frozen=True)
class WriterSettings:
    """How one worker writes; built once by the launcher (the rate is this worker's share)."""

    batch_size: int = 100
    concurrency: int = 16
    max_attempts: int = 10
    items_per_second: float | None = None
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_item_bytes: int | None = None  # a DynamoDB target's item size limit (None: Alternator, none)
