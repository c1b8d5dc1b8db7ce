"""Data files of DynamoDB exports -> the Arrow `Page`s a Scan gives, one file per element.

Data files are grouped like a scan's segments (`scan.segment_groups`: a Reshuffle spreads
the groups over workers) and each is one segment of its table's checkpoints: its pages are ranges of lines, keyed by line number (the
`start_key`/`next_key` of a `Page`, `{"line": {"N": "1000"}}`), so `WriteTables` and
`bulk_checkpoints` treat them exactly like Scan pages and a resume continues a file at
the first line not written.

A file is checked before any of its items go downstream: it is copied to a local
temporary file while its MD5 is computed (one read of the object, memory bounded by a
page), and a checksum that differs from the manifest's stops the run naming the file.
An export is usually far from the copier too (an S3 GET of another region), so a worker
copies every file of its group at once, each in a thread (Beam's filesystems block),
while it parses them in turn: a group holds `files_in_flight` files at most, so that
many are on local disk at once.
Its line count is checked when the file ends, before its last page goes downstream, so
a file whose count differs is never recorded as done. Lines are decoded by the scan's
own wire decoder (`items.wire_decode.wire_items_to_batch`): a page of lines is joined
into one JSON array and parsed by orjson in one call.
"""
from __future__ import annotations

import base64
import concurrent.futures
import gzip
import hashlib
import itertools
import tempfile
import zlib
from dataclasses import dataclass
from typing import IO, Iterator

import apache_beam as beam
import orjson
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.display import DisplayDataItem

from transforms import metrics
from transforms.exports.manifest import DataFile, ExportMismatch
from transforms.exports.parquet import PARQUET, parquet_pages
from transforms.items.gc_pause import gc_paused
from transforms.items.wire_decode import wire_items_to_batch
from transforms.metrics import Figure
from transforms.page import Page
from transforms.scan import segment_groups
from transforms.settings import PAGES_IN_FLIGHT, ScanSettings
from transforms.state.storage import StorageOptions

__all__ = ["ExportFileSpec", "ReadExportFiles", "DataFileFn", "line_key", "line_of",
           "spooled", "spool_checked", "line_pages"]

_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportFileSpec:
    """One data file of a full export, as one segment of its table: `segment` is its place in
    the manifest; `first_page`/`start_line` continue a resumed file."""

    table: str
    segment: int
    total_segments: int
    file: DataFile
    first_page: int = 0
    start_line: int = 0
    format: str = "DYNAMODB_JSON"  # or PARQUET: a file of `alternator-migrate export`, pages by row


def line_key(line: int) -> dict | None:
    """The checkpoint key of a place in a data file (None: its beginning)."""
    return {"line": {"N": str(line)}} if line else None


def line_of(key: dict | None) -> int:
    """The line a checkpoint key names (0 for None)."""
    return int(key["line"]["N"]) if key else 0


def spooled(data_file: DataFile) -> IO[bytes]:
    """A temporary file holding the data file's gzipped bytes, checked (`spool_checked`)."""
    spool = tempfile.TemporaryFile(prefix="export-")
    try:
        spool_checked(data_file, spool)
    except BaseException:
        spool.close()
        raise
    return spool


