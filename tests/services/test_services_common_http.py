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
