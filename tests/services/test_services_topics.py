"""The outbox relay creates its topics (partitions, replication factor, cleanup policy,
retention from ``common/topics.py``'s table) on a real broker whose topic auto-creation is
disabled, and converges the configs of topics that already exist."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from checkout_contract import config
from checkout_services.common import db, outbox, topics
from checkout_stack.components.postgres import Postgres
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

NO_AUTO_CREATE = "no-autocreate"


def region(tag: str) -> config.RegionConfig:
    return config.RegionConfig(
        region="eu-west-1",
        fleet="test",
        jurisdiction="EU",
        home_markets=("DE",),
        endpoints={},
        topics=config.KafkaTopics(
            order_placed=f"t{tag}.order-placed",
            payment_captured=f"t{tag}.payment-captured",
            fulfillment_requested=f"t{tag}.fulfillment-requested",
            payment_capture_failed_dlq=f"t{tag}.dlq.payment-capture-failed",
            reservation_expired_dlq=f"t{tag}.dlq.reservation-expired",
            customers=f"t{tag}.customers",
            stock_deltas=f"t{tag}.stock-deltas",
            inventory_divergence=f"t{tag}.inventory-divergence",
        ),
        kafka_replication_factor=1,
    )


async def describe(bootstrap: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Topic -> {"partitions": n, "replicas": rf, <config>: value} as the broker reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        out: dict[str, dict[str, Any]] = {}
        for t in await admin.describe_topics(names):
            assert t["error_code"] == 0, t
            out[t["topic"]] = {
                "partitions": len(t["partitions"]),
                "replicas": len(t["partitions"][0]["replicas"]),
            }
        for response in await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        ):
            for _code, _msg, _type, name, entries in response.resources:
                out[name].update({e[0]: e[1] for e in entries})
        return out
    finally:
        await admin.close()


async def read_all(bootstrap: str, topic: str, n: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[dict[str, Any]] = []
    try:
        for _ in range(40):
            for records in (await consumer.getmany(timeout_ms=250)).values():
                got += [json.loads(r.value) for r in records]
            if len(got) >= n:
                break
    finally:
        await consumer.stop()
    return got


async def test_relay_creates_its_topics_where_auto_creation_is_off(
    kafka_clusters: KafkaClusters, postgres: Postgres
) -> None:
    bootstrap = kafka_clusters.get(NO_AUTO_CREATE, auto_create_topics=False).bootstrap
    tag = uuid.uuid4().hex[:8]
    cfg = region(tag)

    # the broker really refuses to auto-create: a producer to a missing topic fails
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(f"{cfg.topics.order_placed}.DE", b"x")
    finally:
        await producer.stop()

    pool = await db.create_pool(postgres.create_database(f"topics_{tag}"), min_size=1, max_size=2)
    relay = outbox.Relay.for_region(pool, bootstrap, cfg)
    legacy = f"t{tag}.legacy-events"  # named by an outbox row, not in the region's table
    try:
        await db.migrate(pool, db.COMMON_MIGRATIONS)
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, topic=f"{cfg.topics.order_placed}.DE", event_type="ORDER_PLACED",
                key="co-1", data={"checkoutId": "co-1"},
            )  # fmt: skip
            # a market this region only writes after a failover: created on first use, with
            # its family's layout
            await outbox.enqueue(
                conn, topic=f"{cfg.topics.payment_captured}.NL", event_type="PAYMENT_CAPTURED",
                key="co-1", data={"checkoutId": "co-1"},
            )  # fmt: skip
            await outbox.enqueue(
                conn, topic=legacy, event_type="LEGACY", key="co-1", data={"checkoutId": "co-1"}
            )
        await relay.start()
        assert await relay.publish_once() == 3
    finally:
        await relay.stop()
        await pool.close()

    assert [e["type"] for e in await read_all(bootstrap, f"{cfg.topics.order_placed}.DE", 1)] == [
        "ORDER_PLACED"
    ]
    assert [e["type"] for e in await read_all(bootstrap, legacy, 1)] == ["LEGACY"]

    base = cfg.topics.model_dump()
    market_scoped = {"order_placed", "payment_captured", "fulfillment_requested", "customers"}
    names = {key: f"{name}.DE" if key in market_scoped else name for key, name in base.items()}
    late = f"{cfg.topics.payment_captured}.NL"
    got = await describe(bootstrap, [*names.values(), late, legacy])
    assert set(topics.plan(cfg)) == set(names.values())  # DE only: the region's home market
    day = 24 * 3600 * 1000
    for key, name in names.items():
        layout = topics.TABLE[key]
        assert got[name]["partitions"] == layout.partitions, name
        assert got[name]["replicas"] == 1
        assert got[name]["cleanup.policy"] == layout.cleanup_policy, name
        assert got[name]["retention.ms"] == str(layout.retention_ms), name
        assert got[name]["min.insync.replicas"] == "1"
    assert got[names["customers"]]["cleanup.policy"] == "compact"  # erasure by tombstone
    assert got[names["payment_capture_failed_dlq"]]["retention.ms"] == str(30 * day)
    assert got[late]["retention.ms"] == str(topics.TABLE["payment_captured"].retention_ms)
    assert got[legacy]["partitions"] == topics.DEFAULT_LAYOUT.partitions
    assert got[legacy]["retention.ms"] == str(topics.DEFAULT_LAYOUT.retention_ms)


async def test_ensure_converges_configs_and_never_repartitions(
    kafka_clusters: KafkaClusters,
) -> None:
    bootstrap = kafka_clusters.get(NO_AUTO_CREATE, auto_create_topics=False).bootstrap
    tag = uuid.uuid4().hex[:8]
    plan = topics.plan(region(tag))
    first = await topics.ensure(bootstrap, plan.values())
    assert sorted(first.created) == sorted(plan)
    again = await topics.ensure(bootstrap, plan.values())  # a second relay start: nothing to do
    assert (again.created, again.reconfigured, again.under_partitioned) == ([], [], {})

    # someone shortened a topic's retention by hand and set another config; another topic was
    # made by hand with one partition
    placed = f"{region(tag).topics.order_placed}.DE"
    small = f"t{tag}.hand-made"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    placed,
                    configs={"retention.ms": "60000", "max.message.bytes": "2000000"},
                )
            ]
        )
        await admin.create_topics([NewTopic(small, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    wanted = [*plan.values(), topics.spec(small, topics.DEFAULT_LAYOUT, 1)]
    fixed = await topics.ensure(bootstrap, wanted)
    assert fixed.created == []
    assert fixed.reconfigured == [placed]  # hand-made already has the broker's 7-day default
    assert fixed.under_partitioned == {small: 1}
    got = await describe(bootstrap, [placed, small])
    assert got[placed]["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert got[placed]["max.message.bytes"] == "2000000"  # the other config is kept
    assert got[small]["partitions"] == 1  # reported, not changed (keys would move)
    assert got[small]["cleanup.policy"] == "delete"


async def test_ensure_names_the_topic_the_broker_refuses(kafka_clusters: KafkaClusters) -> None:
    bootstrap = kafka_clusters.get(NO_AUTO_CREATE, auto_create_topics=False).bootstrap
    bad = topics.spec(f"t{uuid.uuid4().hex[:8]}.rf3", topics.DEFAULT_LAYOUT, 3)
    with pytest.raises(topics.TopicError, match=f"cannot create topic {bad.name}"):
        await topics.ensure(bootstrap, [bad])  # one broker: replication factor 3 is impossible


def test_every_region_topic_has_a_layout() -> None:
    assert set(config.KafkaTopics.model_fields) == set(topics.TABLE)


async def test_an_idle_relay_sleeps_until_an_event_commits(
    kafka_clusters: KafkaClusters, postgres: Postgres
) -> None:
    """Idle, the relay waits on LISTEN (no query per 50 ms): with a 30 s fallback poll, an event
    committed later is still on Kafka within a second or two, and one rolled back wakes nothing."""
    import asyncio
    import contextlib

    bootstrap = kafka_clusters.get(NO_AUTO_CREATE, auto_create_topics=False).bootstrap
    tag = uuid.uuid4().hex[:8]
    cfg = region(tag)
    pool = await db.create_pool(postgres.create_database(f"idle_{tag}"), min_size=1, max_size=3)
    relay = outbox.Relay.for_region(pool, bootstrap, cfg)
    relay.idle_sleep = 30.0
    loop = asyncio.get_running_loop()
    try:
        await db.migrate(pool, db.COMMON_MIGRATIONS)
        task = loop.create_task(relay.run())
        for _ in range(200):  # started: topics made, LISTEN up, the first (empty) pass done
            if relay._listener is not None and not relay._wake.is_set():
                break
            await asyncio.sleep(0.05)
        assert relay._listener is not None, "the relay never listened"

        async def commits() -> int:
            row = await pool.fetchrow(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            return int(row["xact_commit"])

        before = await commits()
        await asyncio.sleep(3.0)
        idle_commits = await commits() - before - 1  # minus our own first query
        # the old relay polled every 50 ms (one transaction + one lag query): 60+ in 3 s
        assert idle_commits <= 4, f"{idle_commits} transactions in 3 s of idling"

        with contextlib.suppress(RuntimeError):
            async with pool.acquire() as conn, conn.transaction():
                await outbox.enqueue(
                    conn, topic=f"{cfg.topics.order_placed}.DE", event_type="ROLLED_BACK",
                    key="co-0", data={"checkoutId": "co-0"},
                )  # fmt: skip
                raise RuntimeError("roll back")
        assert not relay._wake.is_set()  # a rolled-back enqueue notifies nobody

        start = loop.time()
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(
                conn, topic=f"{cfg.topics.order_placed}.DE", event_type="ORDER_PLACED",
                key="co-1", data={"checkoutId": "co-1"},
            )  # fmt: skip
        got = await read_all(bootstrap, f"{cfg.topics.order_placed}.DE", 1)
        assert [e["type"] for e in got] == ["ORDER_PLACED"]
        waited = loop.time() - start
        assert waited < 5.0, f"{waited:.1f} s: the relay waited for its 30 s poll, not the NOTIFY"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await relay.stop()
        await pool.close()
