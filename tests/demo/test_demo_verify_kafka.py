"""The ORDER_PLACED check against a real Kafka broker, also one that is still coming back.

The kill-region GameDay restarts a region's Kafka just before the promises are checked: the
check must wait for it (retrying within its deadline) and then read every event, not fail.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from checkout_demo import verify
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

REGION = "verify-restart"  # a broker of its own: this test stops it


async def produce(bootstrap: str, rows: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in rows:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def test_placed_events_reads_every_family_topic_and_waits_for_a_restart(
    kafka_clusters: KafkaClusters,
) -> None:
    cluster = kafka_clusters.get(REGION)
    family = f"checkout.order-placed-{uuid.uuid4().hex[:6]}"
    keyed = {f"k{i}" for i in range(30)}
    rows: list[tuple[str, bytes | None, bytes]] = [
        (f"{family}.{'US' if i % 2 else 'NL'}", cid.encode(), b"{}")
        for i, cid in enumerate(sorted(keyed))
    ]
    rows.append((family, None, json.dumps({"data": {"checkoutId": "v1"}}).encode()))
    rows.append((f"{family}.dlq", b"not-in-the-family", b"{}"))
    await produce(cluster.bootstrap, rows)

    assert await verify.placed_events(cluster.bootstrap, family, deadline_s=30) == keyed | {"v1"}

    cluster.stop()
    try:
        read = asyncio.create_task(
            verify.placed_events(cluster.bootstrap, family, wait_s=20, deadline_s=90)
        )
        await asyncio.sleep(3)
        assert not read.done(), "the check must wait for the broker, not give up at once"
    finally:
        await asyncio.to_thread(kafka_clusters.start, REGION)
    assert await read == keyed | {"v1"}
