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
    """How one worker scans; built once by the launcher from the job-wide `scan:` section
    (`pipeline.checks.config.ScanConfig`, via `RunConfig.scan_settings`).

    Two types, not one: the section is what the user wrote for the whole job (`segments`,
    None for "auto"), this is what one worker does, with every value settled. A field of
    both has one name and one meaning, except that here the read rate is this worker's
    share of the job's. Its defaults are the section's defaults."""

    page_size: int = 1000
    consistent_read: bool = False
    max_read_units_per_second: float | None = None  # this worker's share of the job's
    max_attempts: int = 10
    pages_in_flight: int = PAGES_IN_FLIGHT  # per worker: segments scanned side by side
    workers: int = 1  # the job's workers, each given a group of segments where there are enough


@dataclass(frozen=True)
class WriterSettings:
    """How one worker writes; built once by the launcher from the job-wide `write:` section
    (`pipeline.checks.config.WriteConfig`, via `RunConfig.writer_settings`).

    Two types, not one: the section is what the user wrote for the whole job (None for "the
    target's limit"), this is what one worker does, with every value settled and the target's
    limits added. A field of both has one name and one meaning, except that here the write
    rate is this worker's share of the job's. Its defaults are the section's defaults."""

    max_items_per_batch: int = 100
    concurrency: int = 16
    max_attempts: int = 10
    max_items_per_second: float | None = None  # this worker's share of the job's
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_item_bytes: int | None = None  # a DynamoDB target's item size limit (None: Alternator, none)
