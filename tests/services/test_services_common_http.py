"""The lean httpx transport (common/http.py) against a real HTTP server on loopback.

What the callers rely on: httpx's API and, above all, httpx's error meanings - ``ConnectError``
/ ``ConnectTimeout`` / ``PoolTimeout`` only when nothing was sent (payments then knows the PSP
was never reached), everything after the request left is a read/protocol error ("may have been
processed": payments looks the payment up first).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from checkout_services.common import http as lean


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    def __init__(self) -> None:
        self.peers: set[object] = set()  # client (host, port) pairs: one per TCP connection
        self.requests = 0
        self.release = asyncio.Event()
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def echo(request: web.Request) -> web.Response:
            self.requests += 1
            assert request.transport is not None
            self.peers.add(request.transport.get_extra_info("peername"))
            body = await request.read()
            return web.json_response(
                {
                    "method": request.method,
                    "query": request.rel_url.raw_query_string,
                    "body": body.decode(),
                    "key": request.headers.get("Idempotency-Key"),
                    "content_type": request.headers.get("Content-Type"),
                }
            )

        async def chunked(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for part in (b'{"parts": ', b'["a", ', b'"b"]}'):
                await resp.write(part)
            await resp.write_eof()
            return resp

        async def slow(request: web.Request) -> web.Response:
            self.requests += 1
            await self.release.wait()
            return web.json_response({"late": True})

        async def cut(request: web.Request) -> web.Response:
            self.requests += 1
            assert request.transport is not None
            request.transport.close()  # the request arrived (and may have been acted on)
            await asyncio.sleep(0.05)
            return web.json_response({})

        async def status(request: web.Request) -> web.Response:
            return web.json_response({"error": "x"}, status=int(request.match_info["code"]))

        app = web.Application()
        app.router.add_route("*", "/echo", echo)
        app.router.add_get("/chunked", chunked)
        app.router.add_get("/slow", slow)
        app.router.add_post("/cut", cut)
        app.router.add_get("/status/{code}", status)

        self.runner = web.AppRunner(app, keepalive_timeout=0.3)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    s = Server()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def test_json_form_query_and_headers_round_trip(server: Server) -> None:
    async with lean.client() as client:
        r = await client.post(
            f"{server.url}/echo?a=1&b=x%20y",
            json={"amount": 1999},
            headers={"Idempotency-Key": "k-1"},
        )
        assert r.status_code == 200
        got = r.json()
        assert got["query"] == "a=1&b=x%20y"
        assert json.loads(got["body"]) == {"amount": 1999}
        assert got["key"] == "k-1"
        assert got["content_type"] == "application/json"
        assert r.headers["content-type"].startswith("application/json")

        r = await client.post(f"{server.url}/echo", data={"amount": "10", "currency": "eur"})
        assert r.json()["body"] == "amount=10&currency=eur"
        r = await client.get(f"{server.url}/echo")
        assert r.json()["method"] == "GET"


async def test_error_statuses_are_responses_not_exceptions(server: Server) -> None:
    async with lean.client() as client:
        for code in (402, 409, 422, 500, 503):
            r = await client.get(f"{server.url}/status/{code}")
            assert r.status_code == code
            assert r.json() == {"error": "x"}


async def test_chunked_response_body(server: Server) -> None:
    async with lean.client() as client:
        r = await client.get(f"{server.url}/chunked")
        assert r.json() == {"parts": ["a", "b"]}


async def test_keep_alive_reuses_one_connection(server: Server) -> None:
    async with lean.client() as client:
        for _ in range(20):
            assert (await client.get(f"{server.url}/echo")).status_code == 200
    assert len(server.peers) == 1


async def test_idle_connection_closed_by_server_is_not_reused(server: Server) -> None:
    async with lean.client() as client:
        assert (await client.get(f"{server.url}/echo")).status_code == 200
        await asyncio.sleep(1.0)  # the server's keep-alive timeout (0.3 s) closes it
        assert (await client.get(f"{server.url}/echo")).status_code == 200
    assert len(server.peers) == 2


async def test_concurrent_requests_all_answered(server: Server) -> None:
    async with lean.client(max_connections=10) as client:
        got = await asyncio.gather(
            *[client.post(f"{server.url}/echo", json={"i": i}) for i in range(200)]
        )
    assert sorted(json.loads(r.json()["body"])["i"] for r in got) == list(range(200))
    assert len(server.peers) <= 10


async def test_refused_connection_is_connect_error_nothing_sent() -> None:
    port = free_port()  # nobody listens there
    async with lean.client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/echo")


async def test_slow_answer_is_read_timeout_after_sending(server: Server) -> None:
    async with lean.client() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{server.url}/slow", timeout=0.2)
        assert server.requests == 1  # it was sent: a read timeout, never a connect error
        server.release.set()
        # the timed-out connection is dropped, the next request gets a fresh one
        assert (await client.get(f"{server.url}/echo")).status_code == 200


async def test_connection_cut_after_the_request_is_a_transport_error_not_connect(
    server: Server,
) -> None:
    async with lean.client() as client:
        with pytest.raises(httpx.TransportError) as info:
            await client.post(f"{server.url}/cut", json={})
        assert not isinstance(info.value, httpx.ConnectError | httpx.ConnectTimeout)
        assert server.requests == 1
        assert (await client.get(f"{server.url}/echo")).status_code == 200


async def test_pool_limit_waits_then_pool_timeout(server: Server) -> None:
    async with lean.client(max_connections=1) as client:
        first = asyncio.create_task(client.get(f"{server.url}/slow", timeout=5))
        await asyncio.sleep(0.2)
        with pytest.raises(httpx.PoolTimeout):
            await client.get(f"{server.url}/echo", timeout=httpx.Timeout(5, pool=0.2))
        server.release.set()
        assert (await first).json() == {"late": True}
        assert (await client.get(f"{server.url}/echo")).status_code == 200


# -- HTTP/1.1 details against a raw asyncio server (every byte on the wire is the test's) ---------


class RawServer:
    """An HTTP/1.1 server on loopback whose answers are scripted per request; it records each
    request's head and body as received, and counts TCP connections."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for w in self._writers:
            w.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        nth_on_conn = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                headers = {}
                for line in lines[1:]:
                    if b":" in line:
                        k, v = line.split(b":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = b""
                if b"content-length" in headers:
                    body = await reader.readexactly(int(headers[b"content-length"]))
                self.requests.append((lines[0], headers, body))
                nth_on_conn += 1
                reply = await self.answer(lines[0], headers, body, nth_on_conn)
                if reply is None:  # close without an answer
                    writer.close()
                    return
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    writer.close()
                    return
        finally:
            writer.close()


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def test_stale_keep_alive_resends_only_safe_requests() -> None:
    """A reused connection the server closes on receipt (its keep-alive timer fired as the
    request came): GET and keyed POST go again on a new connection; an unkeyed POST may have
    been processed, so it keeps the protocol error (payments looks the payment up)."""

    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return ok() if nth == 1 else None  # the second request on a connection: closed

    async with RawServer(answer) as srv:
        transport = lean.LeanTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get(f"{srv.url}/a")).text == "ok"
            assert (await client.get(f"{srv.url}/b")).text == "ok"  # stale, resent
            assert transport.resent == 1
            assert srv.connections == 2

            r = await client.post(f"{srv.url}/pay", json={}, headers={"Idempotency-Key": "k1"})
            assert r.text == "ok"
            assert transport.resent == 2

            with pytest.raises(httpx.RemoteProtocolError) as info:
                await client.post(f"{srv.url}/pay", json={})
            assert not isinstance(info.value, httpx.ConnectError)
            assert transport.resent == 2
            # the unkeyed POST reached the server once and was not sent again
            assert [r[0] for r in srv.requests].count(b"POST /pay HTTP/1.1") == 3


