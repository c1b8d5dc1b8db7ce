"""BatchWriteItem requests cut by their encoded size as well as by item count.

Both services cap a request body at 16 MB. Alternator refuses a body over 16 MiB
(`request_content_length_limit = 16*MB` in alternator/server.hh; alternator/server.cc answers
HTTP 413 `PayloadTooLarge`, "Request content length limit of 16777216 bytes exceeded"), and
DynamoDB refuses a BatchWriteItem whose "total request size exceeds 16 MB" as a whole
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
Items can be large (400 KB stored, more as JSON: binary travels as base64), so 100 of them
(Alternator's count limit) can make 17 MB; and pages read from export or Parquet files,
stream windows several shards share, repairs and dead-letter replays are not bounded in
bytes the way a live Scan page is (1 MB). So every batch is cut here, by the bytes of its
request texts, which the writer holds anyway.

`MAX_REQUEST_BYTES` is 16,000,000 bytes of the whole body: under Alternator's 16 MiB, and
under DynamoDB's 16 MB whether that means 10^6 or 2^20 bytes and whatever part of the
request it counts (the page does not say; the body holds all of it). `too_large`
recognises the refusal of a request that is too large anyway (a lower limit on a proxy in
between): the writer then splits the batch as it does for a batch refused as invalid.
"""
from __future__ import annotations

from typing import Sequence

from transforms.dynamo.retry import error_code
from transforms.items.wire_encode import batch_write_body
from transforms.settings import MAX_REQUEST_BYTES

__all__ = ["MAX_REQUEST_BYTES", "cut_by_size", "too_large"]



def cut_by_size(table: str, rows: Sequence[bytes], max_items: int, max_bytes: int) -> list[list[bytes]]:
    """`rows` (request texts) in order, as batches of at most `max_items` rows whose
    BatchWriteItem body to `table` is at most `max_bytes` (a row too large alone is a batch alone)."""
    empty = len(batch_write_body(table, []))
    batches: list[list[bytes]] = []
    batch: list[bytes] = []
    size = empty
    for row in rows:
        added = len(row) + 1 if batch else len(row)  # with the comma before it
        if batch and (len(batch) == max_items or size + added > max_bytes):
            batches.append(batch)
            batch, size, added = [], empty, len(row)
        batch.append(row)
        size += added
    if batch:
        batches.append(batch)
    return batches


def too_large(exc: BaseException) -> bool:
    """Whether a request was refused for its size: HTTP 413 (Alternator's `PayloadTooLarge`, or
    a proxy's own 413, whatever its body says)."""
    if error_code(exc) == "PayloadTooLarge":
        return True
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 413
