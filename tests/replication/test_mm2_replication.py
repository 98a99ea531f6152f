"""The operator's rendered MirrorMaker 2 on real per-region Kafka clusters.

Each region runs its own MM2 (dedicated mode, ``--clusters <region>``) from the rendered
ConfigMap + Deployment, pulling its peers' ``checkout.*`` topics. Events carry ids; consumers
apply them through the dedupe helper, so counts are exact: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import mm2_fleet as fleet_h
import pytest

from checkout_operator.api.status import CheckoutRegionStatus
from checkout_operator.replication import lag, status
from checkout_services.common.dedupe import Deduper
from checkout_stack.components.kafka import KafkaCluster, MirrorMaker
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

EU_WEST, EU_CENTRAL, EU_NORTH = "eu-west-1", "eu-central-1", "eu-north-1"
PATTERNS = [r"checkout\..*"]


def unique_topic() -> str:
    return f"checkout.orders-{uuid.uuid4().hex[:6]}"


async def apply_all(
    bootstrap: str, topics: Sequence[str], dedupe: Deduper, applied: list[str]
) -> None:
    """Read every record of ``topics`` and apply it through ``dedupe``."""
    for raw in await fleet_h.read_all(bootstrap, topics, wait_s=60):
        event_id = json.loads(raw)["id"]

        async def handler(event_id: str = event_id) -> None:
            applied.append(event_id)

        await dedupe.apply_once(event_id, handler)


async def wait_lag_zero(
    target: str, clusters: dict[str, KafkaCluster], peers: Sequence[str], timeout_s: float = 60
) -> list[lag.PeerLag]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await lag.measure(
            clusters[target].bootstrap, {p: clusters[p].bootstrap for p in peers}, PATTERNS
        )
        if all(not g.error and g.messages == 0 for g in got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(1)


async def replicate_mesh(
    kafka_clusters: KafkaClusters,
    mm2s: list[MirrorMaker],
    tmp_path: Path,
    names: Sequence[str],
    total: int,
) -> None:
    clusters = kafka_clusters.start_many(*names)
    fleet = fleet_h.full_mesh(names)
    topic = unique_topic()
    per_region = {n: range(i, total, len(names)) for i, n in enumerate(names)}
    started = time.monotonic()
    mm2s += [fleet_h.start_mm2(kafka_clusters, r, fleet, clusters, tmp_path) for r in fleet]
    for name in names:
        assert await fleet_h.produce_events(
            clusters[name].bootstrap, name, per_region[name], topic
        ) == len(per_region[name])
    for target in names:
        # Default policy: the peer's events arrive as <peer>.<topic>
        expected = {f"{p}.{topic}": len(per_region[p]) for p in names if p != target}
        got = await fleet_h.wait_for_counts(clusters[target].bootstrap, expected, timeout_s=150)
        assert got == expected, f"{target}: {got} != {expected}; logs {[m.log for m in mm2s]}"
    print(
        f"\n{len(names)} regions, {total} events replicated in {time.monotonic() - started:.1f} s"
    )
    for target in names:
        peers = [p for p in names if p != target]
        # the region's consumer: its own topic and every peer's mirrored topic, deduplicated
        dedupe = Deduper()
        applied: list[str] = []
        topics = [topic, *(f"{p}.{topic}" for p in peers)]
        await apply_all(clusters[target].bootstrap, topics, dedupe, applied)
        assert len(applied) == total
        assert set(applied) == {f"{n}-{i}" for n in names for i in per_region[n]}
        # a redelivery (consumer restarted from the beginning) applies nothing twice
        await apply_all(clusters[target].bootstrap, topics, dedupe, applied)
        assert len(applied) == total
        assert dedupe.stats.duplicates == total
        # the operator's lag reading agrees: nothing left to replicate
        lags = await wait_lag_zero(target, clusters, peers)
        assert [(g.peer, g.error, g.messages) for g in lags] == [(p, "", 0) for p in sorted(peers)]
        folded = status.apply(
            CheckoutRegionStatus(), lags, 100, 1, datetime.datetime.now(datetime.UTC)
        )
        assert status.lagging(folded) is False


async def test_two_regions_replicate_both_ways_nothing_lost_nothing_twice(
    kafka_clusters: KafkaClusters, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    await replicate_mesh(kafka_clusters, mm2s, tmp_path, [EU_WEST, EU_CENTRAL], 10_000)


async def test_three_regions_full_mesh(
    kafka_clusters: KafkaClusters, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    await replicate_mesh(kafka_clusters, mm2s, tmp_path, [EU_WEST, EU_CENTRAL, EU_NORTH], 10_000)


async def test_identity_policy_keeps_topic_names_one_direction(
    kafka_clusters: KafkaClusters, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    clusters = kafka_clusters.start_many(EU_WEST, EU_CENTRAL)
    # eu-central-1 is a standby of eu-west-1: it pulls with Identity, eu-west-1 pulls nothing
    # (its own topic pattern, so the clusters' topics of other tests stay out of it)
    topic = f"checkout.standby-{uuid.uuid4().hex[:6]}"
    patterns = [topic.replace(".", r"\.")]
    standby = fleet_h.region(EU_CENTRAL, [EU_WEST], policy="Identity", topic_patterns=patterns)
    primary = fleet_h.region(EU_WEST, [], policy="Identity", topic_patterns=patterns)
    props = fleet_h.rendered_mm2(standby, [standby, primary]).properties
    assert "IdentityReplicationPolicy" in props
    # A new standby's MM2 starts with no flow state. The earlier tests' MM2s into eu-central-1
    # ran the same flow (eu-west-1->eu-central-1, Default policy, checkout\..*) on these shared
    # clusters: their connector configs in mm2-configs.eu-west-1.internal would run first and
    # copy a poll of this topic (500 records) to eu-west-1.<topic>, then commit its offsets.
    await fleet_h.forget_connect_state(clusters[EU_CENTRAL].bootstrap, [EU_WEST])
    mm2s.append(fleet_h.start_mm2(kafka_clusters, standby, [standby, primary], clusters, tmp_path))
    assert (
        await fleet_h.produce_events(clusters[EU_WEST].bootstrap, EU_WEST, range(1000), topic)
        == 1000
    )
    got = await fleet_h.wait_for_counts(clusters[EU_CENTRAL].bootstrap, {topic: 1000}, 300)
    assert got == {topic: 1000}, f"MM2 log {mm2s[0].log}"
    assert (await fleet_h.end_offsets(clusters[EU_CENTRAL].bootstrap, [f"{EU_WEST}.{topic}"])) == {
        f"{EU_WEST}.{topic}": 0
    }
    # and nothing flows back
    assert (await fleet_h.end_offsets(clusters[EU_WEST].bootstrap, [topic])) == {topic: 1000}
