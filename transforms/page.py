"""`Page`: the element every bulk stage passes on, from a Scan or an export's data file to
the writer, the comparison or a Parquet file."""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


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
