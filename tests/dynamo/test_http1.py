"""The data plane's HTTP/1.1 transport (`http1.Origin`): connections kept and dropped, replies
in pieces, silence, and https through a proxy's CONNECT tunnel.

The peers are real servers: aiohttp's HTTP/1.1 server (in the test's own event loop) for what
a server may do on the wire, and the Alternator front over DynamoDB Local, with TLS from a
CA made in the test, behind `testbed/connect_proxy.py` for the tunnel.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time

import orjson
import pytest
from aiobotocore.credentials import AioCredentials
from aiohttp import web

from testbed import seed
from testbed.alternator_front import AlternatorFront
from testbed.connect_proxy import ConnectProxy
from testbed.ports import free_port
from testbed.tls import make_ca, make_server_certificate
from tests.support.cli_runs import unique
from transforms.dynamo.aws_json import TABLE_TARGET_PREFIX, open_endpoint
from transforms.dynamo import http1
from transforms.dynamo.http1 import HttpConnectionError, Origin


@contextlib.asynccontextmanager
async def _server(handler):
    """aiohttp's server on 127.0.0.1 answering every POST with `handler`; yields (url, peers),
    peers: the client port of each request, so a new port is a new connection."""
    peers: list[int] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername")[1])
        return await handler(request)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", peers
    finally:
        await runner.cleanup()


def _exchange(handler, requests: int = 1, **origin_options):
    """Send `requests` POSTs one after another; (replies or the error raised, peers, seconds taken)."""
    async def run():
        async with _server(handler) as (url, peers):
            origin = Origin(url, None, 4, **origin_options)
            started = time.monotonic()
            try:
                replies = [await origin.post("/", {"X-Test": "1"}, b'{"n": %d}' % i) for i in range(requests)]
            except HttpConnectionError as exc:
                replies = exc
            finally:
                origin.close()
            return replies, peers, time.monotonic() - started
    return asyncio.run(run())


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=await request.read(), headers={"X-Seen": request.headers.get("X-Test", "")})


def test_one_connection_carries_request_after_request(monkeypatch):
    monkeypatch.delenv("HTTP_PROXY", raising=False)
    replies, peers, _ = _exchange(_echo, requests=20)
    assert [reply.body for reply in replies] == [b'{"n": %d}' % i for i in range(20)]
    assert {reply.status for reply in replies} == {200} and replies[0].headers["x-seen"] == "1"
    assert len(set(peers)) == 1


def test_a_reply_saying_connection_close_is_not_reused():
    async def closing(request):
        return web.Response(body=b"{}", headers={"Connection": "close"})

    replies, peers, _ = _exchange(closing, requests=3)
    assert [reply.body for reply in replies] == [b"{}"] * 3
    assert len(set(peers)) == 3


def test_a_chunked_reply_is_read_whole():
    async def chunked(request):
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"Items": [', b'1, 2', b"]}"):
            await response.write(part)
        await response.write_eof()
        return response

    (reply,), _, _ = _exchange(chunked)
    assert reply.headers["transfer-encoding"] == "chunked" and orjson.loads(reply.body) == {"Items": [1, 2]}


def test_a_silent_server_is_given_up_on_after_the_silence_allowed():
    async def silent(request):
        await asyncio.sleep(1.5)
        return web.Response(body=b"{}")

    error, _, seconds = _exchange(silent, silence_seconds=0.3)
    assert isinstance(error, HttpConnectionError) and "no reply for 0.3 s" in str(error)
    assert 0.3 <= seconds < 3


def test_a_connection_closed_before_the_reply_is_a_connection_error():
    async def hang_up(request):
        request.transport.close()
        await asyncio.sleep(0.2)
        return web.Response(body=b"{}")

    error, _, _ = _exchange(hang_up)
    assert isinstance(error, HttpConnectionError) and "closed the connection" in str(error)


def test_nothing_listening_is_a_connection_error_naming_the_address():
    port = free_port()  # released: nothing listens there

    async def run():
        origin = Origin(f"http://127.0.0.1:{port}/", None, 1)
        with pytest.raises(HttpConnectionError, match=f"could not connect to 127.0.0.1:{port}"):
            await origin.post("/", {}, b"{}")
    asyncio.run(run())


def test_a_connection_not_accepted_in_time_is_a_connection_error_saying_it_timed_out(monkeypatch):
    """A listener whose accept queue is full: Linux drops the next SYN, so connect() hangs, as
    it does to a firewalled host; the error names the address and the timeout, not an empty ''."""
    monkeypatch.setattr(http1, "CONNECT_SECONDS", 0.3)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    try:
        for _ in range(4):  # fill the accept queue (never accepted)
            waiting = socket.socket()
            waiting.setblocking(False)
            waiting.connect_ex(("127.0.0.1", port))
            queued.append(waiting)

        async def run():
            origin = Origin(f"http://127.0.0.1:{port}/", None, 1)
            started = time.monotonic()
            with pytest.raises(HttpConnectionError, match=f"could not connect to 127.0.0.1:{port}: TimeoutError"):
                await origin.post("/", {}, b"{}")
            return time.monotonic() - started
        assert 0.3 <= asyncio.run(run()) < 5
    finally:
        for waiting in queued:
            waiting.close()
        listener.close()


@pytest.fixture(scope="module")
def https_source(dynamodb_local, tmp_path_factory):
    """DynamoDB Local behind an HTTPS front whose certificate a test CA signed; (front, CA context)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder)
    front = AlternatorFront(dynamodb_local.endpoint, ("127.0.0.1",),
                            ssl_context=make_server_certificate(folder, ca, ("127.0.0.1",), "node").server_context())
    front.start()
    yield front, ssl.create_default_context(cafile=str(ca[0].cert_path))
    front.stop()


def _scan_through(url: str, tls: ssl.SSLContext, table: str, pages: int) -> list[int]:
    async def run():
        async with open_endpoint(url, TABLE_TARGET_PREFIX, "us-east-1", AioCredentials("test", "test"), tls,
                                 4) as endpoint:
            body = orjson.dumps({"TableName": table, "Limit": 5})
            return [(await endpoint.call("Scan", body))["Count"] for _ in range(pages)]
    return asyncio.run(run())


@pytest.mark.integration
def test_https_goes_through_the_proxy_s_connect_tunnel_with_its_credentials(dynamodb_local, https_source,
                                                                            monkeypatch):
    """HTTPS_PROXY as a corporate network sets it, with a user and a password (URL-encoded in
    the proxy's URL, as curl and the SDK read them): one tunnel carries every request."""
    front, tls = https_source
    table = unique("tunnel")
    seed.create_table(dynamodb_local.endpoint, table, **seed.keyed_by("pk"))
    seed.put_items(dynamodb_local.endpoint, table, [{"pk": {"S": f"k{i}"}} for i in range(12)])
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy(credentials=("migrator", "p@ss word")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://migrator:p%40ss%20word@127.0.0.1:{proxy.port}")
        counts = _scan_through(front.url, tls, table, pages=3)
        monkeypatch.setenv("HTTPS_PROXY", f"http://migrator:wrong@127.0.0.1:{proxy.port}")
        with pytest.raises(HttpConnectionError, match="407 Proxy Authentication Required"):
            _scan_through(front.url, tls, table, pages=1)
    assert counts == [5, 5, 5]
    assert proxy.tunnels == [f"127.0.0.1:{front.port}"] and proxy.refused == 1
