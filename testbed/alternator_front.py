"""A local stand-in for ScyllaDB Alternator, in front of a moto server.

The pipeline talks to Alternator, which differs from DynamoDB in ways the tests must see:
every node listens on its own address and lists its peers at `GET /localnodes`, a
BatchWriteItem is all-or-error (at most 100 items, no duplicate keys, never
UnprocessedItems), overload shows up as `RequestLimitExceeded`, number keys are kept
exactly as written (`exact_number_keys`), and new tables use tablets, on which Streams
cannot be enabled, unless tagged for vnodes (`alternator_tablets`, ScyllaDB 2026.1; or
2025.3 with `set_release`). A request body over 16 MiB is refused with HTTP
413 `PayloadTooLarge` before it is read (`request_content_length_limit = 16*MB` in
scylladb's alternator/server.hh; alternator/server.cc `handle_api_request` and
`read_entire_stream`, the error body as its `generate_error_reply` writes it); tests may
lower that limit (`limit_request_bytes`) to cross it with a few items. A BatchGetItem is
answered whole, whatever its size: Alternator has no response cap and leaves keys in
`UnprocessedKeys` only when their reads fail (alternator/executor_read.cc,
`executor::batch_get_item`), where moto behind caps an answer at 16 MiB as DynamoDB does,
so the front asks moto again for what it left. This aiohttp server
reproduces those differences on several loopback addresses sharing one port and forwards
everything else to moto, which stores the data. It can also inject throttling, server
errors, slowness and dropped connections, and counts what it saw, so tests can check
retries and load balancing against a real HTTP server. With `require_signatures` it
enforces authorization as Alternator does: SigV4 signatures (`signatures`) and, given the
roles' GRANTs, each operation's CQL permission (`alternator_grants`).

Alternator does not enforce DynamoDB's 400 KB item limit (scylladb test/alternator/test_item.py),
and the front adds none; moto behind it refuses an item over its own count of 405,000 bytes
(names and values; no list or map overheads, a number by its text), so a test that needs an
item over DynamoDB's limit in it builds one from many small list elements.

It is a test fixture, not a proxy: NEVER point it at a real DynamoDB or Alternator
holding real data.

Run as a process (the `make demo` script does)::

    python -m testbed.alternator_front --backend http://127.0.0.1:5000 --port 8000
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import ssl
import threading
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable

from aiohttp import ClientSession, ClientTimeout, web

from testbed.alternator_grants import Grants, tables_of
from testbed.alternator_tablets import TabletRules
from testbed.exact_number_keys import ExactNumberKeys
from testbed.ports import free_port
from testbed.signatures import check_signature, signing_key
from testbed.threaded_server import ThreadedServer

DEFAULT_ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
MAX_BATCH_WRITE_ITEMS = 100  # Alternator's limit, summed over all tables of one request
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # Alternator's request_content_length_limit (seastar's MB is 2**20)
_READ_CHUNK = 1 << 20
_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
_RESPONSE_HEADERS = ("Content-Type", "x-amzn-RequestId", "x-amz-crc32")
_NOT_FORWARDED = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
_BIND_ATTEMPTS = 5
_UNSIGNED_AS_DYNAMODB = ("AWS4-HMAC-SHA256 Credential=alternator/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0")


@dataclass(frozen=True)
class Faults:
    """Fault rates: probabilities per matching POST request (ops=None matches every operation)."""

    throttle: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 1.0
    drop: float = 0.0
    ops: tuple[str, ...] | None = None
    seed: int | None = None
    # DynamoDB's behaviour, not Alternator's: write half a batch, return the rest unprocessed.
    unprocessed: float = 0.0
    # A reply damaged on its way: its x-amz-crc32 header does not match its body.
    corrupt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("throttle", "server_error", "slow", "drop", "unprocessed", "corrupt"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {rate!r}")
        if self.slow_seconds < 0:
            raise ValueError(f"slow_seconds must be >= 0, got {self.slow_seconds!r}")

    def applies_to(self, op: str) -> bool:
        return self.ops is None or op in self.ops


def dynamodb_error(status: int, error_type: str, message: str) -> web.Response:
    """An error in the DynamoDB JSON protocol, as Alternator sends it."""
    body = json.dumps({"__type": _ERROR_PREFIX + error_type, "message": message})
    return web.Response(status=status, text=body, content_type=_JSON_CONTENT_TYPE)


class AlternatorFront(ThreadedServer):
    """Alternator's visible behaviour on `addresses`:`port`, data kept by moto at `backend_url`."""

    thread_name = "alternator-front"

    def __init__(self, backend_url: str, addresses: tuple[str, ...] = DEFAULT_ADDRESSES, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None):
        super().__init__()
        self.backend_url = backend_url.rstrip("/")
        self.addresses = tuple(addresses)
        self.port = port
        self._ssl_context = ssl_context  # serve HTTPS with it
        self._users: dict[str, str] | None = None  # access key id -> secret; None: unsigned requests welcome
        self._grants: Grants | None = None  # the roles' permissions; None: every signed role may do anything
        self._faults = Faults()
        self._max_request_bytes = MAX_REQUEST_BYTES
        self._rng = random.Random()
        self._key_names: dict[str, tuple[str, ...]] = {}  # table -> key attribute names
        self._number_keys = ExactNumberKeys()
        self._tablets = TabletRules()
        self._stats_lock = threading.Lock()
        self._by_address: Counter[str] = Counter()
        self._by_operation: Counter[str] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._too_large = 0  # requests refused with 413
        self._write_addresses: dict[str, set[str]] = {}  # "table key" -> the addresses that wrote it
        self._backend: ClientSession | None = None  # keep-alive connections to moto

    @property
    def url(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self.addresses[0]}:{self.port}"

    # --- control, callable from any thread -------------------------------------------------

    def set_faults(self, throttle: float = 0.0, server_error: float = 0.0, slow: float = 0.0,
                   slow_seconds: float = 1.0, drop: float = 0.0, ops: list[str] | None = None,
                   seed: int | None = None, unprocessed: float = 0.0, corrupt: float = 0.0) -> Faults:
        """Replace all fault rates at once; no arguments means no faults."""
        if isinstance(ops, str):
            raise ValueError(f"ops must be a list of operation names, got {ops!r}")
        faults = Faults(throttle, server_error, slow, slow_seconds, drop,
                        tuple(ops) if ops is not None else None, seed, unprocessed, corrupt)
        # Swap in a fresh generator with the config, so a seed gives a repeatable sequence.
        self._faults, self._rng = faults, random.Random(seed)
        return faults

    def limit_request_bytes(self, limit: int = MAX_REQUEST_BYTES) -> None:
        """Refuse request bodies over `limit` bytes (413), as Alternator does over 16 MiB."""
        self._max_request_bytes = limit

    def set_release(self, release: str = "2026.1") -> None:
        """Which ScyllaDB's tablet rules to follow (`alternator_tablets.RELEASES`); no argument: 2026.1."""
        self._tablets.release = release

    def uses_tablets(self, table: str) -> bool:
        """Whether a table created through the front uses tablets."""
        return self._tablets.uses_tablets(table)

    def require_signatures(self, users: dict[str, str] | None, grants: list[str] | None = None) -> None:
        """Enforce authorization as Alternator does (`alternator_enforce_authorization`): every
        DynamoDB API request must be SigV4-signed with one of `users` (role -> secret); with
        `grants` (CQL GRANT statements) each operation also needs its permission
        (`alternator_grants`), else every signed role may do anything. None accepts unsigned
        requests again. `/localnodes` never needs a signature."""
        self._users = dict(users) if users is not None else None
        self._grants = Grants(grants) if users is not None and grants is not None else None

    def stats(self) -> dict:
        """Counts of DynamoDB API requests (control and health requests are not counted)."""
        with self._stats_lock:
            return {
                "requests_by_address": dict(self._by_address),
                "requests_by_operation": dict(self._by_operation),
                "faults_injected": dict(self._faults_injected),
                "requests_too_large": self._too_large,
                "write_addresses_by_key": {k: sorted(v) for k, v in self._write_addresses.items()},
            }

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._by_address.clear()
            self._by_operation.clear()
            self._faults_injected.clear()
            self._too_large = 0
            self._write_addresses.clear()

    # --- lifecycle --------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event, on_ready: Callable[[], None] = lambda: None) -> None:
        """Listen on every address until `stop` is set; call `on_ready` once listening."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/", self._health)
        app.router.add_get("/localnodes", self._localnodes)
        app.router.add_post("/", self._dynamodb)
        app.router.add_post("/_faults", self._set_faults_http)
        app.router.add_get("/_stats", self._stats_http)
        app.router.add_post("/_stats/reset", self._reset_stats_http)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        async with ClientSession(timeout=ClientTimeout(total=120)) as self._backend:
            try:
                await self._bind(runner)
                on_ready()
                await stop.wait()
            finally:
                await runner.cleanup()

    async def _bind(self, runner: web.AppRunner) -> None:
        """Bind all addresses to one port; with port 0, retry a few free ports on conflict."""
        chosen = self.port
        for attempt in range(_BIND_ATTEMPTS):
            port = chosen or free_port(self.addresses[0])
            started = []
            try:
                for address in self.addresses:
                    site = web.TCPSite(runner, address, port, ssl_context=self._ssl_context)
                    started.append(site)  # start() registers the site even when binding fails
                    await site.start()
            except OSError:
                for site in started:
                    await site.stop()
                if chosen or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            self.port = port
            return

    # --- Alternator's public endpoints -------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        address = request.transport.get_extra_info("sockname")[0]
        return web.Response(text=f"healthy: {address}:{self.port}")

    async def _localnodes(self, request: web.Request) -> web.Response:
        # Alternator filters by ?dc= and ?rack=; this single-rack cluster ignores them.
        return web.json_response(list(self.addresses))

    async def _dynamodb(self, request: web.Request) -> web.StreamResponse:
        op = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        with self._stats_lock:
            self._by_address[request.transport.get_extra_info("sockname")[0]] += 1
            self._by_operation[op] += 1
        body = await self._body_within_limit(request)
        if body is None:
            with self._stats_lock:
                self._too_large += 1
            return dynamodb_error(413, "PayloadTooLarge",
                                  f"Request content length limit of {self._max_request_bytes} bytes exceeded")
        if self._users is not None:
            refused = check_signature(request, body, self._users)
            if refused is not None:
                return dynamodb_error(400, *refused)
        grants = self._grants
        if grants is not None:
            denied = grants.refusal(signing_key(request), op, tables_of(op, _json(body)), request.remote or "")
            if denied is not None:
                return dynamodb_error(400, "AccessDeniedException", denied)
        faulty = await self._inject_fault(request, op)
        if faulty is not None:
            return faulty
        if op == "BatchWriteItem":
            response = await self._batch_write_item(request, body)
        elif op == "BatchGetItem":
            response = await self._batch_get_item(request, body)
        else:
            response = await self._table_op(request, op, body)
            if op == "CreateTable" and response.status == 200 and grants is not None:
                grants.auto_grant(signing_key(request), _json(body))
        if self._faults.corrupt and self._faults.applies_to(op) and self._rng.random() < self._faults.corrupt:
            self._count_fault("corrupt")
            response.headers["x-amz-crc32"] = str((zlib.crc32(response.body or b"") + 1) % 2**32)
        return response

    async def _body_within_limit(self, request: web.Request) -> bytes | None:
        """The request body, or None when it is over the limit: refused on its Content-Length
        before reading, else once more than the limit was read (Alternator's two checks)."""
        limit = self._max_request_bytes
        if (request.content_length or 0) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _table_op(self, request: web.Request, op: str, body: bytes) -> web.Response:
        """Any operation but BatchWriteItem; table creation and deletion under Alternator's rules."""
        if op not in ("CreateTable", "DeleteTable", "UpdateTable", "TagResource"):
            return await self._forward(request, body)
        parsed = _json(body)
        refusal = self._tablets.refusal(op, parsed)
        if refusal:
            return dynamodb_error(400, "ValidationException", refusal)
        if op in ("CreateTable", "DeleteTable"):
            self._key_names.pop(parsed.get("TableName"), None)
        response = await self._forward(request, body)
        if response.status == 200 and op == "CreateTable":
            self._tablets.created(parsed)
        elif response.status == 200 and op == "DeleteTable":
            self._tablets.deleted(parsed.get("TableName", ""))
        return response

    async def _inject_fault(self, request: web.Request, op: str) -> web.StreamResponse | None:
        faults, rng = self._faults, self._rng
        if not faults.applies_to(op):
            return None
        if rng.random() < faults.slow:
            self._count_fault("slow")
            await asyncio.sleep(faults.slow_seconds)
        if rng.random() < faults.drop:
            self._count_fault("drop")
            request.transport.close()
            # Writing this to the closed transport fails, and aiohttp treats that as a client
            # disconnect: the client sees the connection closed with no response.
            return web.Response()
        if rng.random() < faults.throttle:
            self._count_fault("throttle")
            return dynamodb_error(400, "RequestLimitExceeded",
                                  "Throughput exceeds the current capacity for one or more global secondary indexes")
        if rng.random() < faults.server_error:
            self._count_fault("server_error")
            return dynamodb_error(500, "InternalServerError", "Internal server error: injected")
        return None

    def _count_fault(self, kind: str) -> None:
        with self._stats_lock:
            self._faults_injected[kind] += 1

    async def _batch_write_item(self, request: web.Request, body: bytes) -> web.Response:
        """Alternator's stricter BatchWriteItem: validate the whole batch, then all-or-error."""
        tables = _json(body).get("RequestItems") or {}
        total = sum(len(writes) for writes in tables.values())
        if total > MAX_BATCH_WRITE_ITEMS:
            return dynamodb_error(400, "ValidationException",
                                  f"Too many items in the BatchWriteItem request: {total}, "
                                  f"the limit is {MAX_BATCH_WRITE_ITEMS}")
        for table, writes in tables.items():
            key_names = await self._table_key_names(request, table)
            if key_names is None:
                continue  # unknown table: moto answers ResourceNotFoundException
            seen = set()
            for write in writes:
                put, delete = write.get("PutRequest") or {}, write.get("DeleteRequest") or {}
                item = put.get("Item") or delete.get("Key") or {}
                key = json.dumps([item.get(name) for name in key_names], sort_keys=True)
                if key in seen:
                    return dynamodb_error(400, "ValidationException", "Provided list of item keys contains duplicates")
                seen.add(key)
            if request.transport is None:  # the client hung up while a slow reply was pending
                return dynamodb_error(500, "InternalServerError", "the client went away")
            address = request.transport.get_extra_info("sockname")[0]
            with self._stats_lock:  # which node wrote which key: the test of per-key node affinity
                for key in seen:
                    self._write_addresses.setdefault(f"{table} {key}", set()).add(address)
        if self._faults.applies_to("BatchWriteItem") and self._rng.random() < self._faults.unprocessed:
            return await self._write_half(request, tables)
        response = await self._forward(request, body)
        if response.status == 200 and _json(response.body).get("UnprocessedItems"):
            return dynamodb_error(500, "InternalServerError", "Backend left items unprocessed")
        return response

    async def _batch_get_item(self, request: web.Request, body: bytes) -> web.Response:
        """Every key answered in one response, as Alternator does: the keys moto left
        unprocessed (past its 16 MiB cap) are asked again and their items added."""
        response = await self._forward(request, body)
        answer = _json(response.body)
        left = answer.get("UnprocessedKeys")
        if response.status != 200 or not left:
            return response
        while left:
            again = await self._forward(request, json.dumps({"RequestItems": left}).encode())
            if again.status != 200:
                return again
            more = _json(again.body)
            for table, items in (more.get("Responses") or {}).items():
                answer.setdefault("Responses", {}).setdefault(table, []).extend(items)
            left = more.get("UnprocessedKeys")
        answer["UnprocessedKeys"] = {}
        payload = json.dumps(answer).encode()
        headers = {name: response.headers[name] for name in _RESPONSE_HEADERS if name in response.headers}
        return web.Response(status=200, body=payload, headers={**headers, "x-amz-crc32": str(zlib.crc32(payload))})

    async def _write_half(self, request: web.Request, tables: dict) -> web.Response:
        """Forward the first half of each table's writes; hand back the rest as UnprocessedItems."""
        self._count_fault("unprocessed")
        first = {t: w[:(len(w) + 1) // 2] for t, w in tables.items()}
        rest = {t: w[(len(w) + 1) // 2:] for t, w in tables.items() if len(w) > 1}
        response = await self._forward(request, json.dumps({"RequestItems": first}).encode())
        if response.status != 200:
            return response
        return web.json_response({"UnprocessedItems": rest}, content_type=_JSON_CONTENT_TYPE)

    async def _table_key_names(self, request: web.Request, table: str) -> tuple[str, ...] | None:
        if table not in self._key_names:
            # Reuse the caller's headers so moto answers for the same region and account.
            headers = {k: v for k, v in request.headers.items() if k.lower() != "x-amz-target"}
            headers["X-Amz-Target"] = "DynamoDB_20120810.DescribeTable"
            status, _, body = await self._call_backend(headers, json.dumps({"TableName": table}).encode())
            if status != 200:
                return None
            schema = json.loads(body)["Table"]["KeySchema"]
            self._key_names[table] = tuple(key["AttributeName"] for key in schema)
        return self._key_names[table]

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        op = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        sent = self._number_keys.request(op, _json(body))
        status, headers, payload = await self._call_backend(request.headers, json.dumps(sent).encode())
        kept = {name: headers[name] for name in _RESPONSE_HEADERS if name in headers}
        if status == 200:
            payload = json.dumps(self._number_keys.response(op, sent, _json(payload))).encode()
            kept["x-amz-crc32"] = str(zlib.crc32(payload))
        return web.Response(status=status, body=payload, headers=kept)

    async def _call_backend(self, headers, body: bytes):
        forwarded = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
        if not any(k.lower() == "authorization" for k in forwarded):
            # Alternator without auth takes unsigned requests; moto picks the service from
            # the signature's scope (unsigned would mean S3), so name DynamoDB for it.
            forwarded["Authorization"] = _UNSIGNED_AS_DYNAMODB
        async with self._backend.post(self.backend_url + "/", data=body, headers=forwarded) as response:
            return response.status, response.headers, await response.read()

    # --- test control endpoints --------------------------------------------------------------

    async def _set_faults_http(self, request: web.Request) -> web.Response:
        try:
            faults = self.set_faults(**await request.json())
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(faults))

    async def _stats_http(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset_stats_http(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.json_response(self.stats())


def _json(body: bytes) -> dict:
    """A request or response body as a dict; {} when it is not a JSON object."""
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", required=True, help="moto server URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, default=8000, help="port shared by all addresses (0: any free one)")
    parser.add_argument("--addresses", default=",".join(DEFAULT_ADDRESSES), help="comma-separated loopback addresses")
    args = parser.parse_args(argv)
    front = AlternatorFront(args.backend, tuple(args.addresses.split(",")), args.port)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def announce() -> None:
            print(f"listening on {', '.join(f'{a}:{front.port}' for a in front.addresses)}"
                  f" -> {front.backend_url}", flush=True)

        await front.serve(stop, on_ready=announce)

    asyncio.run(run())


if __name__ == "__main__":
    main()
