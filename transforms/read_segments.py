"""Parallel segmented Scan of DynamoDB tables into Arrow pages.

Like Java's DynamoDBIO: one element per (table, segment), a Reshuffle so segments
spread over workers, then each segment is paged through with ExclusiveStartKey. The
next page is requested before the current one is handed downstream, so reading and
writing overlap.

Usage::

    pages = p | ScanSegments(source_spec, [SegmentSpec("Music", 0, 4), ...], page_size=1000)
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from transforms.arrow_codec import items_to_batch
from transforms.async_runtime import LoopThread
from transforms.endpoints import SourceSpec, TargetSpec, open_client
from transforms.rate_limit import TokenBucket
from transforms.retry import call_with_retry

METRICS_NAMESPACE = "alternator-migrate"


@dataclass(frozen=True)
class SegmentSpec:
    """One unit of parallel scan; `start_key`/`first_page` continue a resumed segment."""

    table: str
    segment: int
    total_segments: int
    start_key: dict | None = None
    first_page: int = 0


@dataclass(frozen=True)
class Page:
    """One Scan page on its way to the writer; `next_key` None marks the segment's last page."""

    table: str
    segment: int
    index: int
    next_key: dict | None
    batch: pa.RecordBatch


class _ScanSegmentFn(beam.DoFn):
    def __init__(self, source: SourceSpec | TargetSpec, page_size: int, consistent_read: bool,
                 read_units_per_second: float | None, max_attempts: int, counter_prefix: str):
        self._source = source
        self._counter_prefix = counter_prefix
        self._page_size = page_size
        self._consistent_read = consistent_read
        self._read_units_per_second = read_units_per_second
        self._max_attempts = max_attempts

    def setup(self):
        self._loop = LoopThread("scan-segments")
        self._client = self._loop.enter(open_client(self._source))
        self._bucket = (TokenBucket(self._read_units_per_second) if self._read_units_per_second else None)

    def teardown(self):
        self._loop.close()

    async def _scan_page(self, spec: SegmentSpec, start_key: dict | None) -> tuple[dict, int]:
        """One Scan page and the number of retries it took (counted here, on the loop thread,
        because Beam counters only work on Beam's own thread)."""
        request = {"TableName": spec.table, "Segment": spec.segment, "TotalSegments": spec.total_segments,
                   "Limit": self._page_size, "ConsistentRead": self._consistent_read,
                   "ReturnConsumedCapacity": "TOTAL"}
        if start_key:
            request["ExclusiveStartKey"] = start_key
        retries = 0

        def count_retry(_exc: BaseException) -> None:
            nonlocal retries
            retries += 1

        response = await call_with_retry(lambda: self._client.scan(**request), max_attempts=self._max_attempts,
                                         on_retry=count_retry)
        if self._bucket is not None:
            await self._bucket.spend(response.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0))
        return response, retries

    def process(self, spec: SegmentSpec):
        counter = lambda name: Metrics.counter(  # noqa: E731
            METRICS_NAMESPACE, f"{self._counter_prefix}{spec.table}.{name}")
        items_read, bytes_read, read_retries = counter("items_read"), counter("bytes_read"), counter("read_retries")
        index = spec.first_page
        pending = self._loop.submit(self._scan_page(spec, spec.start_key))
        while pending is not None:
            response, retries = pending.result()
            read_retries.inc(retries)
            next_key = response.get("LastEvaluatedKey")
            pending = self._loop.submit(self._scan_page(spec, next_key)) if next_key else None
            # DynamoDB already validated these items; skip the codec's nested-value checks.
            batch = items_to_batch(response.get("Items", []), validate_nested=False)
            items_read.inc(batch.num_rows)
            bytes_read.inc(batch.nbytes)
            yield Page(spec.table, spec.segment, index, next_key, batch)
            index += 1


class ScanSegments(beam.PTransform):
    """Scan every given segment of a table on either side; emits `Page`s.

    `counter_prefix` keeps the counters of two scans in one pipeline apart (validation
    scans a source and a target table that may share a name).
    """

    def __init__(self, source: SourceSpec | TargetSpec, segments: list[SegmentSpec], *, page_size: int = 1000,
                 consistent_read: bool = False, read_units_per_second: float | None = None,
                 max_attempts: int = 10, counter_prefix: str = ""):
        super().__init__()
        self._segments = segments
        self._fn = _ScanSegmentFn(source, page_size, consistent_read, read_units_per_second, max_attempts,
                                  counter_prefix)

    def expand(self, pbegin):
        return (pbegin
                | "SegmentSpecs" >> beam.Create(self._segments)
                | "SpreadSegments" >> beam.Reshuffle()
                | "ScanSegment" >> beam.ParDo(self._fn))
