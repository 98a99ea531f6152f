"""Benchmark: the rendered MirrorMaker 2 between two local KRaft clusters.

* end-to-end lag (produce in eu-west-1 -> readable in eu-central-1 as ``eu-west-1.<topic>``)
  p50/p95/p99 under an open-loop producer at 1,000 events/s (sends are scheduled on the clock,
  not on acknowledgements, so a slow MM2 shows up as lag instead of a slower producer);
* replication throughput: a 50,000-event backlog produced while MM2 is down, drained by a
  fresh MM2 (first to last arrival);
* MM2's memory (RSS of its JVM).

Prints the figures; asserts only that every event arrived.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "replication"))
import mm2_fleet as fleet_h

from checkout_stack.proc import group_rss_bytes
from checkout_stack.pytest_plugin import KafkaClusters

A, B = "eu-west-1", "eu-central-1"
RATE = 1000  # events/s
SECONDS = 20
BURST = 50_000


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _open_loop(bootstrap: str, topic: str, rate: int, seconds: int) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    futures = []
    try:
        start = time.monotonic()
        for i in range(rate * seconds):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            value = json.dumps({"id": f"{A}-{i}", "sent": time.time()}).encode()
            futures.append(await producer.send(topic, value))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def _arrivals(bootstrap: str, topic: str, count: int, timeout_s: float) -> list[float]:
    """Wall-clock arrival minus send time (s) of each of ``count`` records of ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, metadata_max_age_ms=500
    )
    await consumer.start()
    lags: list[float] = []
    try:
        tp = TopicPartition(topic, 0)
        deadline = time.monotonic() + timeout_s
        while consumer.assignment() == set() and time.monotonic() < deadline:
            cluster = await consumer._client.fetch_all_metadata()
            if cluster.partitions_for_topic(topic):
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
            else:
                await asyncio.sleep(0.2)
        while len(lags) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for records in batches.values():
                for r in records:
                    sent = json.loads(r.value).get("sent")
                    if sent is not None:  # the warm-up record carries no send time
                        lags.append(now - sent)
    finally:
        await consumer.stop()
    return lags


async def _drain(
    bootstrap: str, topic: str, count: int, timeout_s: float
) -> tuple[float, int, float]:
    """(time of the first arrival, records there then, time all ``count`` are there)."""
    deadline = time.monotonic() + timeout_s
    first_at, first_count = 0.0, 0
    while time.monotonic() < deadline:
        n = (await fleet_h.end_offsets(bootstrap, [topic]))[topic]
        now = time.monotonic()
        if n and not first_at:
            first_at, first_count = now, n
        if n >= count:
            return first_at, first_count, now
        await asyncio.sleep(0.2)
    raise AssertionError(f"{topic}: backlog of {count} not replicated in {timeout_s} s")


@pytest.mark.bench
async def test_replication_lag_and_throughput(
    kafka_clusters: KafkaClusters, tmp_path: Path
) -> None:
    clusters = kafka_clusters.start_many(A, B)
    standby = fleet_h.region(B, [A])
    fleet = [standby, fleet_h.region(A, [])]
    mm2 = fleet_h.start_mm2(kafka_clusters, standby, fleet, clusters, tmp_path)
    try:
        # warm up: MM2 has found the topic and replicates
        topic = f"checkout.bench-{uuid.uuid4().hex[:6]}"
        await fleet_h.produce_events(clusters[A].bootstrap, A, range(10), topic)
        got = await fleet_h.wait_for_counts(clusters[B].bootstrap, {f"{A}.{topic}": 10}, 180)
        assert got == {f"{A}.{topic}": 10}, f"MM2 log {mm2.log}"

        lag_topic = f"checkout.bench-lag-{uuid.uuid4().hex[:6]}"
        await fleet_h.produce_events(clusters[A].bootstrap, A, range(1), lag_topic)
        await fleet_h.wait_for_counts(clusters[B].bootstrap, {f"{A}.{lag_topic}": 1}, 60)
        n = RATE * SECONDS
        consumer = asyncio.create_task(
            _arrivals(clusters[B].bootstrap, f"{A}.{lag_topic}", n, SECONDS + 120)
        )
        sent = await _open_loop(clusters[A].bootstrap, lag_topic, RATE, SECONDS)
        lags = await consumer
        assert sent == n
        assert len(lags) == n, f"{len(lags)} of {n} arrived"
        rss_after_lag = group_rss_bytes(mm2.proc.pid)

        # throughput: a backlog produced while MM2 is down, drained by a fresh MM2 (same render)
        mm2.stop()
        burst_topic = f"checkout.bench-burst-{uuid.uuid4().hex[:6]}"
        await fleet_h.produce_events(clusters[A].bootstrap, A, range(BURST), burst_topic)
        mm2 = fleet_h.start_mm2(kafka_clusters, standby, fleet, clusters, tmp_path / "again")
        first_at, first_count, last_at = await _drain(
            clusters[B].bootstrap, f"{A}.{burst_topic}", BURST, 300
        )
        assert last_at > first_at
        drained = BURST - first_count
        burst_s = last_at - first_at
        rss = max(rss_after_lag, group_rss_bytes(mm2.proc.pid))
    finally:
        mm2.stop()
    ms = [x * 1000 for x in lags]
    print(
        f"\nMM2 end-to-end lag at {RATE} events/s open loop, {n} events: "
        f"p50 {_pct(ms, 0.5):.0f} ms, p95 {_pct(ms, 0.95):.0f} ms, "
        f"p99 {_pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms"
    )
    print(
        f"MM2 replication throughput draining a {BURST}-event backlog: "
        f"{drained / burst_s:,.0f} events/s ({drained} events in {burst_s:.1f} s, "
        "first to last arrival, polled every 0.2 s)"
    )
    print(f"MM2 RSS: {rss / 2**20:.0f} MiB")
