"""Must-show: on real Kafka clusters with MirrorMaker 2 from the rendered config, personal and
payment events stay where residency allows, aggregates reach every region.

Four regions (one per jurisdiction that matters, the fewest that show EU-to-EU, EU-to-US and
IN flows), four Kafka brokers, four MM2 processes (one per region, as its Deployment runs it).
Events of US, BR, NL, DE and IN checkouts go through the services' real outbox and relay
(PostgreSQL -> Kafka) in their home regions, on the topics the classification names. After
replication quiesces, the count of this run's events per cluster and topic must equal what the
residency table (written out in ``residency_fleet.ALLOWED``, not computed by the code under
test) says, exactly: every allowed copy, no forbidden one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import mm2_fleet as fleet_h
import pytest
import residency_fleet as rf

from checkout_contract import classification
from checkout_services.common import db, outbox
from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.components.postgres import Postgres
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

PER_KIND = 15
"""Events per market and event kind (each kind on its own topic)."""
KINDS = {
    "ORDER_PLACED": "personal",
    "PAYMENT_CAPTURED": "payment",
    "FULFILLMENT_REQUESTED": "personal",
    "CUSTOMER_UPSERTED": "personal",
    "STOCK_DELTA": "aggregate",
}


async def produce_home_events(postgres: Postgres, bootstrap: str, region: str, run: str) -> None:
    """Every event kind for every home market of ``region``, through outbox + relay."""
    pool = await db.create_pool(postgres.create_database(f"res_{region.replace('-', '_')}_{run}"))
    try:
        await db.migrate(pool, db.COMMON_MIGRATIONS)
        async with pool.acquire() as conn, conn.transaction():
            for market in (m for m, home in rf.HOME.items() if home == region):
                for kind in KINDS:
                    family = classification.of_event(kind)
                    topic = classification.topic_for(
                        family.base, market if family.scope == "market" else None
                    )
                    for i in range(PER_KIND):
                        await outbox.enqueue(
                            conn,
                            topic=topic,
                            event_type=kind,
                            key=f"{market}-{i}",
                            data={"run": run, "market": market, "seq": i},
                        )
        relay = outbox.Relay(pool, bootstrap, replication_factor=1)  # one-broker clusters
        await relay.start()
        try:
            while await relay.publish_once():
                pass
        finally:
            await relay.stop()
    finally:
        await pool.close()


def expected_counts() -> dict[str, dict[str, int]]:
    """cluster -> topic -> events of the run, from the residency table."""
    out: dict[str, dict[str, int]] = {r: {} for r in rf.REGIONS}
    for market, home in rf.HOME.items():
        for kind in KINDS:
            family = classification.of_event(kind)
            if family.scope == "market":
                topic = classification.market_topic(family.base, market)
                holders = [r for r in rf.REGIONS if rf.JURISDICTION[r] in rf.ALLOWED[market]]
            else:
                topic = family.base
                holders = list(rf.REGIONS)
            for region in holders:
                name = topic if region == home else f"{home}.{topic}"
                out[region][name] = out[region].get(name, 0) + PER_KIND
    return out


def table(counts: dict[str, dict[str, int]]) -> str:
    rows = [(c, t, str(n)) for c in sorted(counts) for t, n in sorted(counts[c].items())]
    width = max(len(t) for _, t, _ in rows)
    lines = [f"{'CLUSTER':<13} {'TOPIC':<{width}} EVENTS"]
    lines += [f"{c:<13} {t:<{width}} {n}" for c, t, n in rows]
    return "\n".join(lines)


async def counts_of(kafka_clusters: KafkaClusters, run: str) -> dict[str, dict[str, int]]:
    out = {}
    for region in rf.REGIONS:
        got = await rf.run_events(kafka_clusters[region].bootstrap, run)
        out[region] = {t: len(ids) for t, ids in got.items() if ids}
    return out


async def test_personal_and_payment_events_stay_where_residency_allows(
    kafka_clusters: KafkaClusters, postgres: Postgres, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    clusters = kafka_clusters.start_many(*rf.REGIONS)
    regions = rf.fleet()
    started = time.monotonic()
    mm2s += [fleet_h.start_mm2(kafka_clusters, r, regions, clusters, tmp_path) for r in regions]
    await asyncio.gather(
        *(produce_home_events(postgres, clusters[r].bootstrap, r, run) for r in rf.REGIONS)
    )
    want = expected_counts()
    # the table is not vacuous: EU markets reach the other EU region, US/BR reach EU, IN stays
    assert want["eu-central-1"]["eu-west-1.checkout.order-placed.NL"] == PER_KIND
    assert want["eu-west-1"]["us-east-1.checkout.customers.BR"] == PER_KIND
    assert not any(".NL" in t or ".DE" in t for t in want["us-east-1"])
    assert not any(t.endswith(".IN") for r in rf.REGIONS if r != "ap-south-1" for t in want[r])
    assert all(
        f"{h}.checkout.stock-deltas" in want[r] for r in rf.REGIONS for h in rf.REGIONS if h != r
    )

    deadline = time.monotonic() + 420
    got = await counts_of(kafka_clusters, run)
    while got != want and time.monotonic() < deadline:
        await asyncio.sleep(3)
        got = await counts_of(kafka_clusters, run)
    reached = time.monotonic() - started
    # quiescence: several topic refresh intervals later nothing more has arrived anywhere
    await asyncio.sleep(5 * fleet_h.TEST_TUNING["refreshIntervalSeconds"] + 5)
    final = await counts_of(kafka_clusters, run)
    print(f"\nreplication reached the expected state in {reached:.1f} s\n{table(final)}")
    for region in rf.REGIONS:
        assert final[region] == want[region], (
            f"{region}: got {final[region]}, want {want[region]}; MM2 logs {[m.log for m in mm2s]}"
        )
    # the decisive negatives, spelled out
    for region in rf.REGIONS:
        for topic in final[region]:
            info = classification.classify_topic(topic)
            assert info is not None
            if info.family.restricted:
                assert info.market is not None
                assert rf.JURISDICTION[region] in rf.ALLOWED[info.market], (region, topic)
