"""Parallel segmented Scan of DynamoDB-API tables (the source, or the target) into Arrow pages.

Like Java's DynamoDBIO, segments are spread over workers by a Reshuffle and each is paged
through with ExclusiveStartKey; but an element is a group of segments, paged through side
by side. A source far away (another region: 100 ms and more a page) makes a copy wait on
its Scan pages, and one segment can only have one page in flight (the next page's key is
in the answer), so a worker hides the latency only by scanning many segments at once:
one `ScanSegments` call keeps one page of each segment of its group in flight on its event
loop (`pages_in_flight` segments a group at most), hands pages downstream as they arrive,
each segment's in its order, and asks for a segment's next page before handing on the one
that came. Each page's response body is read straight into an Arrow batch
(`items.wire_decode`) from the data plane (`dynamo.data_plane`: signed requests, no
SDK shapes); an Alternator cluster's pages are read from its nodes in turn.
"""
from __future__ import annotations

import asyncio
import math
import queue
from dataclasses import dataclass
from typing import Sequence, TypeVar

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
from transforms.metrics import Figure
from transforms.page import Page
from transforms.settings import ScanSettings

__all__ = ["ScanSettings", "SegmentSpec", "ScanTables", "segment_groups"]

T = TypeVar("T")



@dataclass(frozen=True)
class SegmentSpec:
    """One unit of parallel scan; `start_key`/`first_page` continue a resumed segment."""

    table: str
    segment: int
    total_segments: int
    start_key: dict | None = None
    first_page: int = 0


def segment_groups(segments: Sequence[T], pages_in_flight: int, workers: int) -> list[tuple[T, ...]]:
    """The segments (or export data files) in groups that one DoFn call reads side by side:
    `pages_in_flight` a group at most, and fewer where that leaves every worker a group (16
    segments on 2 workers: 2 of 8)."""
    size = max(1, min(pages_in_flight, math.ceil(len(segments) / max(1, workers))))
    return [tuple(segments[i:i + size]) for i in range(0, len(segments), size)]


class _ScanSegmentsFn(LoopDoFn):
    def __init__(self, endpoint: SourceSpec | TargetSpec, settings: ScanSettings, counter_side: str):
        self._endpoint = endpoint
        self._settings = settings
        self._side = counter_side

    def open_clients(self):
        # A connection per page in flight, so no page waits for another's connection.
        self._cluster = self.loop.enter(open_cluster(self._endpoint,
                                                     max_connections=max(32, self._settings.pages_in_flight)))
        rate = self._settings.max_read_units_per_second
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
        if self._bucket is not None:  # the bucket is the worker's: pages in flight share its rate
            await self._bucket.spend((rest.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0))
        return batch, rest, retries

    async def _scan_segment(self, spec: SegmentSpec, arrived: queue.Queue) -> None:
        """Page through one segment, putting each page on `arrived` with the semaphore to release
        once it is handed downstream: a segment holds two pages at most (in flight, or waiting),
        and asks for its next page as soon as it holds fewer, whatever the Beam thread is doing."""
        held = asyncio.Semaphore(2)
        index, start_key = spec.first_page, spec.start_key
        try:
            while True:
                await held.acquire()
                batch, rest, retries = await self._scan_page(spec, start_key)
                next_key = rest.get("LastEvaluatedKey")
                arrived.put((Page(spec.table, spec.segment, index, start_key, next_key, batch), retries, held))
                if not next_key:
                    return
                index, start_key = index + 1, next_key
        except Exception as exc:  # noqa: BLE001 - raised on the Beam thread, which fails the call
            arrived.put(exc)

    def process(self, group: tuple[SegmentSpec, ...]):
        """Every page of the group's segments, handed on as they arrive (a segment's in its order)."""
        arrived: queue.Queue = queue.Queue()
        scans = [self.loop.submit(self._scan_segment(spec, arrived)) for spec in group]
        counters = {}
        try:
            ended = 0
            while ended < len(group):
                entry = arrived.get()
                if isinstance(entry, Exception):
                    raise entry
                page, retries, held = entry
                if page.table not in counters:
                    figures = (Figure.ITEMS_READ, Figure.BYTES_READ, Figure.READ_RETRIES)
                    counters[page.table] = tuple(metrics.counter(page.table, figure, self._side) for figure in figures)
                items_read, bytes_read, read_retries = counters[page.table]
                read_retries.inc(retries)
                items_read.inc(page.batch.num_rows)
                bytes_read.inc(page.batch.nbytes)
                yield page
                self.loop.call_soon(held.release)
                ended += page.next_key is None
        finally:  # a failed page ends the call (Beam retries it): the other segments stop
            for scan in scans:
                scan.cancel()


class ScanTables(beam.PTransform):
    """Scan the given segments of tables at one DynamoDB-API endpoint; emits `Page`s.

    Args:
        endpoint: the source (`SourceSpec`) or the target (`TargetSpec`) to scan.
        segments: the segments to read, of one or many tables.
        scan_settings: page size, consistency, read rate, retries, and pages in flight per
            worker (as `WriteTables` takes `writer_settings`).
        counter_side: a prefix for the counters (`source:` / `target:`), so two scans in
            one pipeline of tables with the same name keep their figures apart.
    """

    def __init__(self, endpoint: SourceSpec | TargetSpec, segments: list[SegmentSpec],
                 scan_settings: ScanSettings = ScanSettings(), *, counter_side: str = ""):
        super().__init__()
        self._endpoint = endpoint
        self._segments = segments
        self._settings = scan_settings
        self._side = counter_side

    def display_data(self):
        return {"endpoint": DisplayDataItem(self._endpoint.describe(), label="Endpoint"),
                "segments": DisplayDataItem(len(self._segments), label="Segments"),
                "page_size": DisplayDataItem(self._settings.page_size, label="Items per page"),
                "pages_in_flight": DisplayDataItem(self._settings.pages_in_flight, label="Pages in flight per worker")}

    def expand(self, pbegin):
        groups = segment_groups(self._segments, self._settings.pages_in_flight, self._settings.workers)
        return (pbegin
                | "SegmentSpecs" >> beam.Create(groups)
                | "SpreadSegments" >> beam.Reshuffle()
                | "ScanSegments" >> beam.ParDo(_ScanSegmentsFn(self._endpoint, self._settings, self._side)))
