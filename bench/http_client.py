"""The data plane's HTTP client (aiohttp) vs a bare asyncio stream: CPU per request.

Why this is measured: the data plane's per-request cost decides whether writing our own
HTTP/1.1 client would pay (docs/design.md, "Data plane"). Both sides send the same
BatchWriteItem requests of 25 items (~0.6 KB each, signed with SigV4 per request) to
DynamoDB Local, 16 in flight on 16 kept-alive connections, and the client process's CPU
time per request is counted (the server runs in its own process):

- the data plane: `aws_json.open_endpoint(...).call`, exactly as the writer calls it
  (signing, the CRC check, decoding the reply);
- a bare client: asyncio streams writing the same signed request bytes and reading
  each reply by its Content-Length, with no checks at all: the least any client can
  cost on asyncio, so the difference is an upper bound of what our own client could
  save.

Rounds alternate the two sides; medians are printed, and the difference per item at
25 items a request (DynamoDB) and 100 (Alternator).

Run: .venv/bin/python -m bench.http_client [REQUESTS] [ROUNDS]
"""
from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiobotocore.credentials import AioCredentials

from bench.bulk import bench_item, create_bench_table
from bench.measure import median
from tests.support.servers import DynamoDBLocal
from transforms.dynamo.aws_json import TABLE_TARGET_PREFIX, open_endpoint
from transforms.dynamo.sigv4 import RequestSigner
from transforms.items.ddb_json import encode_item

IN_FLIGHT = 16
ITEMS_PER_REQUEST = 25
TABLE = "bench_http"
_CREDENTIALS = AioCredentials("bench", "bench")
_REGION = "us-east-1"


def _bodies(requests: int) -> list[bytes]:
    """`requests` BatchWriteItem bodies; the keys repeat so the table stays small."""
    keys = 1000
    return [orjson.dumps({"RequestItems": {TABLE: [
        {"PutRequest": {"Item": encode_item(bench_item((r * ITEMS_PER_REQUEST + i) % keys))}}
        for i in range(ITEMS_PER_REQUEST)]}}) for r in range(requests)]


async def _in_flight(bodies: list[bytes], send) -> float:
    """CPU seconds of this process per request while `send(body)` runs IN_FLIGHT at a time."""
    queue = list(reversed(bodies))

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return (time.process_time() - started) / len(bodies)


async def _data_plane(url: str, bodies: list[bytes]) -> float:
    async with open_endpoint(url, TABLE_TARGET_PREFIX, _REGION, _CREDENTIALS, None, IN_FLIGHT) as endpoint:
        async def send(body: bytes) -> None:
            await endpoint.call("BatchWriteItem", body)

        await _in_flight(bodies[:IN_FLIGHT * 4], send)  # connections opened, code warm
        return await _in_flight(bodies, send)


async def _bare(url: str, bodies: list[bytes]) -> float:
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    signer = RequestSigner(url, _REGION, "dynamodb")
    frozen = await _CREDENTIALS.get_frozen_credentials()
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(IN_FLIGHT)]

    async def send(body: bytes) -> None:
        reader, writer = connections.pop()
        headers = signer.sign({"Content-Type": "application/x-amz-json-1.0",
                               "X-Amz-Target": TABLE_TARGET_PREFIX + "BatchWriteItem",
                               "Accept-Encoding": "identity"}, body, frozen)  # adds Host
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        reply = await reader.readuntil(b"\r\n\r\n")
        start = reply.lower().index(b"content-length:") + len(b"content-length:")
        await reader.readexactly(int(reply[start:reply.index(b"\r\n", start)]))
        connections.append((reader, writer))

    try:
        await _in_flight(bodies[:IN_FLIGHT * 4], send)
        return await _in_flight(bodies, send)
    finally:
        for _, writer in connections:
            writer.close()


def main(requests: int = 4000, rounds: int = 3) -> dict:
    bodies = _bodies(requests)
    figures: dict[str, list[float]] = {"data plane (aiohttp)": [], "bare asyncio stream": []}
    with DynamoDBLocal() as server:
        create_bench_table(server.endpoint, TABLE)
        for _ in range(rounds):
            figures["data plane (aiohttp)"].append(asyncio.run(_data_plane(server.endpoint, bodies)))
            figures["bare asyncio stream"].append(asyncio.run(_bare(server.endpoint, bodies)))
    medians = {name: median(values) * 1e6 for name, values in figures.items()}
    print(f"{requests:,} BatchWriteItem requests of {ITEMS_PER_REQUEST} items to DynamoDB Local, {IN_FLIGHT} in "
          f"flight, client CPU per request (median of {rounds} rounds):")
    for name, us in medians.items():
        print(f"  {name:<22} {us:>6.0f} us  (rounds: " + ", ".join(f"{v * 1e6:.0f}" for v in figures[name]) + ")")
    extra = medians["data plane (aiohttp)"] - medians["bare asyncio stream"]
    print(f"  the data plane's client costs {extra:.0f} us a request more: {extra / 25:.1f} us an item at 25 items "
          f"a request, {extra / 100:.1f} us at 100 (an upper bound of what our own HTTP client could save)")
    return medians


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
