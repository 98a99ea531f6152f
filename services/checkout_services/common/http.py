"""A lean HTTP/1.1 transport for the services' one shared ``httpx.AsyncClient``.

httpx's default transport (httpcore over anyio) costs about a millisecond of CPU per call, and
its connection pool scans every queued request on each state change, so its cost per call grows
with the number of calls in flight - exactly when a service is busiest. This transport keeps
httpx's API (the adapters and activities see ``httpx.Response`` and httpx's exceptions) and does
the wire work with an asyncio ``Protocol`` and the C parser ``httptools`` (already installed
with uvicorn's standard extras): keep-alive connections per origin, a bound on open connections
per origin, and httpx's timeouts (connect, read, pool).

Errors keep httpx's meaning, which the callers depend on to stay safe:
``ConnectError`` / ``ConnectTimeout`` / ``PoolTimeout`` only when the request was never sent;
anything after the first byte went out (timeout, reset, close, garbage) is ``ReadTimeout``,
``ReadError`` or ``RemoteProtocolError``, i.e. "may have been processed". Plain ``http`` only:
any other scheme goes to httpx's default transport.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import httptools
import httpx

from checkout_services.common import tracing

DEFAULT_TIMEOUT = 5.0


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.parser: Any = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.complete = False
        self.headers_done = False
        self.received = False
        self.keep_alive = False

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - we never ask for an upgrade
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.complete and not self._has_length():
            # a body delimited by the connection closing: that close ends it
            self.complete = True
            waiter.set_result(None)
        elif not self.received:
            waiter.set_exception(
                httpx.RemoteProtocolError("server disconnected without sending a response")
            )
        else:
            waiter.set_exception(httpx.ReadError("connection closed mid-response"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        # llhttp answers this only until the parser moves on to the next message
        self.keep_alive = bool(self.parser.should_keep_alive())
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- helpers -----------------------------------------------------------------------------
    def _has_length(self) -> bool:
        for name, value in self.headers:
            low = name.lower()
            if low == b"content-length" or (
                low == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return True
        return False

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio, at most ``max_connections`` per origin."""

    def __init__(self, *, max_connections: int = 200, max_keepalive: int = 100) -> None:
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self._idle: dict[tuple[str, int], collections.deque[_Conn]] = {}
        self._slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._fallback: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport()
            return await self._fallback.handle_async_request(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        host = url.host
        port = url.port or 80
        origin = (host, port)
        slots = self._slots.get(origin)
        if slots is None:
            slots = self._slots[origin] = asyncio.Semaphore(self.max_connections)
        try:
            async with asyncio.timeout(timeouts.get("pool", DEFAULT_TIMEOUT)):
                await slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"no free connection to {host}:{port}") from None
        try:
            return await self._send(request, origin, timeouts)
        finally:
            slots.release()

    async def _connect(self, origin: tuple[str, int], limit: float | None) -> _Conn:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable():
                return conn
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(_Conn, origin[0], origin[1])
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connect to {origin[0]}:{origin[1]} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {origin[0]}:{origin[1]}: {exc}") from None
        return conn

    async def _send(
        self, request: httpx.Request, origin: tuple[str, int], timeouts: dict[str, float | None]
    ) -> httpx.Response:
        body = await request.aread()
        conn = await self._connect(origin, timeouts.get("connect", DEFAULT_TIMEOUT))
        head = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        conn.reset()
        loop = asyncio.get_running_loop()
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(b"".join(head) + body)
        done = False
        try:
            async with asyncio.timeout(timeouts.get("read", DEFAULT_TIMEOUT)):
                await conn.waiter
            done = True
        except TimeoutError:
            raise httpx.ReadTimeout(f"no response from {origin[0]}:{origin[1]} in time") from None
        finally:
            conn.waiter = None
            if not done:
                conn.close()  # a response may still arrive on it: never reuse
        response = httpx.Response(
            conn.status,
            headers=conn.headers,
            content=b"".join(conn.body),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )
        if conn.keep_alive and conn.reusable():
            idle = self._idle.setdefault(origin, collections.deque())
            if len(idle) < self.max_keepalive:
                idle.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return response

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        if self._fallback is not None:
            await self._fallback.aclose()


def client(
    *, max_connections: int = 200, max_keepalive: int = 100, timeout: float = 5.0
) -> httpx.AsyncClient:
    """The app's one shared client, on the lean transport; on httpx's own transport when
    tracing is on (OpenTelemetry's httpx instrumentation wraps that one: client spans and the
    ``traceparent`` header on every call)."""
    if tracing.enabled():
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive
        )
        return httpx.AsyncClient(limits=limits, timeout=timeout)
    return httpx.AsyncClient(
        transport=LeanTransport(max_connections=max_connections, max_keepalive=max_keepalive),
        timeout=timeout,
    )