async def test_a_fresh_connection_closed_without_answer_is_not_resent() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return None

    async with RawServer(answer) as srv:
        transport = lean.LeanTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"{srv.url}/x")
        assert transport.resent == 0
        assert len(srv.requests) == 1


async def test_idle_connections_expire_before_the_servers_keep_alive() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return ok()  # this server never closes an idle connection

    async with RawServer(answer) as srv, lean.client(keepalive_expiry=0.2) as client:
        await client.get(srv.url)
        await client.get(srv.url)
        assert srv.connections == 1  # reused while fresh
        await asyncio.sleep(0.35)
        await client.get(srv.url)
        assert srv.connections == 2  # expired: a new connection


async def test_the_servers_keep_alive_timeout_header_shortens_the_expiry() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return ok(extra=b"Keep-Alive: timeout=1\r\n")

    async with RawServer(answer) as srv, lean.client(keepalive_expiry=60) as client:
        await client.get(srv.url)
        await asyncio.sleep(0.7)  # past timeout=1 minus the margin (0.5 s)
        await client.get(srv.url)
        assert srv.connections == 2


async def test_data_on_an_idle_connection_retires_it() -> None:
    """A server may send 408 Request Timeout on an idle connection before closing it."""
    seen: list[asyncio.StreamWriter] = []

    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return ok()

    async with RawServer(answer) as srv, lean.client() as client:
        await client.get(srv.url)
        for w in srv._writers:
            seen.append(w)
            w.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0.1)
        assert (await client.get(srv.url)).text == "ok"
        assert srv.connections == 2
    assert seen