def spool_checked(data_file: DataFile, spool: IO[bytes]) -> None:
    """Copy a data file's gzipped bytes into `spool`, checking them against the manifest's MD5."""
    digest = hashlib.md5()  # noqa: S324 - the manifest's checksum is MD5, not a security measure
    with FileSystems.open(data_file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for chunk in iter(lambda: f.read(_COPY_CHUNK), b""):
            digest.update(chunk)
            spool.write(chunk)
    found = base64.b64encode(digest.digest()).decode("ascii")
    if found != data_file.md5:
        raise ExportMismatch(f"data file {data_file.path}: its MD5 is {found}, its manifest says {data_file.md5}; "
                             f"the file is damaged or was replaced: export the table again")
    spool.seek(0)


def parse_lines(data_file: DataFile, first_line: int, lines: list[bytes]) -> list:
    """A page of a data file's lines (none empty) as JSON objects, parsed by one orjson call."""
    try:
        with gc_paused():
            return orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        for number, line in enumerate(lines, first_line + 1):
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ExportMismatch(f"data file {data_file.path} line {number} is not JSON ({exc}); the export is "
                                     f"damaged: export the table again") from None
        raise


def _batch_of(data_file: DataFile, first_line: int, items: list) -> pa.RecordBatch:
    try:
        with gc_paused():
            return wire_items_to_batch(items)
    except ValueError as exc:
        raise ExportMismatch(f"{data_file.path}, lines {first_line + 1}-{first_line + len(items)}: not items in "
                             f"DynamoDB JSON ({exc}); the export is damaged: export the table again") from None


def _items_of(data_file: DataFile, first_line: int, entries: list) -> list:
    try:
        return [entry["Item"] for entry in entries]
    except (KeyError, TypeError):
        raise ExportMismatch(f"data file {data_file.path}, lines {first_line + 1}-{first_line + len(entries)}: not "
                             f'one {{"Item": ...}} per line; is it a full export?') from None


def line_pages(data_file: DataFile, spool: IO[bytes], page_size: int, start_line: int = 0
               ) -> Iterator[tuple[int, int, bool, list]]:
    """(first line, end line, whether it is the last page, the lines as JSON objects) per page of
    `page_size` lines of a checked, spooled data file, from `start_line` on. The item count is
    checked against the manifest before the last page is given, so a file that does not match
    never reaches its end (nor its checkpoint's)."""
    try:
        yield from _line_pages(data_file, gzip.open(spool), page_size, start_line)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ExportMismatch(f"data file {data_file.path} is not a whole gzip file ({exc}); the export is damaged: "
                             f"export the table again") from None


def _line_pages(data_file: DataFile, opened: IO[bytes], page_size: int, start_line: int
                ) -> Iterator[tuple[int, int, bool, list]]:
    with opened as lines:
        items = sum(1 for text in itertools.islice(lines, start_line) if text.strip())
        line, pending = start_line, None  # the page read last: given once the next one shows it is not the last
        while True:
            chunk = list(itertools.islice(lines, page_size))
            if not chunk and pending is not None:
                break
            if pending is not None:
                yield (*pending[:2], False, pending[2])
            texts = [text for text in chunk if text.strip()]
            entries = parse_lines(data_file, line, texts) if texts else []
            pending = (line, line + len(chunk), entries)
            items += len(texts)
            line += len(chunk)
            if not chunk:  # nothing (left) in the file: one empty last page
                break
    if items != data_file.items:
        raise ExportMismatch(f"data file {data_file.path} holds {items:,} items, its manifest says "
                             f"{data_file.items:,}; the export is damaged: export the table again")
    yield (*pending[:2], True, pending[2])


class DataFileFn(beam.DoFn):
    """The base of DoFns that read export data files: `pages` spools and checks one, then parses it."""

    def __init__(self, storage: StorageOptions, page_size: int):
        self._storage = storage
        self._page_size = page_size

    def setup(self):
        self._storage.install()

    def pages(self, data_file: DataFile, start_line: int = 0) -> Iterator[tuple[int, int, bool, list]]:
        """`line_pages` of the data file, after its checksum was checked."""
        with spooled(data_file) as spool:
            yield from line_pages(data_file, spool, self._page_size, start_line)


class _ReadDataFilesFn(DataFileFn):
    def process(self, group: tuple[ExportFileSpec, ...]):
        """The pages of the group's files, file after file, while the later ones are copied."""
        copying = [spec for spec in group if spec.format != PARQUET]  # Parquet files are read in place
        pool = concurrent.futures.ThreadPoolExecutor(max(1, len(copying)), thread_name_prefix="export-copy")
        spools = {spec: pool.submit(spooled, spec.file) for spec in copying}
        try:
            for spec in group:
                yield from self._file_pages(spec, spools.get(spec))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for future in spools.values():  # the files not read (a failed call) are deleted too
                if not future.cancelled() and future.exception() is None:
                    future.result().close()

    def _file_pages(self, spec: ExportFileSpec, spool: concurrent.futures.Future | None):
        items_read = metrics.counter(spec.table, Figure.ITEMS_READ)
        bytes_read = metrics.counter(spec.table, Figure.BYTES_READ)
        if spool is None:
            pages = ((first, end, last, parse_lines(spec.file, first, texts))
                     for first, end, last, texts in parquet_pages(spec.file, self._page_size, spec.start_line))
        else:
            pages = ((first, end, last, _items_of(spec.file, first, entries))
                     for first, end, last, entries in line_pages(spec.file, spool.result(), self._page_size,
                                                                 spec.start_line))
        index = spec.first_page
        for first, end, last, items in pages:
            batch = _batch_of(spec.file, first, items)
            items_read.inc(batch.num_rows)
            bytes_read.inc(batch.nbytes)
            yield Page(spec.table, spec.segment, index, line_key(first), None if last else line_key(end), batch)
            index += 1
        if spool is not None:
            spool.result().close()  # its disk space is free before the next file is parsed


class ReadExportFiles(beam.PTransform):
    """Read data files of full DynamoDB exports (DYNAMODB_JSON) into `Page`s.

    Args:
        files: the data files to read, each with its table and its place in the checkpoints.
        storage: the filesystem options that reach the export (S3 endpoint and keys...).
        page_size: lines per page (the scan's page size).
        files_in_flight: files a worker copies at once (`scan.pages_in_flight`).
        workers: the job's workers, each given a group of files where there are enough.
    """

    def __init__(self, files: list[ExportFileSpec], storage: StorageOptions,
                 page_size: int = ScanSettings.page_size, files_in_flight: int = PAGES_IN_FLIGHT, workers: int = 1):
        super().__init__()
        self._files = files
        self._storage = storage
        self._page_size = page_size
        self._files_in_flight = files_in_flight
        self._workers = workers

    def display_data(self):
        return {"files": DisplayDataItem(len(self._files), label="Export data files"),
                "page_size": DisplayDataItem(self._page_size, label="Lines per page"),
                "files_in_flight": DisplayDataItem(self._files_in_flight, label="Files copied at once per worker")}

    def expand(self, pbegin):
        return (pbegin
                | "DataFiles" >> beam.Create(segment_groups(self._files, self._files_in_flight, self._workers))
                | "SpreadFiles" >> beam.Reshuffle()
                | "ReadDataFiles" >> beam.ParDo(_ReadDataFilesFn(self._storage, self._page_size)))
