"""HTTP/1.1 POSTs to one origin over kept-alive connections: the data plane's transport.

Why our own and not aiohttp: the data plane sends one small POST after another (a
BatchWriteItem of 25 items, a Scan page, a GetRecords of an idle shard), so what a
request costs beyond its bytes is paid per item. `python -m bench.http_client` sends the
same signed requests to DynamoDB Local through this module, through aiohttp and over a
bare asyncio stream: aiohttp's general machinery cost more CPU than the request's own
bytes and signature (figures: docs/design.md, Data plane). This module does what those
requests need and no more: a pool of connections, a request written in one piece, and
the reply parsed as it arrives by llhttp (`httptools`, Node's HTTP parser: status,
headers, Content-Length or chunked bodies, keep-alive).

What it keeps from a general client:

* Connections: at most `max_connections` at once, kept alive and reused while the server
  keeps them (a reply with `Connection: close`, or HTTP/1.0 without keep-alive, closes
  it); one that fails or is closed under a request raises `HttpConnectionError`, which
  the retry policy retries as a dropped connection, as the SDK does.
* Timeouts, as the SDK clients': 10 s to connect, 60 s without a byte of the reply.
* TLS for an https origin, with the caller's `ssl.SSLContext` and the host name checked.
* Proxies from HTTP_PROXY / HTTPS_PROXY / NO_PROXY (`urllib.request.getproxies`,
  `proxy_bypass`, read once per origin): an http origin through the proxy in absolute
  form (RFC 9112 section 3.2.2), an https origin through a CONNECT tunnel (RFC 9110
  section 9.3.6), the proxy URL's user and password as Basic `Proxy-Authorization`.
"""
from __future__ import annotations

import asyncio
import base64
import re
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass

import httptools

__all__ = ["HttpConnectionError", "Origin", "Reply"]

CONNECT_SECONDS = 10.0
SILENCE_SECONDS = 60.0
_TUNNEL_OPEN = re.compile(rb"HTTP/1\.[01] 2\d\d\b")  # any 2xx to CONNECT opens the tunnel (RFC 9110 9.3.6)


