"""GDPR erasure on real PostgreSQL and Kafka with MirrorMaker 2 from the rendered config.

Two EU regions: eu-west-1 is home of market IE, eu-central-1 pulls from it (its MM2, as
rendered). A customer checks out twice in eu-west-1 (the orders saga's real place-order step);
the profile goes through the outbox to the compacted ``checkout.customers.IE`` and is applied as
a replica in eu-central-1. ``checkout-services privacy erase`` (a real subprocess) then must
leave no personal field of that customer in either region's database, and log compaction must
drop it from both the home topic and the replicated copy, while the orders still total.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import mm2_fleet as fleet_h
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter

from checkout_contract import config
from checkout_services.common import db, outbox
from checkout_services.orders import privacy
from checkout_services.orders.activities import Activities
from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.components.postgres import Postgres
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

HOME, REPLICA = "eu-west-1", "eu-central-1"
MARKET = fleet_h.MARKETS[HOME]  # IE
ORDERS_MIGRATIONS = (db.COMMON_MIGRATIONS, "checkout_services.orders.migrations")
BIN = Path(sys.executable).parent
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.ms": "1000",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "1000",
    "min.compaction.lag.ms": "0",
}


def region_config(name: str) -> config.RegionConfig:
    return config.RegionConfig(
        region=name,
        fleet="replication-test",
        jurisdiction="EU",
        home_markets=(fleet_h.MARKETS[name],),
        endpoints={},
        kafka_replication_factor=1,  # one-broker test clusters
    )


async def ensure_compacted(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=COMPACTED)])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def running(*coros: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def all_values(bootstrap: str, topic: str) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[bytes | None] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out += [r.value for r in records]
        return out
    finally:
        await consumer.stop()


async def database_text(pool: Any) -> str:
    """Every row of every table of a database, as text (what a search for a person sees)."""
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    out = []
    for t in tables:
        name = t["tablename"]
        rows = await pool.fetch(f'SELECT t::text AS row FROM "{name}" t')
        out += [f"{name}: {r['row']}" for r in rows]
    return "\n".join(out)


async def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, off the event loop (the relay and the applier keep going)."""
    return await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, env=env)


async def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(1)


