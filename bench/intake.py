"""The ceiling of a bulk copy: how fast the target takes pre-built BatchWriteItem requests.

Takes the source's items as a file of DynamoDB JSON lines (`save_items`, one Scan of
the source made once per benchmark), writes every request body in advance, then sends
them to a fresh target table with `concurrency` requests in flight over aiohttp
(unsigned, as to an Alternator without authorization) and prints, as JSON, the seconds
and the CPU seconds of the sending alone. Nothing a copy could leave out is left to do:
its CPU per item is the least any client pays, its rate the most the target takes.

Run: python -m bench.intake ITEMS_FILE ITEMS TARGET TARGET_TABLE ITEMS_PER_REQUEST CONCURRENCY
"""
from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import aiohttp

from tests.support import seed
from transforms.items.ddb_json import encode_item


def save_items(source: str, table: str, path: Path) -> int:
    """Scan `table` once and keep its items, in wire form, one per line in `path`; how many."""
    items = seed.scan_all(source, table)
    with path.open("w") as out:
        for item in items:
            out.write(json.dumps(encode_item(item)) + "\n")
    return len(items)


def request_bodies(path: Path, items: int, target_table: str, per_request: int) -> list[tuple[int, bytes]]:
    with path.open() as lines:
        wire = [json.loads(line) for line in itertools.islice(lines, items)]
    return [(len(chunk), json.dumps({"RequestItems": {target_table: [
        {"PutRequest": {"Item": item}} for item in chunk]}}).encode())
            for chunk in (wire[i:i + per_request] for i in range(0, len(wire), per_request))]


async def send(url: str, bodies: list[tuple[int, bytes]], concurrency: int) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"}
    queue = iter(bodies)

    async def sender(http: aiohttp.ClientSession) -> None:
        for _count, body in queue:
            async with http.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 200 or json.loads(answer).get("UnprocessedItems"):
                    raise RuntimeError(f"the target refused a request: {response.status} {answer[:200]!r}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))


def main(items_file: str, items: int, target: str, target_table: str, per_request: int, concurrency: int) -> dict:
    bodies = request_bodies(Path(items_file), items, target_table, per_request)
    started_cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(send(target.rstrip("/") + "/", bodies, concurrency))
    return {"items": sum(count for count, _ in bodies), "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - started_cpu}


if __name__ == "__main__":
    items_file, items, target, target_table, per_request, concurrency = sys.argv[1:7]
    print(json.dumps(main(items_file, int(items), target, target_table, int(per_request), int(concurrency))))
