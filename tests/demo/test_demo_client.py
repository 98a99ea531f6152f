"""The load generator behaves like a sane client, against a real HTTP server on loopback:
it honours Retry-After (waits at least that long), backs off with a bound, times a hung attempt
out and retries with the same Idempotency-Key, gives up rather than sleep past its budget, and
reports the succeeded attempt's latency apart from the end-to-end one."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from checkout_demo.load import Checkout, LoadGen, Router

Answer = Callable[[int], tuple[int, dict[str, str], dict[str, object]] | None]
"""n-th request (1-based) -> (status, headers, JSON body), or None to never answer."""


@asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[tuple[str, list[tuple[float, str]]]]:
    """A minimal HTTP/1.1 server; yields its URL and (time, Idempotency-Key) per request."""
    seen: list[tuple[float, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                seen.append((time.monotonic(), headers.get("idempotency-key", "")))
                reply = answer(len(seen))
                if reply is None:
                    await asyncio.sleep(3600)
                    return
                status, extra, body = reply
                payload = json.dumps(body).encode()
                kind = "application/json" if status == 201 else "application/problem+json"
                out = [f"HTTP/1.1 {status} X", f"content-type: {kind}"]
                out += [f"{k}: {v}" for k, v in extra.items()]
                out.append(f"content-length: {len(payload)}")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        srv.close()


def a_load(url: str, **kw: float) -> LoadGen:
    router = Router(lambda: {"US": "us-east-1"}, lambda: {"us-east-1": url})
    load = LoadGen(router, rate=1.0, duplicate_share=0.0, concurrent_share=0.0, **kw)  # type: ignore[arg-type]
    load.t0 = time.monotonic()
    return load


async def run_one(load: LoadGen) -> Checkout:
    c = Checkout("c1", "US", load.now(), [{"sku": "tee", "quantity": 1}])
    async with httpx.AsyncClient() as client:
        await load._checkout(client, c, random.Random(1))
    return c


FENCING = {"type": "https://checkout.example/problems/market-fencing"}


async def test_retry_after_is_honoured_and_the_attempt_latency_reported() -> None:
    def answer(n: int) -> tuple[int, dict[str, str], dict[str, object]]:
        if n == 1:
            return 503, {"Retry-After": "1"}, FENCING
        return 201, {}, {"total": 2199}

    async with server(answer) as (url, seen):
        c = await run_one(a_load(url))
    assert c.outcome == "acknowledged", c
    assert c.attempts == 2
    assert seen[1][0] - seen[0][0] >= 1.0  # waited what the server asked
    assert seen[0][1] == seen[1][1] == "demo-c1"  # the same key on the retry
    assert c.attempt_ms is not None
    assert c.latency_ms is not None
    assert c.attempt_ms < 500 < c.latency_ms  # the succeeded attempt alone vs end to end


async def test_backoff_is_bounded() -> None:
    load = a_load("http://unused")
    rng = random.Random(5)
    waits = [load.backoff(n, rng) for n in range(1, 40)]
    assert all(0 <= w <= load.backoff_cap_s for w in waits)
    assert max(load.backoff(1, rng) for _ in range(200)) <= load.backoff_base_s


async def test_a_hung_attempt_times_out_and_is_retried_with_the_same_key() -> None:
    def answer(n: int) -> tuple[int, dict[str, str], dict[str, object]] | None:
        return None if n == 1 else (201, {}, {"total": 2199})

    async with server(answer) as (url, seen):
        began = time.monotonic()
        c = await run_one(a_load(url, request_timeout_s=0.5))
    assert c.outcome == "acknowledged", c
    assert [k for _, k in seen] == ["demo-c1", "demo-c1"]
    assert time.monotonic() - began < 3.0  # one 0.5 s timeout and a short backoff, no more


async def test_it_gives_up_instead_of_sleeping_past_its_budget() -> None:
    def answer(n: int) -> tuple[int, dict[str, str], dict[str, object]]:
        return 503, {"Retry-After": "30"}, {"type": "https://checkout.example/problems/market-down"}

    async with server(answer) as (url, seen):
        began = time.monotonic()
        c = await run_one(a_load(url, retry_budget_s=5.0))
    assert c.outcome == "failed"
    assert c.reason == "market-down"
    assert len(seen) == 1
    assert time.monotonic() - began < 2.0  # did not sleep 30 s to fail afterwards
