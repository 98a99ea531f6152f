"""Inventory against real PostgreSQL, Redis and Kafka: no oversell, each expiry exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
import services_harness as h
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

import made_ids
from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

EXPIRED_TOPIC = "checkout.dlq.reservation-expired"


@pytest.fixture(scope="module")
def inventory(
    postgres: Postgres,
    redis: Redis,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[h.ServiceProc]:
    workdir = tmp_path_factory.mktemp("inventory")
    dsn = postgres.create_database(f"inv_{made_ids.ref(n=8)}")
    env = {
        **h.write_configs(workdir),
        "DATABASE_URL": dsn,
        "REDIS_URL": redis.url.rsplit("/", 1)[0] + "/2",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_clusters.get(h.REGION).bootstrap,
        "INVENTORY_SWEEP_INTERVAL_SECONDS": "0.2",
    }
    proc = h.ServiceProc("inventory", workdir, env).start()
    try:
        yield proc
    finally:
        proc.stop()


def dsn_of(svc: h.ServiceProc) -> str:
    return svc.env["DATABASE_URL"]


async def consume_all(
    bootstrap: str,
    topic: str,
    want: int,
    wait_s: float = 60,
    mine: Callable[[dict[str, Any]], bool] = lambda e: True,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until ``want`` distinct events that are ``mine`` arrived
    (other tests of the session share the topic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=500,
    )
    await consumer.start()
    got: list[dict[str, Any]] = []
    try:
        consumer.subscribe(pattern=f"^{topic}$")
        deadline = time.monotonic() + wait_s
        while len({e["eventId"] for e in got}) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(e for e in (json.loads(r.value) for r in records) if mine(e))
    finally:
        await consumer.stop()
    return got


async def test_1000_concurrent_reservations_for_100_units(
    inventory: h.ServiceProc, kafka_clusters: KafkaClusters
) -> None:
    sku = f"sku-{made_ids.ref(n=8)}"
    async with httpx.AsyncClient(
        base_url=inventory.url,
        timeout=60,
        # idle connections expire before the server's 5 s keep-alive closes them
        limits=httpx.Limits(max_connections=200, keepalive_expiry=2.0),
    ) as client:
        assert (await client.put(f"/v1/stock/{sku}", json={"available": 100})).status_code == 200

        async def reserve(i: int) -> httpx.Response:
            body = {
                "checkout_id": f"co-{sku}-{i}",
                "market": "DE",
                "lines": [{"sku": sku, "quantity": 1}],
                "ttl_seconds": 3600,
            }
            for _ in range(4):
                try:
                    return await client.post("/v1/reservations", json=body)
                except httpx.TransportError:
                    # a connection dropped under load (a loaded CI run: ReadError): a client
                    # retries the same checkout; a reservation made before the drop then
                    # answers 200 (the same reservation), never a second unit
                    await asyncio.sleep(0.2)
            return await client.post("/v1/reservations", json=body)

        results = await asyncio.gather(*(reserve(i) for i in range(1000)))
        codes = [r.status_code for r in results]
        reserved = codes.count(201) + codes.count(200)
        assert reserved == 100, {c: codes.count(c) for c in set(codes)}
        assert codes.count(409) == 900
        for r in results:
            if r.status_code == 409:
                assert h.assert_problem(r, 409)["type"].endswith("/out-of-stock")
        assert (await client.get(f"/v1/stock/{sku}")).json()["available"] == 0

        conn = await asyncpg.connect(dsn_of(inventory))
        try:
            held = await conn.fetchval(
                "SELECT coalesce(sum(quantity), 0) FROM reservations"
                " WHERE sku = $1 AND state = 'held'",
                sku,
            )
            assert held == 100
            # time passes: every reservation is now past its TTL
            await conn.execute(
                "UPDATE reservations SET expires_at = now() - interval '1 second' WHERE sku = $1",
                sku,
            )
        finally:
            await conn.close()

        # the service's own sweeper races several explicit sweeps: each expiry happens once
        sweeps = await asyncio.gather(*(client.post("/v1/reservations/sweep") for _ in range(8)))
        assert all(s.status_code == 200 for s in sweeps)
        deadline = time.monotonic() + 30
        while (await client.get(f"/v1/stock/{sku}")).json()["available"] < 100:
            assert time.monotonic() < deadline, "expired reservations were not released"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # more sweeps pass: nothing changes any more
        assert (await client.get(f"/v1/stock/{sku}")).json()["available"] == 100

    conn = await asyncpg.connect(dsn_of(inventory))
    try:
        states = await conn.fetch(
            "SELECT state, count(*) AS n FROM reservations WHERE sku = $1 GROUP BY state", sku
        )
        assert {r["state"]: r["n"] for r in states} == {"expired": 100}
        events = await conn.fetch(
            "SELECT payload FROM outbox WHERE event_type = 'RESERVATION_EXPIRED'"
            " AND payload->'data'->>'sku' = $1",
            sku,
        )
        tokens = [json.loads(e["payload"])["data"]["token"] for e in events]
        assert len(tokens) == 100
        assert len(set(tokens)) == 100
    finally:
        await conn.close()

    # the outbox relay publishes them to Kafka (at least once; event ids let consumers dedupe)
    got = await consume_all(
        kafka_clusters.get(h.REGION).bootstrap,
        EXPIRED_TOPIC,
        100,
        mine=lambda e: e["data"].get("sku") == sku,
    )
    assert len({e["eventId"] for e in got}) == 100
    assert {e["data"]["token"] for e in got} == set(tokens)
    assert all(e["type"] == "RESERVATION_EXPIRED" for e in got)


async def test_reservation_is_idempotent_and_released_once(inventory: h.ServiceProc) -> None:
    sku = f"sku-{made_ids.ref(n=8)}"
    co = f"co-{made_ids.ref(n=8)}"
    body = {"checkout_id": co, "market": "FR", "lines": [{"sku": sku, "quantity": 3}]}
    async with httpx.AsyncClient(base_url=inventory.url, timeout=30) as client:
        await client.put(f"/v1/stock/{sku}", json={"available": 5})
        first = await client.post("/v1/reservations", json=body)
        assert first.status_code == 201, first.text
        again = await client.post("/v1/reservations", json=body)
        assert again.status_code == 200
        assert again.json() == first.json()
        other = await client.post(
            "/v1/reservations", json={**body, "lines": [{"sku": sku, "quantity": 1}]}
        )
        h.assert_problem(other, 409)
        assert (await client.get(f"/v1/stock/{sku}")).json()["available"] == 2
        for _ in range(2):  # a compensation run twice changes nothing the second time
            rel = await client.post(f"/v1/reservations/{co}/release")
            assert rel.status_code == 200
            assert [line["state"] for line in rel.json()["lines"]] == ["released"]
            assert (await client.get(f"/v1/stock/{sku}")).json()["available"] == 5
        h.assert_problem(await client.post(f"/v1/reservations/{co}/commit"), 409)


async def test_idempotency_key(inventory: h.ServiceProc) -> None:
    sku = f"sku-{made_ids.ref(n=8)}"
    async with httpx.AsyncClient(base_url=inventory.url, timeout=30) as client:
        await client.put(f"/v1/stock/{sku}", json={"available": 5})
        body = {"checkout_id": f"co-{sku}", "market": "NL", "lines": [{"sku": sku, "quantity": 1}]}
        key = {"Idempotency-Key": made_ids.ref(n=32)}
        first = await client.post("/v1/reservations", json=body, headers=key)
        assert first.status_code == 201
        replay = await client.post("/v1/reservations", json=body, headers=key)
        assert replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == first.json()
        reused = await client.post(
            "/v1/reservations", json={**body, "checkout_id": "other"}, headers=key
        )
        assert h.assert_problem(reused, 422)["field"] == "Idempotency-Key"


async def test_writes_for_a_market_held_elsewhere_are_refused(inventory: h.ServiceProc) -> None:
    async with httpx.AsyncClient(base_url=inventory.url, timeout=30) as client:
        await client.put("/v1/stock/guarded", json={"available": 5})
        resp = await client.post(
            "/v1/reservations",
            json={
                "checkout_id": "co-us",
                "market": "US",
                "lines": [{"sku": "guarded", "quantity": 1}],
            },
        )
        body = h.assert_problem(resp, 409)
        assert body["writer"] == h.PEER
        assert h.PEER in body["detail"]
        assert (await client.get("/v1/stock/guarded")).json()["available"] == 5


async def test_bad_input_is_a_problem_naming_the_field(inventory: h.ServiceProc) -> None:
    async with httpx.AsyncClient(base_url=inventory.url, timeout=30) as client:
        resp = await client.post(
            "/v1/reservations",
            json={"checkout_id": "x", "market": "DE", "lines": [{"sku": "a", "quantity": 0}]},
            headers={"X-Request-Id": "req-123"},
        )
        body = h.assert_problem(resp, 422)
        assert body["field"] == "lines.0.quantity"
        assert resp.headers["X-Request-Id"] == "req-123"
        h.assert_problem(await client.get("/v1/stock/nope"), 404)
        h.assert_problem(await client.get("/v1/nothing-here"), 404)
        metrics = (await client.get("/metrics")).text
        assert 'route="/v1/reservations"' in metrics
        assert "checkout_outbox_lag_seconds" in metrics


def test_bad_settings_exit_2_without_traceback(tmp_path: Path) -> None:
    import subprocess

    env = {"REGION_CONFIG_FILE": str(tmp_path / "missing.json"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [str(h.BIN), "inventory", "--port", str(h.free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "FLEET_ROUTING_FILE" in done.stderr
    assert "Traceback" not in done.stderr