class HttpConnectionError(ConnectionError):
    """No reply: the connection could not be made, was closed or broke, or went silent."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection; a request at a time. Its reply's parts come from llhttp's callbacks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, silence_seconds: float):
        self._loop = loop
        self._silence_seconds = silence_seconds
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None
        self._heard = 0.0  # when the last bytes of the reply arrived
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self._transport = transport
        self.reusable = True

    def data_received(self, data: bytes) -> None:
        self._heard = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"the reply is not HTTP/1.1 ({exc})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(f"the server closed the connection ({exc})" if exc else "the server closed the connection")

    # llhttp's callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._stop_timer()
        self.reusable = self.reusable and self._parser.should_keep_alive()
        reply = Reply(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = {}, []
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    async def exchange(self, request: bytes) -> Reply:
        """Send `request` (head and body, in one piece) and wait for its whole reply."""
        self._waiter = self._loop.create_future()
        self._heard = self._loop.time()
        self._timer = self._loop.call_at(self._heard + self._silence_seconds, self._check_silence)
        self._transport.write(request)
        return await self._waiter

    def _check_silence(self) -> None:
        quiet_until = self._heard + self._silence_seconds
        if self._loop.time() >= quiet_until:
            self._timer = None
            self._fail(f"no reply for {self._silence_seconds:g} s")
            self.close()
        else:
            self._timer = self._loop.call_at(quiet_until, self._check_silence)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, why: str) -> None:
        self.reusable = False
        self._stop_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(HttpConnectionError(why))

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class Origin:
    """POSTs to one scheme://host:port, over at most `max_connections` kept-alive connections;
    use it on the event loop it was created on, and `close` it."""

    def __init__(self, url: str, tls: ssl.SSLContext | None, max_connections: int,
                 silence_seconds: float = SILENCE_SECONDS):
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._tls = (tls or ssl.create_default_context()) if self._https else None
        self._silence_seconds = silence_seconds
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._proxy = _proxy_for(parts)
        authority = parts.netloc.rpartition("@")[2]
        # An http origin through a proxy is asked in absolute form; otherwise by its path.
        self._target = f"{parts.scheme}://{authority}" if self._proxy and not self._https else ""
        self._host_header = f"Host: {authority}\r\n"
        self._proxy_header = (f"Proxy-Authorization: {self._proxy.authorization}\r\n"
                              if self._proxy and not self._https and self._proxy.authorization else "")

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """POST `body` to `path` with `headers` (Content-Length is added, and Host unless `headers`
        has "host", as a SigV4 signer adds and signs it)."""
        host = "" if "host" in headers else self._host_header
        head = "".join([f"POST {self._target}{path} HTTP/1.1\r\n", host, self._proxy_header,
                        *[f"{name}: {value}\r\n" for name, value in headers.items()],
                        f"Content-Length: {len(body)}\r\n\r\n"])
        request = head.encode("latin-1") + body
        async with self._slots:
            connection = self._kept() or await self._connect()
            try:
                reply = await connection.exchange(request)
            except BaseException:
                connection.close()
                raise
            if connection.reusable:
                self._idle.append(connection)
            else:
                connection.close()
            return reply

    def _kept(self) -> _Connection | None:
        """An idle connection the server has not closed meanwhile, if any."""
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(loop, self._silence_seconds)
        try:
            await asyncio.wait_for(self._open(loop, connection), CONNECT_SECONDS)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            where = f"{self._host}:{self._port}" + (f" through the proxy {self._proxy.host}:{self._proxy.port}"
                                                    if self._proxy else "")
            raise HttpConnectionError(f"could not connect to {where}: {str(exc) or type(exc).__name__}") from exc
        return connection

    async def _open(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        if self._proxy is None:
            await loop.create_connection(lambda: connection, self._host, self._port, ssl=self._tls,
                                         server_hostname=self._host if self._tls else None)
        elif not self._https:
            await loop.create_connection(lambda: connection, self._proxy.host, self._proxy.port)
        else:
            await self._tunnel(loop, connection)

    async def _tunnel(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        """A CONNECT tunnel through the proxy to the origin, then TLS to the origin inside it."""
        transport, opener = await loop.create_connection(lambda: _TunnelOpener(loop), self._proxy.host,
                                                         self._proxy.port)
        try:
            authority = f"{self._host}:{self._port}"
            auth = f"Proxy-Authorization: {self._proxy.authorization}\r\n" if self._proxy.authorization else ""
            transport.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{auth}\r\n".encode("latin-1"))
            status_line = await opener.answer
            if not _TUNNEL_OPEN.match(status_line):
                raise ConnectionRefusedError(f"the proxy answered CONNECT with {status_line.decode('latin-1')[:80]!r}")
            tls_transport = await loop.start_tls(transport, opener, self._tls, server_hostname=self._host)
        except BaseException:
            transport.close()
            raise
        tls_transport.set_protocol(connection)
        connection.connection_made(tls_transport)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class _TunnelOpener(asyncio.Protocol):
    """The proxy's answer to CONNECT: `answer` is its status line once the head has come."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.answer = loop.create_future()
        self._head = b""

    def data_received(self, data: bytes) -> None:
        self._head += data
        if b"\r\n\r\n" in self._head and not self.answer.done():
            self.answer.set_result(self._head.split(b"\r\n", 1)[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(ConnectionResetError("the proxy closed the connection before answering CONNECT"))


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None  # a Proxy-Authorization value, from the proxy URL's user and password


def _proxy_for(origin: urllib.parse.SplitResult) -> _Proxy | None:
    """The proxy the environment names for this origin (None: direct), as the SDK reads it."""
    if urllib.request.proxy_bypass(origin.hostname or ""):
        return None
    url = urllib.request.getproxies().get(origin.scheme)
    if not url:
        return None
    proxy = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    authorization = None
    if proxy.username is not None:
        pair = f"{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return _Proxy(proxy.hostname or "", proxy.port or 80, authorization)
