"""The data plane's HTTP transport vs aiohttp and a bare asyncio stream: client CPU per request.

Why this is measured: it is the reason the data plane has its own HTTP/1.1 transport
(`transforms/dynamo/http1.py`) rather than aiohttp, and it shows whether that still holds.
Each side sends the same BatchWriteItem requests of 25 items (~0.6 KB each, signed with
SigV4 per request) to DynamoDB Local, 16 in flight on 16 kept-alive connections, and the
client process's CPU time per request is counted (the server runs in its own process):

- the data plane: `aws_json.open_endpoint(...).call`, exactly as the writer calls it
  (signing, the CRC check, decoding the reply), over `http1.Origin`;
- aiohttp: a `ClientSession` as the data plane used it before (no decompression, no
  User-Agent, the same timeouts), posting the same signed requests and reading the reply;
- a bare client: asyncio streams writing the same signed request bytes and reading
  each reply by its Content-Length, with no checks at all: the least any client can
  cost on asyncio.

Rounds alternate the sides; medians are printed, and the difference per item at 25
items a request (DynamoDB) and 100 (Alternator).

Run: .venv/bin/python -m bench.http_client [REQUESTS] [ROUNDS]
"""
from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import orjson
from aiobotocore.credentials import AioCredentials

from bench.bulk import bench_item, create_bench_table
from bench.measure import median
from testbed.servers import DynamoDBLocal
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


async def _signed_headers(url: str):
    """A function of a body: its signed headers (Host included), as the data plane signs them."""
    signer = RequestSigner(url, _REGION, "dynamodb")
    frozen = await _CREDENTIALS.get_frozen_credentials()
    return lambda body: signer.sign({"Content-Type": "application/x-amz-json-1.0",
                                     "X-Amz-Target": TABLE_TARGET_PREFIX + "BatchWriteItem",
                                     "Accept-Encoding": "identity"}, body, frozen)


async def _aiohttp(url: str, bodies: list[bytes]) -> float:
    signed = await _signed_headers(url)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT, ssl=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=60),
                                     auto_decompress=False, skip_auto_headers=("User-Agent",)) as http:
        async def send(body: bytes) -> None:
            async with http.post(url, data=body, headers=signed(body)) as response:
                orjson.loads(await response.read())

        await _in_flight(bodies[:IN_FLIGHT * 4], send)
        return await _in_flight(bodies, send)


async def _bare(url: str, bodies: list[bytes]) -> float:
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    signed = await _signed_headers(url)
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(IN_FLIGHT)]

    async def send(body: bytes) -> None:
        reader, writer = connections.pop()
        headers = signed(body)
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
    sides = {"data plane (http1)": _data_plane, "aiohttp": _aiohttp, "bare asyncio stream": _bare}
    figures: dict[str, list[float]] = {name: [] for name in sides}
    with DynamoDBLocal() as server:
        create_bench_table(server.endpoint, TABLE)
        for _ in range(rounds):
            for name, side in sides.items():
                figures[name].append(asyncio.run(side(server.endpoint, bodies)))
    medians = {name: median(values) * 1e6 for name, values in figures.items()}
    print(f"{requests:,} BatchWriteItem requests of {ITEMS_PER_REQUEST} items to DynamoDB Local, {IN_FLIGHT} in "
          f"flight, client CPU per request (median of {rounds} rounds):")
    for name, us in medians.items():
        print(f"  {name:<22} {us:>6.0f} us  (rounds: " + ", ".join(f"{v * 1e6:.0f}" for v in figures[name]) + ")")
    ours, bare = medians["data plane (http1)"], medians["bare asyncio stream"]
    for name, us in (("aiohttp", medians["aiohttp"]), ("a bare stream", bare)):
        print(f"  the data plane vs {name}: {ours - us:+.0f} us a request, {(ours - us) / 25:+.1f} us an item at "
              f"25 items a request, {(ours - us) / 100:+.1f} us at 100")
    return medians


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
