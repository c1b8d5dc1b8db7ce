"""`WriteParquet`: pages written as Parquet files read back as the same items."""
from __future__ import annotations

import json

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.testing import test_pipeline

from pipeline.checks.runners import LOCAL_RUNNER
from tests.transforms.items import ITEMS, texts
from transforms.exports.parquet import ITEM_COLUMN, KeyColumn, WriteParquet
from transforms.items.arrow_codec import items_to_batch
from transforms.items.ddb_json import decode_item
from transforms.page import Page
from transforms.state.storage import StorageOptions


def _pages(items: list[dict], table: str, segment: int, size: int) -> list[Page]:
    """`items` as the pages of one segment of a scan."""
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [Page(table, segment, index, {"at": index} if index else None,
                 {"at": index + 1} if index + 1 < len(chunks) else None, items_to_batch(chunk))
            for index, chunk in enumerate(chunks)]


def test_pages_written_as_parquet_read_back_as_the_same_items(tmp_path):
    folder = str(tmp_path / "parquet")
    half = len(ITEMS) // 2
    pages = _pages(ITEMS[:half], "table", 0, 40) + _pages(ITEMS[half:], "table", 1, 40)
    keys = {"table": (KeyColumn("pk", "S", "HASH"), KeyColumn("sk", "N", "RANGE"))}

    with test_pipeline.TestPipeline(runner=LOCAL_RUNNER) as p:
        _ = p | beam.Create(pages) | WriteParquet(folder, keys, StorageOptions(), rows_per_file=50)

    files = sorted((tmp_path / "parquet" / "table").glob("*.parquet"))
    # A file takes a segment's pages until it holds 50 rows or more: 80 rows, then the last 40.
    assert [path.name for path in files] == [f"part-{segment:06d}-{page:08d}.parquet"
                                             for segment in (0, 1) for page in (0, 2)]
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    items = [decode_item(json.loads(row[ITEM_COLUMN])) for row in rows]
    assert sorted(texts(items)) == sorted(texts(ITEMS))
    assert [(row["pk"], row["sk"]) for row in rows] == [(item["pk"]["S"], item["sk"]["N"]) for item in items]
