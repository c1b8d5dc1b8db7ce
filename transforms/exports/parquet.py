"""Tables as Parquet files, and back: the `export` command's files and the `parquet:` source.

Column layout, version 1 (one folder per table; docs/guide.md, "Parquet"):

    <key attribute>...   one column per key attribute, in key-schema order: string for
                         S and N (N as its exact digits), binary for B (for queries and
                         sorting; the item column holds them too)
    item                 string: the whole item as DynamoDB JSON, as the wire format writes
                         it ({"name":{"S":"x"},"n":{"N":"1.50"},"b":{"B":"<base64>"},...})

Lossless for every type by construction: the item text is the wire format DynamoDB
itself reads and writes, built from the Arrow page by the writer's own encoder
(`wire_encode.item_texts`) and read back through the scan's decoder
(`wire_decode.wire_items_to_batch`). A typed column per attribute would need one
schema per file, which a table without a schema does not have.

`manifest.json` beside the files: {"layout_version", "table", "item_count", "key_schema",
"files": [{"path", "items"}]}, written by the launcher once every file is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.display import DisplayDataItem

from transforms.exports.manifest import DataFile, ExportError, ExportManifest, ExportMismatch
from transforms.items.wire_encode import item_texts
from transforms.page import Page
from transforms.state.files import matching, read_json, write_bytes, write_json
from transforms.state.paths import file_name, with_slashes
from transforms.state.storage import StorageOptions

__all__ = ["LAYOUT_VERSION", "PARQUET", "ITEM_COLUMN", "KeyColumn", "WriteParquet", "parquet_pages",
           "write_manifest", "read_parquet_manifest"]

LAYOUT_VERSION = 1
PARQUET = "PARQUET"
ITEM_COLUMN = "item"
_ROWS_PER_FILE = 100_000


@dataclass(frozen=True)
class KeyColumn:
    """A key attribute: its name, type (S, N or B) and role (HASH or RANGE)."""

    name: str
    type: str
    role: str


def _key_array(batch: pa.RecordBatch, key: KeyColumn) -> pa.Array:
    arrow_type = pa.binary() if key.type == "B" else pa.string()
    if key.name not in batch.schema.names:
        return pa.nulls(batch.num_rows, arrow_type)
    column = batch.column(key.name)
    names = [column.type.field(i).name for i in range(column.type.num_fields)]
    if key.type not in names:
        return pa.nulls(batch.num_rows, arrow_type)
    return column.field(key.type).cast(arrow_type)


def page_table(batch: pa.RecordBatch, keys: Sequence[KeyColumn]) -> pa.Table:
    """A page in the Parquet layout."""
    arrays = [_key_array(batch, key) for key in keys] + [item_texts(batch).cast(pa.string())]
    return pa.Table.from_arrays(arrays, names=[key.name for key in keys] + [ITEM_COLUMN])


def _file_name(segment: int, first_page: int) -> str:
    return f"part-{segment:06d}-{first_page:08d}.parquet"


class _WriteParquetFn(beam.DoFn):
    """Pages of a segment -> Parquet files of up to `rows_per_file` rows, named by segment and first page."""

    def __init__(self, folder: str, keys: dict[str, tuple[KeyColumn, ...]], storage: StorageOptions,
                 rows_per_file: int):
        self._folder = folder
        self._keys = keys
        self._storage = storage
        self._rows_per_file = rows_per_file

    def setup(self):
        self._storage.install()

    def start_bundle(self):
        self._open: dict[tuple[str, int], tuple[int, list[pa.Table], int]] = {}

    def process(self, page: Page):
        slot = (page.table, page.segment)
        first, tables, rows = self._open.get(slot, (page.index, [], 0))
        tables.append(page_table(page.batch, self._keys[page.table]))
        rows += page.batch.num_rows
        self._open[slot] = (first, tables, rows)
        if page.next_key is None or rows >= self._rows_per_file:
            self._flush(slot)

    def finish_bundle(self):
        for slot in list(self._open):
            self._flush(slot)

    def _flush(self, slot: tuple[str, int]) -> None:
        first, tables, rows = self._open.pop(slot)
        if not rows:
            return
        sink = pa.BufferOutputStream()
        pq.write_table(pa.concat_tables(tables), sink, compression="zstd")
        write_bytes(FileSystems.join(self._folder, slot[0], _file_name(slot[1], first)), sink.getvalue().to_pybytes())


class WriteParquet(beam.PTransform):
    """Write `Page`s as Parquet files (the layout above) under `folder/<table>/`; emits nothing.

    Args:
        folder: where the tables' folders go (a local path, s3:// or gs://).
        keys: per table (as the pages name it), its key columns.
        storage: the filesystem options that reach the folder.
        rows_per_file: at most this many items a file (a file holds pages of one segment).
    """

    def __init__(self, folder: str, keys: dict[str, tuple[KeyColumn, ...]], storage: StorageOptions,
                 rows_per_file: int = _ROWS_PER_FILE):
        super().__init__()
        self._fn = _WriteParquetFn(folder, keys, storage, rows_per_file)
        self._folder = folder

    def display_data(self):
        return {"folder": DisplayDataItem(self._folder, label="Parquet folder")}

    def expand(self, pages):
        return pages | "WriteParquet" >> beam.ParDo(self._fn)


def write_manifest(folder: str, table: str, keys: Sequence[KeyColumn]) -> dict:
    """List a table's written files with their row counts (from their footers) into manifest.json."""
    directory = FileSystems.join(folder, table)
    files = []
    for path in sorted(matching(FileSystems.join(directory, "part-*.parquet"))):
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            rows = pq.ParquetFile(f).metadata.num_rows
        files.append({"path": file_name(path), "items": rows})
    manifest = {"layout_version": LAYOUT_VERSION, "table": table, "item_count": sum(f["items"] for f in files),
                "key_schema": [{"name": k.name, "type": k.type, "key_type": k.role} for k in keys], "files": files}
    write_json(FileSystems.join(directory, "manifest.json"), manifest)
    return manifest


