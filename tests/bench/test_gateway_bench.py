"""Benchmark: what the checkout gateway adds to a request, under a 200 req/s open loop.

Setup (real processes on loopback): two regions' gateways (EU, US) on one Redis, the real cart
service behind the EU gateway for the local read, and a minimal echo app as each region's orders
upstream (so a write costs ~0 ms behind the gateway and what is measured is the gateway itself).
Arrivals are scheduled at a fixed rate whatever the answers do; latency counts from the
scheduled time (no coordinated omission). The gateway's ``Server-Timing`` header gives, per
request, the time spent in the service that did the work, so

    overhead = client latency - service time

is the gateway's own cost: client<->gateway hop, JWT check, Redis token buckets, routing, the
proxy hop(s); for a forwarded write both gateways and the extra hop. ``GATEWAY_BENCH_RATE``
(default 200) and ``GATEWAY_BENCH_SECONDS`` (default 10) set the load. Prints p50/p95/p99 of
latency and overhead, errors, achieved rate, the gateways' RSS and the load average. Goal:
p95 overhead < 5 ms for a local read. Asserts only correctness (every answer as expected).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

import gateway_harness as gh
import services_harness as h
from payments_harness import wait_http

from checkout_stack.components.redis import Redis

pytestmark = [pytest.mark.bench, pytest.mark.stack]

RATE = int(os.environ.get("GATEWAY_BENCH_RATE", "200"))
SECONDS = float(os.environ.get("GATEWAY_BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("GATEWAY_BENCH_CONNECTIONS", "32"))
SERVICE = re.compile(r"service;dur=([0-9.]+)")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Bench:
    keys: gh.Keys
    cart: h.ServiceProc
    eu: h.ServiceProc
    us: h.ServiceProc
    cart_id: str


@pytest.fixture(scope="module")
def bench(redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    workdir: Path = tmp_path_factory.mktemp("gateway-bench")
    keys = gh.make_keys(workdir)
    redis_url = redis.url.rsplit("/", 1)[0] + "/12"
    echo_ports = {gh.EU: h.free_port(), gh.US: h.free_port()}
    echoes = []
    for port in echo_ports.values():
        log = workdir / f"echo-{port}.log"
        with log.open("ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).parent / "gateway_echo.py"), str(port)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        echoes.append(proc)
        wait_http(f"http://127.0.0.1:{port}/health/ready", proc, log)
    gw_ports = {gh.EU: h.free_port(), gh.US: h.free_port()}
    gateways = {name: f"http://127.0.0.1:{port}" for name, port in gw_ports.items()}
    routing = workdir / "routing.json"
    gh.write_atomically(routing, gh.routing_doc(gateways, {}, {}, 1))
    cart = h.ServiceProc(
        "cart",
        workdir,
        {
            "REGION_CONFIG_FILE": str(workdir / "region-eu.json"),
            "FLEET_ROUTING_FILE": str(routing),
            "REDIS_URL": redis_url,
        },
    )
    procs: dict[str, h.ServiceProc] = {}
    for name in (gh.EU, gh.US):
        region = h.region_config(
            {"cart": cart.url, "orders": f"http://127.0.0.1:{echo_ports[name]}"}
        )
        region["region"] = name
        region_file = workdir / f"region-{name.split('-')[0]}.json"
        region_file.write_text(json.dumps(region))
        procs[name] = h.ServiceProc(
            "gateway",
            workdir,
            gh.gateway_env(
                keys,
                region_file,
                routing,
                redis_url,
                CHECKOUT_LOG_LEVEL="WARNING",
                GATEWAY_CLIENT_RATE="100000",
                GATEWAY_CLIENT_BURST="100000",
                GATEWAY_MARKET_RATE="100000",
                GATEWAY_MARKET_BURST="100000",
                GATEWAY_BOT_THRESHOLD="1000000",
            ),
            port=gw_ports[name],
        )
    try:
        cart.start()
        for proc in procs.values():
            proc.start()
        made = httpx.post(
            f"{cart.url}/v1/carts", json={"market": "DE", "currency": "EUR"}, timeout=10
        )
        assert made.status_code == 201, made.text
        yield Bench(keys, cart, procs[gh.EU], procs[gh.US], made.json()["cart_id"])
    finally:
        for proc in procs.values():
            proc.stop()
        cart.stop()
        for echo in echoes:
            echo.terminate()
            echo.wait(10)


class Conn:
    """One keep-alive HTTP/1.1 connection (a minimal client: httpx spends milliseconds of CPU
    per request with thousands pending, which would measure the load generator)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body


