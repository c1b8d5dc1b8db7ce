"""An HTTP proxy that only tunnels: CONNECT, as a corporate proxy in front of AWS's https endpoints.

It behaves as RFC 9110 section 9.3.6 says a proxy answers CONNECT: it opens a TCP
connection to the request target (host:port), answers `200` once that is open, and from
then on relays bytes both ways until either side closes; a target it cannot reach gets
`502`. With `credentials` it asks for them first, as RFC 9110 section 11.7.1 says
(`407 Proxy Authentication Required` with `Proxy-Authenticate: Basic`), and accepts only
`Proxy-Authorization: Basic base64(user:password)` (RFC 7617). It records the targets it
tunnelled to. It runs its own event loop in a thread and listens on 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import base64
import threading


class ConnectProxy:
    def __init__(self, credentials: tuple[str, str] | None = None):
        self._expected = (None if credentials is None else
                          "Basic " + base64.b64encode(":".join(credentials).encode()).decode("ascii"))
        self.tunnels: list[str] = []
        self.refused = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="connect-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ConnectProxy":
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (line.partition(":") for line in head[1:] if line)}
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Length: 0\r\n\r\n")
                return
            if self._expected is not None and headers.get("proxy-authorization") != self._expected:
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"proxy\"\r\nContent-Length: 0\r\n\r\n")
                return
            host, _, port = target.rpartition(":")
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await asyncio.gather(_relay(reader, upstream_writer), _relay(upstream_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