def read_parquet_manifest(path: str) -> ExportManifest:
    """A Parquet export's manifest, checked (layout version, counts, files present), as an
    `ExportManifest` of kind PARQUET whose files are the Parquet files."""
    folder = path.rstrip("/")
    manifest_path = FileSystems.join(folder, "manifest.json")
    try:
        manifest = read_json(manifest_path)
    except ValueError:
        manifest = {}
    if manifest is None:
        raise ExportError(f"{manifest_path} does not exist; give the folder of one table of an "
                          f"`alternator-migrate export` (<to>/<table>/)")
    if not isinstance(manifest, dict) or manifest.get("layout_version") != LAYOUT_VERSION:
        raise ExportError(f"{manifest_path}: not a Parquet export of layout version {LAYOUT_VERSION}")
    try:
        files = tuple(DataFile(FileSystems.join(folder, f["path"]), int(f["items"]), "") for f in manifest["files"])
        items = int(manifest["item_count"])
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"{manifest_path}: files or item_count missing or malformed") from None
    if sum(f.items for f in files) != items:
        raise ExportError(f"{manifest_path}: its files hold {sum(f.items for f in files):,} items, but it says "
                          f"{items:,}; the export is damaged, export the table again")
    present = {with_slashes(p) for p in matching(FileSystems.join(folder, "*.parquet"))}
    missing = [f.path for f in files if with_slashes(f.path) not in present]
    if missing:
        raise ExportError(f"{missing[0]} is listed in {manifest_path} but does not exist; copy the whole folder, "
                          f"or export the table again")
    return ExportManifest(folder, PARQUET, "-", None, None, items, files)


def parquet_pages(data_file: DataFile, page_size: int, start_row: int = 0) -> Iterator[tuple[int, int, bool, list]]:
    """(first row, end row, whether it is the last page, the items' DynamoDB JSON texts) per page of
    a Parquet file of the layout, from `start_row` on; its row count is checked first."""
    with FileSystems.open(data_file.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        parquet = pq.ParquetFile(f)
        rows = parquet.metadata.num_rows
        if rows != data_file.items:
            raise ExportMismatch(f"Parquet file {data_file.path} holds {rows:,} items, its manifest says "
                                 f"{data_file.items:,}; the export is damaged: export the table again")
        if ITEM_COLUMN not in parquet.schema_arrow.names:
            raise ExportMismatch(f"Parquet file {data_file.path} has no {ITEM_COLUMN!r} column; is it an "
                                 f"`alternator-migrate export` file?")
        position = 0
        for batch in parquet.iter_batches(batch_size=page_size, columns=[ITEM_COLUMN]):
            end = position + batch.num_rows
            if end > start_row:
                skip = max(0, start_row - position)
                texts = batch.column(0).slice(skip).cast(pa.binary()).to_pylist()
                yield position + skip, end, end >= rows, texts
            position = end
        if rows <= start_row:
            yield start_row, start_row, True, []