async def test_head_with_content_length_does_not_wait_for_a_body() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        if line.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n"
        return ok(b"after")

    async with RawServer(answer) as srv, lean.client() as client:
        started = asyncio.get_running_loop().time()
        r = await client.head(srv.url, timeout=3)
        assert asyncio.get_running_loop().time() - started < 1.0
        assert r.status_code == 200
        assert r.headers["content-length"] == "1234"
        assert r.content == b""
        # the connection stays usable: the next answer is not read as the HEAD's body
        assert (await client.get(srv.url)).text == "after"
        assert srv.connections == 1


async def test_interim_1xx_answers_are_not_final() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            + ok(b'{"final": true}', b"Content-Type: application/json\r\n")
        )

    async with RawServer(answer) as srv, lean.client() as client:
        r = await client.post(srv.url, content=b"payload", headers={"Expect": "100-continue"})
        assert r.status_code == 200
        assert r.json() == {"final": True}
        assert "link" not in r.headers
        assert srv.requests[0][2] == b"payload"
        assert (await client.get(srv.url)).status_code == 200
        assert srv.connections == 1


async def test_streamed_request_body_is_sent_with_content_length_not_chunked() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        return ok(body)

    async def parts() -> AsyncIterator[bytes]:
        for p in (b"amount=", b"1999", b"&currency=eur"):
            yield p

    async with RawServer(answer) as srv, lean.client() as client:
        r = await client.post(srv.url, content=parts())
        assert r.text == "amount=1999&currency=eur"
        _, headers, _body = srv.requests[0]
        assert b"transfer-encoding" not in headers
        assert headers[b"content-length"] == b"24"
        # framing held: the next request on the same connection is read correctly
        r = await client.post(srv.url, content=b"next")
        assert r.text == "next"
        assert srv.connections == 1
        r = await client.post(srv.url)  # no body: Content-Length 0
        assert r.text == ""
        assert srv.requests[-1][1][b"content-length"] == b"0"
        await client.get(srv.url)
        assert b"content-length" not in srv.requests[-1][1]


async def test_response_framing_chunked_length_and_close_delimited() -> None:
    async def answer(line: bytes, h: Any, body: bytes, nth: int) -> bytes | None:
        path = line.split(b" ")[1]
        if path == b"/chunked":
            return (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
        if path == b"/close":
            return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close"
        return ok(b"fixed")

    async with RawServer(answer) as srv, lean.client() as client:
        assert (await client.get(f"{srv.url}/chunked")).text == "abcde"
        assert (await client.get(f"{srv.url}/length")).text == "fixed"
        assert srv.connections == 1
        assert (await client.get(f"{srv.url}/close")).text == "until-close"
        assert (await client.get(f"{srv.url}/length")).text == "fixed"
        assert srv.connections == 2
