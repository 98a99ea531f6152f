"""Benchmark: the cost of tracing on a real service (cart on the stack's Redis), off (the
default) and on (every request, httpx and Redis call exported over OTLP/HTTP to an in-test
OTLP receiver).

Prints, per mode, latency p50/p95/p99 of ``PUT /v1/carts/{id}/items/{sku}`` (8 concurrent
clients, ``TRACING_BENCH_REQUESTS`` requests, default 2,000) and the service process's CPU
time per request (from /proc, the number least disturbed by other work on a shared machine)
and RSS. Asserts correctness only (every answer 200; spans arrive only when on).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))

import services_harness as h
from test_services_tracing import OtlpReceiver

from checkout_stack.components.redis import Redis

pytestmark = [pytest.mark.bench, pytest.mark.stack]

REQUESTS = int(os.environ.get("TRACING_BENCH_REQUESTS", "2000"))
CONCURRENCY = 8


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def drive(url: str) -> list[float]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        cart = (await client.post("/v1/carts", json={"market": "DE", "currency": "EUR"})).json()
        path = f"/v1/carts/{cart['cart_id']}/items/tee"
        for _ in range(50):  # warm up
            await client.put(path, json={"quantity": 1})
        counter = iter(range(REQUESTS))

        async def worker() -> None:
            for i in counter:
                start = time.perf_counter()
                resp = await client.put(path, json={"quantity": 1 + i % 5})
                latencies.append((time.perf_counter() - start) * 1000)
                assert resp.status_code == 200, resp.text

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return latencies


@pytest.mark.parametrize("mode", ["off", "on"])
async def test_tracing_overhead(mode: str, redis: Redis, tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    env = {
        **h.write_configs(tmp_path),
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/7",
        "CART_TTL_SECONDS": "600",
    }
    if mode == "on":
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    cart = h.ServiceProc("cart", tmp_path, env).start()
    try:
        assert cart.proc is not None
        pid = cart.proc.pid
        cpu0 = cpu_seconds(pid)
        wall0 = time.perf_counter()
        latencies = await drive(cart.url)
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds(pid) - cpu0
        rss = rss_mib(pid)
    finally:
        cart.stop()
        receiver.stop()
    print(
        f"\ntracing {mode}: {REQUESTS} requests, {CONCURRENCY} clients: "
        f"p50 {pct(latencies, 50):.2f} ms, p95 {pct(latencies, 95):.2f} ms, "
        f"p99 {pct(latencies, 99):.2f} ms, {REQUESTS / wall:.0f} req/s, "
        f"server CPU {cpu / (REQUESTS + 51) * 1000:.3f} ms/request, RSS {rss:.0f} MiB, "
        f"spans received {len(receiver.spans)}"
    )
    if mode == "on":
        assert receiver.spans
    else:
        assert receiver.spans == []
