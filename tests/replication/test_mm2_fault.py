"""Fault: a region's Kafka down 30 s and its MirrorMaker 2 restarted; nothing lost, lag falls to 0.

The operator's lag reading (checkout_operator.replication) and status folding are what report it:
the test keeps the status it would write at each step and checks the lag rise and fall in it.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from pathlib import Path

import mm2_fleet as fleet_h
import pytest
import redis.asyncio as aioredis

from checkout_operator.api.status import CheckoutRegionStatus
from checkout_operator.replication import lag, status
from checkout_services.common.dedupe import Deduper, RedisSeenStore
from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.components.redis import Redis
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

A, B = "eu-west-1", "eu-central-1"
MAX_LAG = 100
OUTAGE_S = 30


async def test_kafka_outage_and_mm2_restart_lose_nothing_and_lag_recovers(
    kafka_clusters: KafkaClusters, redis: Redis, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    clusters = kafka_clusters.start_many(A, B)
    fleet = fleet_h.full_mesh([A, B])
    region_a = next(r for r in fleet if r.spec.region == A)
    topic = f"checkout.orders-{uuid.uuid4().hex[:6]}"
    mm_a = fleet_h.start_mm2(kafka_clusters, region_a, fleet, clusters, tmp_path / "a1")
    mm2s.append(mm_a)
    mm2s.append(fleet_h.start_mm2(kafka_clusters, fleet[1], fleet, clusters, tmp_path / "b"))
    sent = {A: 0, B: 0}

    async def produce(region: str, n: int) -> None:
        seqs = range(sent[region], sent[region] + n)
        await fleet_h.produce_events(clusters[region].bootstrap, region, seqs, topic)
        sent[region] += n

    history: list[tuple[str, CheckoutRegionStatus]] = []
    current = CheckoutRegionStatus()

    async def observe(step: str) -> lag.PeerLag:
        """What the operator measures for the flow B -> A and writes into A's status."""
        nonlocal current
        (measured,) = await lag.measure(
            clusters[A].bootstrap, {B: clusters[B].bootstrap}, [r"checkout\..*"], timeout_s=5
        )
        current = status.apply(current, [measured], MAX_LAG, 1, datetime.datetime.now(datetime.UTC))
        history.append((step, current))
        return measured

    await produce(A, 1000)
    await produce(B, 1000)
    got = await fleet_h.wait_for_counts(clusters[A].bootstrap, {f"{B}.{topic}": 1000}, 150)
    assert got == {f"{B}.{topic}": 1000}
    for _ in range(60):
        steady = await observe("steady")
        if not steady.error and steady.messages == 0:
            break
        await asyncio.sleep(1)
    assert status.lagging(current) is False, current.replication

    # --- outage: A's Kafka stops for 30 s, A's MirrorMaker 2 goes down with it ---
    mm_a.stop()
    kafka_clusters.stop(A)
    outage_started = time.monotonic()
    during = await observe("A down")
    assert during.error.startswith(f"lag from {B} unknown")
    assert status.lagging(current) is None  # Unknown, last known values kept
    assert str(clusters[A].port) not in during.error  # no addresses (from Secrets) in status
    await produce(B, 2000)  # B keeps taking orders
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
    kafka_clusters.start(A)
    outage = time.monotonic() - outage_started
    risen = await observe("A back, MM2 not yet")
    for _ in range(30):  # the restarted broker may answer NOT_LEADER for a moment
        if not risen.error:
            break
        await asyncio.sleep(1)
        risen = await observe("A back, MM2 not yet")
    assert risen.messages >= sent[B] - 1000, risen
    assert status.lagging(current) is True
    lagging = next(c for c in current.conditions if c.type == status.CONDITION)
    assert lagging.reason == "LagAboveBound"
    assert f"{B}: {risen.messages} messages" in lagging.message
    await produce(A, 500)  # B's MM2 (never restarted) must pick A up again by itself

    # --- MirrorMaker 2 restarted with the same rendered configuration ---
    restarted = time.monotonic()
    mm2s.append(fleet_h.start_mm2(kafka_clusters, region_a, fleet, clusters, tmp_path / "a2"))
    series = [risen.messages]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        now = await observe("recovering")
        if not now.error:
            series.append(now.messages)
            if now.messages == 0:
                break
        await asyncio.sleep(2)
    recovered = time.monotonic() - restarted
    assert series[-1] == 0, series
    assert status.lagging(current) is False
    assert current.replication[0].message == ""

    # every event is in the peers
    counts_a = await fleet_h.wait_for_counts(clusters[A].bootstrap, {f"{B}.{topic}": sent[B]}, 60)
    counts_b = await fleet_h.wait_for_counts(clusters[B].bootstrap, {f"{A}.{topic}": sent[A]}, 120)
    assert counts_b[f"{A}.{topic}"] >= sent[A]
    assert counts_a[f"{B}.{topic}"] >= sent[B]

    # ...and applied exactly once in each region through the durable dedupe store
    client = aioredis.from_url(redis.url)
    try:
        for region, topics, expected in (
            (A, [topic, f"{B}.{topic}"], sent[A] + sent[B]),
            (B, [topic, f"{A}.{topic}"], sent[A] + sent[B]),
        ):
            prefix = f"dedupe:fault-{region}-{uuid.uuid4().hex[:6]}"
            dedupe = Deduper(RedisSeenStore(client, prefix, ttl_seconds=600))
            ids: list[str] = []
            for raw in await fleet_h.read_all(clusters[region].bootstrap, topics, wait_s=60):
                event_id = json.loads(raw)["id"]

                async def handler(event_id: str = event_id, ids: list[str] = ids) -> None:
                    ids.append(event_id)

                await dedupe.apply_once(event_id, handler)
            assert len(ids) == len(set(ids)) == expected
            print(
                f"\n{region}: {expected} events applied once, "
                f"{dedupe.stats.duplicates} redelivered duplicates dropped"
            )
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            for i in range(0, len(keys), 1000):
                await client.delete(*keys[i : i + 1000])
    finally:
        await client.aclose()
    steps = [(step, s.replication[0].lag_messages, s.conditions[-1].status) for step, s in history]
    compact = [x for i, x in enumerate(steps) if i == 0 or x != steps[i - 1]]
    print(
        f"outage {outage:.0f} s; lag series after restart {series}; caught up in {recovered:.0f} s"
    )
    print(f"status (step, lagMessages, ReplicationLagging): {compact}")
    assert max(series) >= sent[B] - 1000 > 0
