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

HTTP/1.1 details it gets right (RFC 9112 / 9110):

* **Idle expiry.** A keep-alive connection idle for ``keepalive_expiry`` seconds (default
  below uvicorn's 5 s keep-alive timeout, and below a server's own ``Keep-Alive: timeout=N``)
  is closed, not reused: a connection the server is closing at that moment would otherwise
  take a request and drop it (``RemoteProtocolError``, which payments must treat as an
  ambiguous outcome). Data or a close arriving on an idle connection retires it too.
* **Stale connection retry.** When a *reused* connection closes before any byte of the answer,
  the request is sent again on a new connection only if that is safe: an idempotent method
  (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or a request carrying an ``Idempotency-Key``. Any
  other request keeps the error: it may have been processed.
* **Request framing.** The body is read and sent with ``Content-Length``; a
  ``Transfer-Encoding: chunked`` that httpx sets for a streamed body is dropped (the body is
  not sent chunked).
* **HEAD** answers end at their header block, whatever ``Content-Length`` says.
* **1xx** answers (100 Continue, 103 Early Hints) are interim: the final answer follows.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Final, cast

import httptools
import httpx

from checkout_services.common import tracing

DEFAULT_TIMEOUT: Final = 5.0
KEEPALIVE_EXPIRY: Final = 4.0
"""Seconds an idle connection is kept: below uvicorn's default keep-alive timeout (5 s)."""
EXPIRY_MARGIN: Final = 0.5
"""How much sooner than a server's announced ``Keep-Alive: timeout`` the client lets go."""
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_FRAMING: Final = frozenset({b"content-length", b"transfer-encoding"})


class _StaleConnection(httpx.RemoteProtocolError):
    """A reused connection closed before any byte of the answer came."""


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.used = 0
        """Requests answered on this connection so far."""
        self.idle_since = 0.0
        self.expiry = KEEPALIVE_EXPIRY
        self.reset(b"GET")

    def reset(self, method: bytes) -> None:
        # One parser per request: a HEAD answer ends at its headers while llhttp, which does
        # not know the method, would wait for the body its Content-Length announces.
        self.parser: Any = httptools.HttpResponseParser(self)
        self.head = method == b"HEAD"
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
        if self.waiter is None or self.complete:
            # Nothing was asked (an idle connection: a 408 before a close, say): retire it.
            self.close()
            return
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
            error = _StaleConnection if self.used else httpx.RemoteProtocolError
            waiter.set_exception(error("server disconnected without sending a response"))
        else:
            waiter.set_exception(httpx.ReadError("connection closed mid-response"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status < 200:
            return  # interim (1xx): its message completes, the final answer follows
        self.headers_done = True
        if self.head:
            self.keep_alive = bool(self.parser.should_keep_alive())
            self._done()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200:
            self.headers.clear()  # 100 Continue, 103 Early Hints: not the answer
            return
        if self.complete:
            return  # HEAD: already answered at its headers
        # llhttp answers this only until the parser moves on to the next message
        self.keep_alive = bool(self.parser.should_keep_alive())
        self._done()

    # -- helpers -----------------------------------------------------------------------------
    def _done(self) -> None:
        self.complete = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _has_length(self) -> bool:
        for name, value in self.headers:
            low = name.lower()
            if low == b"content-length" or (
                low == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                return True
        return False

    def announced_expiry(self) -> float | None:
        """The server's ``Keep-Alive: timeout=N``, if it sent one."""
        for name, value in self.headers:
            if name.lower() != b"keep-alive":
                continue
            for part in value.split(b","):
                key, _, number = part.strip().partition(b"=")
                if key.strip().lower() == b"timeout":
                    try:
                        return float(number.strip())
                    except ValueError:
                        return None
        return None

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self, now: float) -> bool:
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        return now - self.idle_since < self.expiry


def _safe_to_resend(request: httpx.Request) -> bool:
    return request.method.encode() in IDEMPOTENT or "idempotency-key" in request.headers


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers, framed by ``Content-Length`` (never chunked: the body is
    sent whole)."""
    out = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    framed = False
    for name, value in request.headers.raw:
        if name.lower() in _FRAMING:
            framed = True
            continue
        out += (name, b": ", value, b"\r\n")
    if body or framed:
        out += (b"Content-Length: ", str(len(body)).encode(), b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 over asyncio, at most ``max_connections`` per origin."""

    def __init__(
        self,
        *,
        max_connections: int = 200,
        max_keepalive: int = 100,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self.resent = 0
        """Requests sent again after a stale keep-alive connection dropped them."""
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
        except TimeoutError as exc:
            raise httpx.PoolTimeout(f"no free connection to {host}:{port}") from exc
        try:
            body = await request.aread()
            try:
                return await self._send(request, body, origin, timeouts)
            except _StaleConnection:
                if not _safe_to_resend(request):
                    raise
                self.resent += 1
                return await self._send(request, body, origin, timeouts, fresh=True)
        finally:
            slots.release()

    async def _connect(self, origin: tuple[str, int], limit: float | None, *, fresh: bool) -> _Conn:
        idle = self._idle.get(origin)
        now = asyncio.get_running_loop().time()
        while idle and not fresh:
            conn = idle.pop()
            if conn.reusable(now):
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                _, conn = await loop.create_connection(_Conn, origin[0], origin[1])
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {origin[0]}:{origin[1]} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {origin[0]}:{origin[1]}: {exc}") from exc
        return conn

    async def _send(
        self,
        request: httpx.Request,
        body: bytes,
        origin: tuple[str, int],
        timeouts: dict[str, float | None],
        *,
        fresh: bool = False,
    ) -> httpx.Response:
        conn = await self._connect(origin, timeouts.get("connect", DEFAULT_TIMEOUT), fresh=fresh)
        method = request.method.encode()
        conn.reset(method)
        loop = asyncio.get_running_loop()
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        conn.transport.write(_head(request, body) + body)
        done = False
        try:
            async with asyncio.timeout(timeouts.get("read", DEFAULT_TIMEOUT)):
                await conn.waiter
            done = True
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no response from {origin[0]}:{origin[1]} in time") from exc
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
        self._release(conn, origin, loop.time())
        return response

    def _release(self, conn: _Conn, origin: tuple[str, int], now: float) -> None:
        conn.used += 1
        announced = conn.announced_expiry()
        conn.expiry = self.keepalive_expiry
        if announced is not None:
            conn.expiry = min(conn.expiry, announced - EXPIRY_MARGIN)
        conn.idle_since = now
        if conn.keep_alive and conn.reusable(now):
            idle = self._idle.setdefault(origin, collections.deque())
            if len(idle) < self.max_keepalive:
                idle.append(conn)
                return
        conn.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        if self._fallback is not None:
            await self._fallback.aclose()


def client(
    *,
    max_connections: int = 200,
    max_keepalive: int = 100,
    timeout: float = 5.0,
    keepalive_expiry: float = KEEPALIVE_EXPIRY,
) -> httpx.AsyncClient:
    """The app's one shared client, on the lean transport; on httpx's own transport when
    tracing is on (OpenTelemetry's httpx instrumentation wraps that one: client spans and the
    ``traceparent`` header on every call)."""
    if tracing.enabled():
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive,
            keepalive_expiry=keepalive_expiry,
        )
        return httpx.AsyncClient(limits=limits, timeout=timeout)
    return httpx.AsyncClient(
        transport=LeanTransport(
            max_connections=max_connections,
            max_keepalive=max_keepalive,
            keepalive_expiry=keepalive_expiry,
        ),
        timeout=timeout,
    )
