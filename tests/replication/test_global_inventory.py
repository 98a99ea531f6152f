"""Global inventory on real PostgreSQL and Kafka with MirrorMaker 2 from the rendered config.

Three regions (us-east-1, eu-west-1, eu-central-1: stock deltas are aggregates, so they cross
jurisdictions), each with its own inventory database, outbox relay, reconciler and MM2. 10,000
random stock movements (reservations, releases, restocks through the inventory service's own
methods) spread over the regions; in the middle us-east-1's Kafka is down for 30 s while the
movements go on. After recovery every region's global view must equal every region's local
truth (and so their sums), every region must have checked every source's final checkpoint
without divergence, and a view tampered with afterwards must be reported as a divergence
(metric, event, stored result). Reservations never leave their region's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mm2_fleet as fleet_h
import pytest
import residency_fleet as rf
import yaml
from prometheus_client import CollectorRegistry, Counter

from checkout_contract import config
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_services.common import db, outbox, write_guard
from checkout_services.inventory import exceptions, global_view, schemas
from checkout_services.inventory.service import InventoryService
from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.components.postgres import Postgres
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

REGIONS = ("eu-central-1", "eu-west-1", "us-east-1")
DOWN = "us-east-1"
MOVEMENTS = 10_000
SKUS = [f"sku-{i:02d}" for i in range(24)]
MIGRATIONS = (db.COMMON_MIGRATIONS, "checkout_services.inventory.migrations")


def three_region_fleet() -> list[CheckoutRegion]:
    out = []
    for doc in yaml.safe_load_all(rf.FLEET_FILE.read_text()):
        if doc["spec"]["region"] not in REGIONS:
            continue
        rep = doc["spec"]["replication"]
        rep["peers"] = [p for p in rep["peers"] if p["region"] in REGIONS]
        rep.update(fleet_h.TEST_TUNING)
        obj = load.parse(doc)
        assert isinstance(obj, CheckoutRegion)
        out.append(obj)
    return sorted(out, key=lambda r: r.spec.region)


def routing_doc() -> dict[str, Any]:
    markets = [
        {"market": m, "writer": h, "epoch": 1, "readRegions": list(REGIONS), "state": "Serving"}
        for m, h in sorted(rf.HOME.items())
        if h in REGIONS
    ]
    regions = [
        {"name": r, "jurisdiction": rf.JURISDICTION[r], "gatewayUrl": f"http://{r}.example"}
        for r in REGIONS
    ]
    return {"fleet": "residency", "regions": regions, "markets": markets}


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


@contextlib.asynccontextmanager
async def stopping_relays(regions: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for r in regions:
            await r.relay.stop()


class Region:
    def __init__(self, name: str, pool: Any, svc: InventoryService, bootstrap: str) -> None:
        self.name = name
        self.pool = pool
        self.svc = svc
        self.market = next(m for m, h in rf.HOME.items() if h == name)
        self.held: list[str] = []
        self.metrics = global_view.ReconcilerMetrics()
        self.reconciler = global_view.Reconciler(pool, bootstrap, svc.region, self.metrics)
        self.relay = outbox.Relay(pool, bootstrap, idle_sleep=0.05, replication_factor=1)

    async def truth(self) -> dict[str, int]:
        rows = await self.pool.fetch("SELECT sku, available FROM stock")
        return {r["sku"]: int(r["available"]) for r in rows}

    async def view(self) -> dict[str, dict[str, int]]:
        rows = await self.pool.fetch("SELECT region, sku, available FROM global_stock")
        out: dict[str, dict[str, int]] = {r: {} for r in REGIONS}
        for r in rows:
            out[r["region"]][r["sku"]] = int(r["available"])
        return out


async def move(region: Region, rng: random.Random) -> int:
    """One random operation; returns the stock movements (deltas) it made (0 or 1; a restock
    racing a reservation of the same SKU may make none: the count in the outbox is the truth)."""
    roll = rng.random()
    if roll < 0.5:
        lines = [
            {"sku": sku, "quantity": rng.randint(1, 3)}
            for sku in rng.sample(SKUS, rng.randint(1, 2))
        ]
        cid = f"co-{uuid.uuid4().hex[:12]}"
        req = schemas.ReserveRequest(checkout_id=cid, market=region.market, lines=lines)
        try:
            await region.svc.reserve(req)
        except exceptions.OutOfStock:
            return 0
        region.held.append(cid)
        return 1
    if roll < 0.75 and region.held:
        cid = region.held.pop(rng.randrange(len(region.held)))
        await region.svc.release(cid)
        return 1
    if roll < 0.85 and region.held:
        await region.svc.commit(region.held.pop(rng.randrange(len(region.held))))
        return 0
    sku = rng.choice(SKUS)
    current = (await region.svc.get_stock(sku)).available
    await region.svc.set_stock(sku, current + rng.randint(1, 25))
    return 1


async def test_global_views_agree_with_local_truths_after_a_kafka_outage(
    kafka_clusters: KafkaClusters, postgres: Postgres, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    clusters = kafka_clusters.start_many(*REGIONS)
    fleet = three_region_fleet()
    routing_file = tmp_path / "routing.json"
    routing_file.write_text(json.dumps(routing_doc()))
    regions: dict[str, Region] = {}
    for name in REGIONS:
        pool = await db.create_pool(
            postgres.create_database(f"ginv_{name.replace('-', '_')}_{tag}")
        )
        await db.migrate(pool, *MIGRATIONS)
        cfg = config.RegionConfig(
            region=name,
            fleet="residency",
            jurisdiction=rf.JURISDICTION[name],
            home_markets=tuple(m for m, h in rf.HOME.items() if h == name),
            endpoints={},
        )
        guard = write_guard.WriteGuard(name, routing_file)
        expired = Counter("e", "e", registry=CollectorRegistry())
        regions[name] = Region(
            name, pool, InventoryService(pool, cfg, guard, expired), clusters[name].bootstrap
        )
    # opening stock: a movement per SKU per region
    for r in regions.values():
        for sku in SKUS:
            await r.svc.set_stock(sku, 40)
    made = len(SKUS) * len(REGIONS)

    mm2 = {
        r.spec.region: fleet_h.start_mm2(kafka_clusters, r, fleet, clusters, tmp_path)
        for r in fleet
    }
    mm2s += mm2.values()
    rng = random.Random(20261126)
    started = time.monotonic()
    outage: tuple[float, float] | None = None
    tasks = [r.relay.run() for r in regions.values()] + [
        r.reconciler.run() for r in regions.values()
    ]
    async with stopping_relays(regions.values()), running(*tasks):
        while made < MOVEMENTS + 100:
            if outage is None and made >= MOVEMENTS // 2:
                down_at = time.monotonic()
                # the region's Kafka goes down and its MirrorMaker 2 (which writes into it) with
                # it; the peers' MM2s keep running and must pick the region up by themselves
                await asyncio.to_thread(mm2[DOWN].stop)
                await asyncio.to_thread(kafka_clusters.stop, DOWN)
                # movements go on everywhere (us-east-1 too: its relay backs off and retries)
                while time.monotonic() - down_at < 30:
                    batch = [move(rng.choice(list(regions.values())), rng) for _ in range(10)]
                    made += sum(await asyncio.gather(*batch))
                await asyncio.to_thread(kafka_clusters.start, DOWN)
                # its Deployment restarts the MM2 pod, with the same rendered configuration
                target = next(r for r in fleet if r.spec.region == DOWN)
                mm2[DOWN] = await asyncio.to_thread(
                    fleet_h.start_mm2, kafka_clusters, target, fleet, clusters, tmp_path / "again"
                )
                mm2s.append(mm2[DOWN])
                outage = (down_at - started, time.monotonic() - started)
            batch = [move(rng.choice(list(regions.values())), rng) for _ in range(10)]
            made += sum(await asyncio.gather(*batch))
        produced = time.monotonic() - started
        finals = {name: str(await r.svc.checkpoint()) for name, r in regions.items()}

        async def differences() -> list[str]:
            truths = {name: await r.truth() for name, r in regions.items()}
            out = []
            for r in regions.values():
                view = await r.view()
                for source in REGIONS:
                    bad = sorted(s for s in SKUS if view[source].get(s) != truths[source].get(s))
                    if bad:
                        out.append(f"{r.name}'s view of {source}: {len(bad)} SKUs differ")
                rows = await r.pool.fetch("SELECT * FROM stock_checkpoints")
                seen = {x["source_region"]: str(x["event_id"]) for x in rows}
                out += [
                    f"{r.name} has not checked {source}'s final checkpoint"
                    for source in REGIONS
                    if seen.get(source) != finals[source]
                ]
            return out

        deadline = time.monotonic() + 600
        while diff := await differences():
            assert time.monotonic() < deadline, (
                f"global views did not converge in 600 s: {diff}; MM2 logs {[m.log for m in mm2s]}"
            )
            await asyncio.sleep(2)
        caught_up = time.monotonic() - started

        truths = {name: await r.truth() for name, r in regions.items()}
        totals = {sku: sum(truths[n][sku] for n in REGIONS) for sku in SKUS}
        for r in regions.values():
            view = await global_view.global_view(r.pool)
            assert {sku: v["total"] for sku, v in view.items()} == totals
            api = await r.svc.global_stock(SKUS[0])  # what GET /v1/stock/{sku}/global answers
            assert api.total == totals[SKUS[0]]
            assert api.regions == {n: truths[n][SKUS[0]] for n in REGIONS}
            checks = await r.pool.fetch(
                "SELECT source_region, diverged_skus FROM stock_checkpoints"
            )
            assert {(c["source_region"], c["diverged_skus"]) for c in checks} == {
                (n, 0) for n in REGIONS
            }
            # reservations are local: only this region's checkouts are in its database
            markets = {
                x["market"] for x in await r.pool.fetch("SELECT DISTINCT market FROM reservations")
            }
            assert markets <= {r.market}
        deltas = sum(
            [
                await r.pool.fetchval(
                    "SELECT count(*) FROM outbox WHERE event_type = 'STOCK_DELTA'"
                )
                for r in regions.values()
            ]
        )
        assert made - 10 <= deltas <= made
        assert deltas >= MOVEMENTS
        print(
            f"\n{deltas} stock movements over {len(REGIONS)} regions in {produced:.1f} s "
            f"({DOWN} Kafka down from {outage[0]:.0f} s to {outage[1]:.0f} s); every global view "
            f"equal to the local truths {caught_up - produced:.1f} s after the last movement"
        )

        # divergence: eu-west-1's view of us-east-1 loses a delta; the next checkpoint shows it
        observer = regions["eu-west-1"]
        await observer.pool.execute(
            "UPDATE global_stock SET available = available - 7 WHERE region = $1 AND sku = $2",
            DOWN,
            SKUS[0],
        )
        await regions[DOWN].svc.checkpoint()

        async def detected() -> bool:
            n = await observer.pool.fetchval(
                "SELECT diverged_skus FROM stock_checkpoints WHERE source_region = $1", DOWN
            )
            return bool(n == 1)

        deadline = time.monotonic() + 120
        while not await detected():
            assert time.monotonic() < deadline, "divergence not detected in 120 s"
            await asyncio.sleep(1)
        assert observer.metrics.divergent.labels(DOWN)._value.get() == 1
        event = await observer.pool.fetchrow(
            "SELECT topic, payload FROM outbox WHERE event_type = 'INVENTORY_DIVERGENCE'"
        )
        assert event["topic"] == "checkout.inventory-divergence"
        detail = json.loads(event["payload"])["data"]
        want = truths[DOWN][SKUS[0]]
        assert detail == {
            "observer": "eu-west-1",
            "source": DOWN,
            "skus": {SKUS[0]: {"view": want - 7, "truth": want}},
        }
        # the other observers saw no divergence
        for name in ("eu-central-1",):
            n = await regions[name].pool.fetchval(
                "SELECT diverged_skus FROM stock_checkpoints WHERE source_region = $1", DOWN
            )
            assert n == 0
    for r in regions.values():
        await r.pool.close()