async def test_erasure_reaches_every_region_allowed_a_copy_and_orders_still_total(
    kafka_clusters: KafkaClusters, postgres: Postgres, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    clusters = kafka_clusters.start_many(HOME, REPLICA)
    home_cfg = region_config(HOME)
    topic = privacy.customers_topic(home_cfg, MARKET)
    await ensure_compacted(clusters[HOME].bootstrap, topic)
    home_dsn = postgres.create_database(f"erase_home_{tag}")
    home = await db.create_pool(home_dsn)
    replica = await db.create_pool(postgres.create_database(f"erase_replica_{tag}"))
    await db.migrate(home, *ORDERS_MIGRATIONS)
    await db.migrate(replica, *ORDERS_MIGRATIONS)

    fleet = [fleet_h.region(REPLICA, [HOME]), fleet_h.region(HOME, [])]
    mm2s.append(fleet_h.start_mm2(kafka_clusters, fleet[0], fleet, clusters, tmp_path))

    jane = {
        "customer_id": f"cust-jane-{tag}",
        "email": f"jane.{tag}@example.ie",
        "name": f"Jane Murphy {tag}",
        "address": {
            "line1": f"{tag} Grafton Street",
            "city": "Dublin",
            "postal_code": "D02",
            "country": "IE",
        },
    }
    john = {
        "customer_id": f"cust-john-{tag}",
        "email": f"john.{tag}@example.ie",
        "name": f"John Byrne {tag}",
        "address": {**jane["address"], "line1": f"{tag} O'Connell Street"},
    }
    personal = [jane["email"], jane["name"], jane["address"]["line1"]]

    relay = outbox.Relay(home, clusters[HOME].bootstrap, idle_sleep=0.2, replication_factor=1)
    applier = privacy.ReplicaApplier(replica, clusters[REPLICA].bootstrap, REPLICA)
    async with (
        running(relay.run(), applier.run()),
        httpx.AsyncClient() as http,
    ):
        acts = Activities(
            http, home, home_cfg, Counter("o", "o", ["outcome"], registry=CollectorRegistry())
        )
        orders = {f"co-{tag}-1": 2599, f"co-{tag}-2": 1099, f"co-{tag}-3": 4999}
        for n, (cid, total) in enumerate(orders.items()):
            who = jane if n < 2 else john
            customer_id = await privacy.record_customer(home, home_cfg, MARKET, who)
            inp = {
                "checkout_id": cid,
                "market": MARKET,
                "currency": "EUR",
                "lines": [{"sku": "tee", "quantity": 1}],
                "customer_id": customer_id,
            }
            await acts.place_order(inp, {"total": total, "snapshot_id": f"snap-{n}"})

        async def replicated() -> bool:
            rows = await replica.fetch(
                "SELECT customer_id, email, source_region FROM customer_replicas"
                " WHERE customer_id = ANY($1::text[])",
                [jane["customer_id"], john["customer_id"]],
            )
            return {(r["email"], r["source_region"]) for r in rows} == {
                (jane["email"], HOME),
                (john["email"], HOME),
            }

        await wait_until(replicated, 300, "the customers' replicas in eu-central-1")
        assert jane["email"] in await database_text(replica)

        env = {
            **os.environ,
            "DATABASE_URL": home_dsn,
            "REGION_CONFIG_FILE": str(tmp_path / "region.json"),
        }
        (tmp_path / "region.json").write_text(home_cfg.model_dump_json(by_alias=True))
        erase = [str(BIN / "checkout-services"), "privacy", "erase", jane["customer_id"]]
        proc = await run_cli(erase, env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {
            "erased": True,
            "alreadyErased": False,
            "market": MARKET,
            "ordersAnonymised": 2,
            "outboxRowsDeleted": 1,
        }
        again = await run_cli(erase, env)
        assert again.returncode == 0
        assert json.loads(again.stdout)["alreadyErased"] is True
        unknown = await run_cli([*erase[:-1], "cust-nobody"], env)
        assert unknown.returncode == 1
        assert "no customer 'cust-nobody'" in unknown.stderr
        assert "Traceback" not in unknown.stderr

        async def replica_erased() -> bool:
            n = await replica.fetchval(
                "SELECT count(*) FROM customer_replicas WHERE customer_id = $1",
                jane["customer_id"],
            )
            return bool(n == 0)

        await wait_until(replica_erased, 300, "the tombstone applied in eu-central-1")
        # later writes roll the compacted segments so the log cleaner can drop the old records
        for i in range(3):
            await asyncio.sleep(1.5)
            await privacy.record_customer(home, home_cfg, MARKET, {**john, "name": f"J{i}"})

        copy = f"{HOME}.{topic}"

        async def compacted() -> bool:
            for bootstrap, name in (
                (clusters[HOME].bootstrap, topic),
                (clusters[REPLICA].bootstrap, copy),
            ):
                values = await all_values(bootstrap, name)
                if any(v is not None and jane["email"].encode() in v for v in values):
                    return False
            return True

        started = time.monotonic()
        await wait_until(compacted, 240, "log compaction of jane's records on both clusters")
        print(f"\ncompaction removed the erased profile in {time.monotonic() - started:.1f} s")

    await relay.stop()
    for pool, where in ((home, HOME), (replica, REPLICA)):
        text = await database_text(pool)
        for value in personal:
            assert value not in text, f"{value!r} still in {where}'s database"
    # john is untouched, jane's orders are anonymous and still add up
    assert john["email"] in await database_text(replica)
    rows = await home.fetch(
        "SELECT checkout_id, total, currency, customer_id, lines FROM orders"
        " WHERE checkout_id = ANY($1::text[]) ORDER BY checkout_id",
        list(orders),
    )
    assert [(r["checkout_id"], r["total"], r["currency"]) for r in rows] == [
        (cid, total, "EUR") for cid, total in orders.items()
    ]
    assert [r["customer_id"] for r in rows] == [None, None, john["customer_id"]]
    assert sum(r["total"] for r in rows) == sum(orders.values())
    assert await home.fetchval("SELECT count(*) FROM erasures WHERE origin = 'home'") == 1
    assert await replica.fetchval("SELECT count(*) FROM erasures WHERE origin = 'replica'") == 1
    await home.close()
    await replica.close()