def raw_request(method: str, url: str, headers: dict[str, str], body: bytes | None) -> bytes:
    parsed = httpx.URL(url)
    lines = [f"{method} {parsed.raw_path.decode()} HTTP/1.1", f"Host: {parsed.host}:{parsed.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def open_loop(
    method: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, object] | None,
    expect: int,
    through_gateway: bool,
) -> dict[str, float]:
    """Arrivals at ``RATE``/s for ``SECONDS``; each waits for a free connection of a pool of
    ``CONNECTIONS`` (that wait counts: latency is from the scheduled arrival)."""
    total = int(RATE * SECONDS)
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    timeouts = 0
    target = httpx.URL(url)
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    conns = [await Conn.open(target.host, target.port or 80) for _ in range(CONNECTIONS)]
    for conn in conns:
        pool.put_nowait(conn)

    def payload(i: int) -> bytes | None:
        if body is None:
            return None
        return json.dumps({**body, "checkout_id": f"bench-{i}"}).encode()

    for i in range(50):  # warm up both sides (and the gateways' upstream connections)
        conn = await pool.get()
        await conn.request(raw_request(method, url, headers, payload(-i - 1)))
        pool.put_nowait(conn)

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors, timeouts
        conn = await pool.get()
        try:
            status, resp_headers, _ = await asyncio.wait_for(
                conn.request(raw_request(method, url, headers, payload(i))), 30
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            timeouts += 1
            conn.writer.close()
            pool.put_nowait(await Conn.open(target.host, target.port or 80))
            return
        pool.put_nowait(conn)
        elapsed_ms = (time.perf_counter() - scheduled) * 1000
        if status != expect:
            errors += 1
            return
        latencies.append(elapsed_ms)
        if through_gateway:
            m = SERVICE.search(resp_headers.get("server-timing", ""))
            assert m, resp_headers
            overheads.append(elapsed_ms - float(m.group(1)))

    start = time.perf_counter()
    tasks = []
    for i in range(total):
        scheduled = start + i / RATE
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    return {
        "p50": pct(latencies, 50),
        "p95": pct(latencies, 95),
        "p99": pct(latencies, 99),
        "o50": pct(overheads, 50),
        "o95": pct(overheads, 95),
        "o99": pct(overheads, 99),
        "errors": errors,
        "timeouts": timeouts,
        "achieved": len(latencies) / wall,
    }


def test_gateway_overhead(bench: Bench) -> None:
    auth = bench.keys.auth("bench-client")
    cart_path = f"/v1/carts/{bench.cart_id}"
    checkout = gh.checkout_body("bench", "US")
    scenarios = [
        ("direct read (cart, no gateway)", "GET", bench.cart.url + cart_path, {}, None, 200, False),
        ("local read (gateway -> cart)", "GET", bench.eu.url + cart_path, auth, None, 200, True),
        (
            "local write (gateway -> orders)",
            "POST",
            bench.eu.url + "/v1/checkouts",
            auth,
            {**checkout, "market": "DE", "currency": "EUR"},
            201,
            True,
        ),
        (
            "forwarded write (EU gw -> US gw -> orders)",
            "POST",
            bench.eu.url + "/v1/checkouts",
            auth,
            checkout,
            201,
            True,
        ),
    ]
    rows = []
    for name, method, url, headers, body, expect, gw in scenarios:
        load_before = os.getloadavg()[0]
        r = asyncio.run(open_loop(method, url, headers, body, expect, gw))
        rows.append((name, r, load_before, os.getloadavg()[0]))
        assert r["errors"] == 0, (name, r)
    print(f"\ngateway overhead at {RATE} req/s open loop, {SECONDS:.0f} s per step (ms)")
    print(
        f"{'scenario':46} {'p50':>7} {'p95':>7} {'p99':>7} | {'o50':>6} {'o95':>6} {'o99':>6}"
        f" | {'err':>4} {'t/o':>4} {'ach/s':>6} | load"
    )
    for name, r, before, after in rows:
        print(
            f"{name:46} {r['p50']:7.2f} {r['p95']:7.2f} {r['p99']:7.2f} |"
            f" {r['o50']:6.2f} {r['o95']:6.2f} {r['o99']:6.2f} |"
            f" {r['errors']:4.0f} {r['timeouts']:4.0f} {r['achieved']:6.1f} |"
            f" {before:.1f}->{after:.1f}"
        )
    for name, proc in (("EU gateway", bench.eu), ("US gateway", bench.us)):
        assert proc.proc is not None
        print(f"{name} RSS {rss_mib(proc.proc.pid):.0f} MiB")
    print("o50/o95/o99: latency minus the service time the gateway reports (Server-Timing)")
