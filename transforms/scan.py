"""Parallel segmented Scan of DynamoDB-API tables (the source, or the target) into Arrow pages.

Like Java's DynamoDBIO: one element per (table, segment), a Reshuffle so segments
spread over workers, then each segment is paged through with ExclusiveStartKey. The
next page is requested before the current one is handed downstream, so reading and
writing overlap. Each page's response body is read straight into an Arrow batch
(`items.wire_decode`) from the data plane (`dynamo.data_plane`: signed requests, no
SDK shapes); an Alternator cluster's pages are read from its nodes in turn.
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import orjson
import pyarrow as pa
from apache_beam.transforms.display import DisplayDataItem

from transforms import metrics
from transforms.dynamo.data_plane import open_cluster
from transforms.dynamo.endpoints import SourceSpec, TargetSpec
from transforms.dynamo.event_loop import LoopDoFn
from transforms.dynamo.rate_limit import TokenBucket
from transforms.dynamo.retry import call_with_retry
from transforms.items.ddb_json import encode_item
from transforms.items.wire_decode import decode_scan

__all__ = ["ScanSettings", "SegmentSpec", "Page", "ScanTables"]


@dataclass(frozen=True)
class ScanSettings:
    """How one worker scans; built once by the launcher (the read rate is this worker's share)."""

    page_size: int = 1000
    consistent_read: bool = False
    read_units_per_second: float | None = None
    max_attempts: int = 10


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
    """One Scan page on its way downstream: the items after `start_key` (None: the segment's
    beginning) up to `next_key` (None: the segment's end). The keys tie the page's
    checkpoint to its place in the segment, whichever worker writes it."""

    table: str
    segment: int
    index: int
    start_key: dict | None
    next_key: dict | None
    batch: pa.RecordBatch


class _ScanSegmentFn(LoopDoFn):
    def __init__(self, endpoint: SourceSpec | TargetSpec, settings: ScanSettings, counter_side: str):
        self._endpoint = endpoint
        self._settings = settings
        self._side = counter_side

    def open_clients(self):
        self._cluster = self.loop.enter(open_cluster(self._endpoint))
        rate = self._settings.read_units_per_second
        self._bucket = TokenBucket(rate) if rate else None

    async def _scan_page(self, spec: SegmentSpec, start_key: dict | None) -> tuple[pa.RecordBatch, dict, int]:
        """One Scan page (its batch, the rest of the response) and the number of retries it took
        (counted here, on the loop thread, because Beam counters only work on Beam's own thread)."""
        request = {"TableName": spec.table, "Segment": spec.segment, "TotalSegments": spec.total_segments,
                   "Limit": self._settings.page_size, "ConsistentRead": self._settings.consistent_read,
                   "ReturnConsumedCapacity": "TOTAL"}
        if start_key:
            request["ExclusiveStartKey"] = encode_item(start_key)
        body = orjson.dumps(request)
        retries = 0

        def count_retry(_exc: BaseException) -> None:
            nonlocal retries
            retries += 1

        # Decoded inside the retries: a page that does not decode is retried like a dropped reply.
        batch, rest = await call_with_retry(lambda: self._cluster.call("Scan", body, decode_scan),
                                            max_attempts=self._settings.max_attempts, on_retry=count_retry)
        if self._bucket is not None:
            await self._bucket.spend((rest.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0))
        return batch, rest, retries

    def process(self, spec: SegmentSpec):
        items_read = metrics.counter(spec.table, "items_read", self._side)
        bytes_read = metrics.counter(spec.table, "bytes_read", self._side)
        read_retries = metrics.counter(spec.table, "read_retries", self._side)
        index, start_key = spec.first_page, spec.start_key
        pending = self.loop.submit(self._scan_page(spec, start_key))
        while pending is not None:
            batch, rest, retries = pending.result()
            read_retries.inc(retries)
            next_key = rest.get("LastEvaluatedKey")
            pending = self.loop.submit(self._scan_page(spec, next_key)) if next_key else None
            items_read.inc(batch.num_rows)
            bytes_read.inc(batch.nbytes)
            yield Page(spec.table, spec.segment, index, start_key, next_key, batch)
            index, start_key = index + 1, next_key


class ScanTables(beam.PTransform):
    """Scan the given segments of tables at one DynamoDB-API endpoint; emits `Page`s.

    Args:
        endpoint: the source (`SourceSpec`) or the target (`TargetSpec`) to scan.
        segments: the segments to read, of one or many tables.
        settings: page size, consistency, read rate and retries.
        counter_side: a prefix for the counters (`source:` / `target:`), so two scans in
            one pipeline of tables with the same name keep their figures apart.
    """

    def __init__(self, endpoint: SourceSpec | TargetSpec, segments: list[SegmentSpec],
                 settings: ScanSettings = ScanSettings(), *, counter_side: str = ""):
        super().__init__()
        self._endpoint = endpoint
        self._segments = segments
        self._settings = settings
        self._side = counter_side

    def display_data(self):
        return {"endpoint": DisplayDataItem(self._endpoint.describe(), label="Endpoint"),
                "segments": DisplayDataItem(len(self._segments), label="Segments"),
                "page_size": DisplayDataItem(self._settings.page_size, label="Items per page")}

    def expand(self, pbegin):
        return (pbegin
                | "SegmentSpecs" >> beam.Create(self._segments)
                | "SpreadSegments" >> beam.Reshuffle()
                | "ScanSegment" >> beam.ParDo(_ScanSegmentFn(self._endpoint, self._settings, self._side)))
