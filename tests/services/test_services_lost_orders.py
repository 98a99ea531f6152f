"""No lost order: SIGKILL the orders service and the outbox relay at random points during 500
checkouts (then restart them); every acknowledged order exists and its ORDER_PLACED reaches
Kafka at least once."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import checkout_env as ce
import httpx
import payments_harness as ph
import pytest
import services_harness as h
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped]

from checkout_stack.components.postgres import Postgres
from checkout_stack.components.redis import Redis
from checkout_stack.components.temporal import Temporal
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

CHECKOUTS = 500
CONCURRENCY = 25
TOPIC = r"checkout\.order-placed\.[A-Z]{2}"  # one topic per market (classification)


@pytest.fixture(scope="module")
def env(
    postgres: Postgres,
    redis: Redis,
    temporal: Temporal,
    kafka_clusters: KafkaClusters,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ce.CheckoutEnv, h.RelayProc]]:
    e = ce.start(
        tmp_path_factory.mktemp("lost-orders"),
        postgres,
        redis,
        temporal,
        kafka_clusters.get(h.REGION).bootstrap,
        redis_db=5,
        orders_relay=False,
    )
    relay = h.RelayProc(
        e.workdir,
        {
            "DATABASE_URL": e.orders_env["DATABASE_URL"],
            "KAFKA_BOOTSTRAP_SERVERS": e.kafka_bootstrap,
            "REGION_CONFIG_FILE": e.orders_env["REGION_CONFIG_FILE"],
        },
    ).start()
    try:
        yield e, relay
    finally:
        relay.stop()
        e.stop()


async def placed_on_kafka(bootstrap: str, wanted: set[str], wait_s: float) -> set[str]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=500,
    )
    await consumer.start()
    seen: set[str] = set()
    try:
        consumer.subscribe(pattern=f"^{TOPIC}$")
        deadline = time.monotonic() + wait_s
        while not wanted <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    event = json.loads(r.value)
                    # the cluster is shared by the session's tests (e.g. the residency test's
                    # synthetic ORDER_PLACED events carry no checkoutId): only ours count
                    checkout = event["data"].get("checkoutId")
                    if event["type"] == "ORDER_PLACED" and checkout is not None:
                        seen.add(checkout)
    finally:
        await consumer.stop()
    return seen & wanted


# The orders service is SIGKILLed while the client connects to it: a connect cancelled by the
# client's timeout at that moment can leave asyncio's half-made socket to the dead port unclosed
# (a loaded CI run: "unclosed <socket.socket ...>" from asyncio's sock_connect, in this test's
# own client, not in a service). The promise checked here is the orders, not the client's sockets.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning"
)
async def test_no_acknowledged_order_is_lost(env: tuple[ce.CheckoutEnv, h.RelayProc]) -> None:
    e, relay = env
    rng = random.Random(20261125)
    async with httpx.AsyncClient(timeout=10) as c:
        assert (
            await c.put(f"{e.inventory.url}/v1/stock/tee", json={"available": 100_000})
        ).is_success
    run = uuid.uuid4().hex[:6]
    acked: set[str] = set()
    refused: dict[str, int] = {}
    kills = {"orders": 0, "relay": 0}
    done = asyncio.Event()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def checkout(client: httpx.AsyncClient, i: int) -> None:
        cid = f"lost-{run}-{i}"
        body = {
            "checkout_id": cid,
            "market": "DE",
            "currency": "EUR",
            "lines": [{"sku": "tee", "quantity": 1}],
            "payment_method_token": ph.TOKEN,
        }
        async with gate:
            # 240 s for this checkout from its first send (not from the start of the run: on a
            # loaded machine the later checkouts would spend their deadline queued at the gate,
            # never sent, and count as not acknowledged)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                try:
                    resp = await client.post("/v1/checkouts", json=body)
                except httpx.TransportError:
                    await asyncio.sleep(0.2)  # no answer: the client retries the same checkout
                    continue
                if resp.status_code == 201:
                    acked.add(cid)
                    return
                if resp.status_code >= 500 or resp.status_code == 409:
                    await asyncio.sleep(0.2)
                    continue
                refused[cid] = resp.status_code
                return

    async def chaos() -> None:
        while not done.is_set():
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            if done.is_set():
                return
            target = rng.choice(("orders", "relay"))
            kills[target] += 1
            if target == "orders":
                e.orders.kill()
                await asyncio.sleep(rng.uniform(0, 1))
                await asyncio.to_thread(e.orders.start)
            else:
                relay.kill()
                await asyncio.sleep(rng.uniform(0, 2))
                relay.start()

    chaos_task = asyncio.create_task(chaos())
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=e.orders.url, timeout=30, limits=limits) as client:
        await asyncio.gather(*(checkout(client, i) for i in range(CHECKOUTS)))
    done.set()
    await chaos_task

    assert refused == {}
    assert kills["orders"] >= 1
    assert kills["relay"] >= 1
    assert len(acked) == CHECKOUTS
    conn = await asyncpg.connect(e.orders_env["DATABASE_URL"])
    try:
        rows = await conn.fetch(
            "SELECT checkout_id FROM orders WHERE checkout_id LIKE $1", f"lost-{run}-%"
        )
    finally:
        await conn.close()
    assert acked <= {r["checkout_id"] for r in rows}
    published = await placed_on_kafka(e.kafka_bootstrap, acked, wait_s=120)
    assert published == acked, f"{len(acked - published)} acknowledged orders never reached Kafka"
