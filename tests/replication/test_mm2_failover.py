"""Failover of a consumer group: MM2 checkpoints translate its offsets into the peer region.

A consumer group processes part of a topic in eu-west-1 and stops (its region fails). The same
group in eu-central-1 then consumes the mirrored topic: it starts at the offset MM2 translated
(sync.group.offsets.enabled) and re-processes at most the events after the last checkpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import mm2_fleet as fleet_h
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

A, B = "eu-west-1", "eu-central-1"
TOTAL, PROCESSED_IN_A = 2000, 1200


async def test_consumer_group_resumes_in_peer_at_translated_offset(
    kafka_clusters: KafkaClusters, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    clusters = kafka_clusters.start_many(A, B)
    # eu-central-1 pulls eu-west-1's events and consumer offsets (Default policy)
    standby = fleet_h.region(B, [A])
    fleet = [standby, fleet_h.region(A, [])]
    topic = f"checkout.fulfilment-{uuid.uuid4().hex[:6]}"
    group = f"checkout-fulfilment-{uuid.uuid4().hex[:6]}"
    await fleet_h.produce_events(clusters[A].bootstrap, A, range(TOTAL), topic)
    mm2s.append(fleet_h.start_mm2(kafka_clusters, standby, fleet, clusters, tmp_path))

    # the group works in eu-west-1, committing every 100 events, and stops after 1200
    processed_a: list[str] = []
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=clusters[A].bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        while len(processed_a) < PROCESSED_IN_A:
            batches = await consumer.getmany(timeout_ms=1000, max_records=100)
            for records in batches.values():
                for r in records:
                    if len(processed_a) < PROCESSED_IN_A:
                        processed_a.append(json.loads(r.value)["id"])
                        last = r.offset
                    else:
                        break
            await consumer.commit({tp: OffsetAndMetadata(last + 1, "")})
    finally:
        await consumer.stop()  # region A fails: the group leaves; its offsets stay in A
    assert await fleet_h.committed(clusters[A].bootstrap, group, tp) == PROCESSED_IN_A

    # MM2 checkpoints the group and writes the translated offset into eu-central-1
    mirrored = TopicPartition(f"{A}.{topic}", 0)
    translated: int | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        translated = await fleet_h.committed(clusters[B].bootstrap, group, mirrored)
        if translated:
            await asyncio.sleep(5)  # let a later checkpoint land, then take the settled value
            translated = await fleet_h.committed(clusters[B].bootstrap, group, mirrored)
            break
        await asyncio.sleep(2)
    assert translated, f"no translated offset for {group} in {B}; MM2 log {mm2s[0].log}"
    assert 0 < translated <= PROCESSED_IN_A
    checkpoints = await fleet_h.end_offsets(clusters[B].bootstrap, [f"{A}.checkpoints.internal"])
    assert checkpoints[f"{A}.checkpoints.internal"] > 0

    # the same group in eu-central-1 resumes there and reads to the end
    processed_b: list[str] = []
    consumer = AIOKafkaConsumer(
        mirrored.topic,
        bootstrap_servers=clusters[B].bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 60
        while len(processed_b) < TOTAL - translated and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                processed_b += [json.loads(r.value)["id"] for r in records]
    finally:
        await consumer.stop()
    reprocessed = set(processed_a) & set(processed_b)
    # nothing lost; re-processed = exactly the events between the checkpoint and the stop
    assert set(processed_a) | set(processed_b) == {f"{A}-{i}" for i in range(TOTAL)}
    assert len(processed_b) == TOTAL - translated
    assert len(reprocessed) == PROCESSED_IN_A - translated
    print(
        f"\nconsumer group failover: stopped at {PROCESSED_IN_A} in {A}, translated offset "
        f"{translated} in {B}; {len(reprocessed)} events re-processed "
        f"(a consumer's dedupe drops them), 0 lost"
    )
