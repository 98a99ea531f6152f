"""Kafka (one KRaft cluster per region) and MirrorMaker 2 of the local stack."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

SOURCE, TARGET = "us-east-1", "eu-west-1"


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int, wait_s: float = 60) -> list[bytes]:
    """Read `count` records from the start of `topic`, waiting up to `wait_s` seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=500,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + wait_s
        consumer.subscribe(pattern=f"^{topic}$")
        while len(got) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return got


async def test_produce_and_consume_on_two_clusters(kafka_clusters: KafkaClusters) -> None:
    clusters = kafka_clusters.start_many(SOURCE, TARGET)
    assert clusters[SOURCE].bootstrap != clusters[TARGET].bootstrap
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    for region, cluster in clusters.items():
        values = [f"{region}-{i}".encode() for i in range(5)]
        await produce(cluster.bootstrap, topic, values)
        assert await consume(cluster.bootstrap, topic, 5) == values
    # the clusters are independent: each holds only its own records
    assert await consume(clusters[TARGET].bootstrap, topic, 6, wait_s=3) == [
        f"{TARGET}-{i}".encode() for i in range(5)
    ]


async def test_mirrormaker2_copies_a_topic(kafka_clusters: KafkaClusters, tmp_path: Path) -> None:
    clusters = kafka_clusters.start_many(SOURCE, TARGET)
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    values = [f"order-{i}".encode() for i in range(20)]
    await produce(clusters[SOURCE].bootstrap, topic, values)
    props = tmp_path / "mm2.properties"
    props.write_text(
        "\n".join(
            [
                "clusters = src, dst",
                # bootstrap servers come from the environment (EnvVarConfigProvider)
                "config.providers = env",
                "config.providers.env.class = "
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                "src.bootstrap.servers = ${env:MM2_SRC_BOOTSTRAP}",
                "dst.bootstrap.servers = ${env:MM2_DST_BOOTSTRAP}",
                "src->dst.enabled = true",
                f"src->dst.topics = {topic}",
                "dst->src.enabled = false",
                "replication.policy.class = "
                "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
                "replication.factor = 1",
                "checkpoints.topic.replication.factor = 1",
                "heartbeats.topic.replication.factor = 1",
                "offset-syncs.topic.replication.factor = 1",
                "offset.storage.replication.factor = 1",
                "status.storage.replication.factor = 1",
                "config.storage.replication.factor = 1",
                "refresh.topics.interval.seconds = 1",
                "refresh.groups.interval.seconds = 1",
                "sync.topic.configs.enabled = false",
                "sync.topic.acls.enabled = false",
                "",
            ]
        )
    )
    mm2 = kafka_clusters.run_mirrormaker(
        props,
        env={
            "MM2_SRC_BOOTSTRAP": clusters[SOURCE].bootstrap,
            "MM2_DST_BOOTSTRAP": clusters[TARGET].bootstrap,
        },
    )
    try:
        mirrored = await consume(clusters[TARGET].bootstrap, topic, len(values), wait_s=90)
        assert mirrored == values, f"MirrorMaker 2 log: {mm2.log}"
        assert mm2.alive()
    finally:
        mm2.stop()
    assert not mm2.alive()


async def test_a_cluster_can_be_stopped_and_restarted(kafka_clusters: KafkaClusters) -> None:
    region = "ap-south-1"
    cluster = kafka_clusters.get(region)
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    await produce(cluster.bootstrap, topic, [b"before"])
    with kafka_clusters.stopped(region) as down:
        assert not down.alive()
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, request_timeout_ms=1000)
        with pytest.raises(Exception, match="Unable to bootstrap"):
            await asyncio.wait_for(producer.start(), timeout=10)
        await producer.stop()
    assert cluster.alive()
    kafka_clusters.stop(region)
    assert not cluster.alive()
    restarted = kafka_clusters.start(region)
    assert restarted.bootstrap == cluster.bootstrap
    await produce(cluster.bootstrap, topic, [b"after"])
    assert await consume(cluster.bootstrap, topic, 2) == [b"before", b"after"]
