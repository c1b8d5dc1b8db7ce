"""A naive copy, as a user would write it with boto3: Scan pages, BatchWriteItem of 25.

One thread, boto3's low-level client, UnprocessedItems sent again. `bench.bulk` runs it
as a process and counts its CPU, as it counts the tool's.

Run: python -m bench.naive_copy SOURCE SOURCE_TABLE TARGET TARGET_TABLE
"""
from __future__ import annotations

import sys

from testbed import seed


def copy(source: str, source_table: str, target: str, target_table: str) -> int:
    reader, writer = seed.client_for(source), seed.client_for(target)
    copied = 0
    for page in reader.get_paginator("scan").paginate(TableName=source_table, PaginationConfig={"PageSize": 1000}):
        items = page["Items"]
        for start in range(0, len(items), 25):
            requests = {target_table: [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]}
            while requests:
                requests = writer.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        copied += len(items)
    return copied


if __name__ == "__main__":
    print(copy(*sys.argv[1:5]))
