"""The ceiling of a bulk copy: how fast the target takes pre-built BatchWriteItem requests.

Takes the source's items as a file of DynamoDB JSON lines (`save_items`, one Scan of
the source made once per benchmark), writes every request body in advance, then sends
them to a fresh target table with `concurrency` requests in flight over aiohttp and
prints, as JSON, the seconds and the CPU seconds of the sending alone. Nothing a copy
could leave out is left to do: its CPU per item is the least any client pays, its rate
the most the target takes.

Requests go unsigned, as to an Alternator without authorization, unless `signed`: then
each is SigV4-signed (botocore's signer, with the test keys `seed.client_for` uses) while
it is built, for a server that refuses a request without an Authorization header (DynamoDB
Local); signing is then part of the building, not of the timed sending.

Run: python -m bench.intake ITEMS_FILE ITEMS TARGET TARGET_TABLE ITEMS_PER_REQUEST CONCURRENCY [signed]
"""
from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

import aiohttp
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from testbed import seed
from transforms.items.ddb_json import encode_item


def save_items(source: str, table: str, path: Path) -> int:
    """Scan `table` once and keep its items, in wire form, one per line in `path`; how many."""
    items = seed.scan_all(source, table)
    with path.open("w") as out:
        for item in items:
            out.write(json.dumps(encode_item(item)) + "\n")
    return len(items)


_HEADERS = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"}


def request_bodies(path: Path, items: int, target_table: str, per_request: int) -> list[tuple[int, bytes]]:
    with path.open() as lines:
        wire = [json.loads(line) for line in itertools.islice(lines, items)]
    return [(len(chunk), json.dumps({"RequestItems": {target_table: [
        {"PutRequest": {"Item": item}} for item in chunk]}}).encode())
            for chunk in (wire[i:i + per_request] for i in range(0, len(wire), per_request))]


def request_headers(url: str, bodies: list[tuple[int, bytes]], signed: bool) -> list[dict]:
    """Each request's headers: SigV4-signed for its body when `signed`."""
    if not signed:
        return [_HEADERS] * len(bodies)
    signer = SigV4Auth(Credentials("test", "test"), "dynamodb", "us-east-1")
    signed_headers = []
    for _count, body in bodies:
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(_HEADERS))
        signer.add_auth(request)
        signed_headers.append(dict(request.headers.items()))
    return signed_headers


async def send(url: str, requests: list[tuple[bytes, dict]], concurrency: int) -> None:
    queue = iter(requests)

    async def sender(http: aiohttp.ClientSession) -> None:
        for body, headers in queue:
            async with http.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 200 or json.loads(answer).get("UnprocessedItems"):
                    raise RuntimeError(f"the target refused a request: {response.status} {answer[:200]!r}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))


def main(items_file: str, items: int, target: str, target_table: str, per_request: int, concurrency: int,
         signed: bool = False) -> dict:
    url = target.rstrip("/") + "/"
    bodies = request_bodies(Path(items_file), items, target_table, per_request)
    requests = [(body, headers) for (_count, body), headers in zip(bodies, request_headers(url, bodies, signed))]
    started_cpu, started = time.process_time(), time.perf_counter()
    asyncio.run(send(url, requests, concurrency))
    return {"items": sum(count for count, _ in bodies), "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - started_cpu}


if __name__ == "__main__":
    items_file, items, target, target_table, per_request, concurrency = sys.argv[1:7]
    print(json.dumps(main(items_file, int(items), target, target_table, int(per_request), int(concurrency),
                          signed=sys.argv[7:] == ["signed"])))
