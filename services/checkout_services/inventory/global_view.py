"""The global availability view: every region's stock, as this region sees it.

Reservations stay local and authoritative (``stock`` / ``reservations``); this is a read view.
Each stock change writes a ``STOCK_DELTA`` in its own transaction (outbox, keyed by region so a
region's stream keeps its order on one partition); MirrorMaker 2 mirrors ``checkout.stock-deltas``
(an aggregate) to every region. :class:`Reconciler` consumes the region's own stream and every
mirrored copy ``<source>.checkout.stock-deltas``, applies each delta exactly once
(``stock_applied``) into ``global_stock`` (one row per source region and SKU), and at each
``STOCK_CHECKPOINT`` (a source's true stock at that point of its stream, see
``InventoryService.checkpoint``) compares its view of that source with the truth. A difference is
a divergence: the ``checkout_inventory_divergent_skus{source}`` gauge, an ``INVENTORY_DIVERGENCE``
event (aggregate) and a warning; the last result per source is kept in ``stock_checkpoints``.
Deltas commute, so order across sources, redelivery and a Kafka outage change nothing once the
streams are caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry, Counter, Gauge

from checkout_contract import config
from checkout_services.common import outbox

log = logging.getLogger("checkout_services.inventory.global_view")


def topics_pattern(region: config.RegionConfig) -> str:
    base = re.escape(region.topics.stock_deltas)
    return rf"^(?:[a-z0-9][a-z0-9-]*\.)?{base}$"


@dataclass
class ReconcilerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.divergent = Gauge(
            "checkout_inventory_divergent_skus",
            "SKUs whose global view of a source region differed from its last checkpoint",
            ["source"],
            registry=self.registry,
        )
        self.checkpoints = Counter(
            "checkout_inventory_checkpoints_total",
            "Checkpoints of source regions compared with the global view, by result",
            ["source", "result"],
            registry=self.registry,
        )
        self.applied = Counter(
            "checkout_inventory_deltas_applied_total",
            "Stock deltas applied to the global view (duplicates not counted)",
            registry=self.registry,
        )


@dataclass(frozen=True)
class Checked:
    source: str
    diverged: dict[str, dict[str, int]]


async def apply_deltas(conn: Any, events: Iterable[tuple[uuid.UUID, str, dict[str, int]]]) -> int:
    """Apply (event id, source region, {sku: delta}) once each; returns how many were new."""
    seen: set[uuid.UUID] = set()
    ids: list[uuid.UUID] = []
    regions: list[str] = []
    skus: list[str] = []
    deltas: list[int] = []
    for eid, region, moves in events:
        if eid in seen:
            continue
        seen.add(eid)
        for sku, delta in moves.items():
            ids.append(eid)
            regions.append(region)
            skus.append(sku)
            deltas.append(int(delta))
    if not seen:
        return 0
    fresh: int = await conn.fetchval(
        "WITH incoming AS ("
        "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[])"
        "  AS i(event_id, region, sku, delta)),"
        " fresh AS (INSERT INTO stock_applied (event_id) SELECT unnest($5::uuid[])"
        "  ON CONFLICT DO NOTHING RETURNING event_id),"
        " applied AS (INSERT INTO global_stock (region, sku, available)"
        "  SELECT i.region, i.sku, sum(i.delta) FROM incoming i"
        "  WHERE i.event_id IN (SELECT event_id FROM fresh) GROUP BY i.region, i.sku"
        "  ON CONFLICT (region, sku) DO UPDATE"
        "  SET available = global_stock.available + EXCLUDED.available, updated_at = now()"
        "  RETURNING 1)"
        " SELECT count(*) FROM fresh",
        ids,
        regions,
        skus,
        deltas,
        list(seen),
    )
    return fresh


async def check(
    conn: Any,
    observer: config.RegionConfig,
    eid: uuid.UUID,
    source: str,
    truth: dict[str, int],
) -> Checked | None:
    """Compare the view of ``source`` with its checkpoint (once per checkpoint event)."""
    first = await conn.fetchval(
        "INSERT INTO stock_applied (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1", eid
    )
    if not first:
        return None
    rows = await conn.fetch("SELECT sku, available FROM global_stock WHERE region = $1", source)
    view = {r["sku"]: int(r["available"]) for r in rows}
    diverged = {
        sku: {"view": view.get(sku, 0), "truth": int(truth.get(sku, 0))}
        for sku in sorted(set(view) | set(truth))
        if view.get(sku, 0) != int(truth.get(sku, 0))
    }
    await conn.execute(
        "INSERT INTO stock_checkpoints (source_region, event_id, diverged_skus, detail)"
        " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (source_region) DO UPDATE SET"
        " event_id = EXCLUDED.event_id, diverged_skus = EXCLUDED.diverged_skus,"
        " detail = EXCLUDED.detail, checked_at = now()",
        source,
        eid,
        len(diverged),
        json.dumps(diverged),
    )
    if diverged:
        await outbox.enqueue(
            conn,
            topic=observer.topics.inventory_divergence,
            event_type="INVENTORY_DIVERGENCE",
            key=source,
            event_id=uuid.uuid5(eid, observer.region),
            data={"observer": observer.region, "source": source, "skus": diverged},
        )
    return Checked(source, diverged)


class Reconciler:
    """One per region: keeps ``global_stock`` from every region's delta stream."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap: str,
        region: config.RegionConfig,
        metrics: ReconcilerMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.region = region
        self.metrics = metrics or ReconcilerMetrics()
        self.group = f"checkout-inventory-global-{region.region}"

    async def apply(self, records: list[dict[str, Any]]) -> list[Checked]:
        """Apply a batch of envelopes of one partition, in order (one transaction)."""
        results: list[Checked] = []
        pending: list[tuple[uuid.UUID, str, dict[str, int]]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for event in records:
                data = event.get("data", {})
                if event.get("type") == "STOCK_DELTA":
                    pending.append((uuid.UUID(event["eventId"]), data["region"], data["moves"]))
                elif event.get("type") == "STOCK_CHECKPOINT":
                    self.metrics.applied.inc(await apply_deltas(conn, pending))
                    pending = []
                    done = await check(
                        conn,
                        self.region,
                        uuid.UUID(event["eventId"]),
                        data["region"],
                        data["stock"],
                    )
                    if done is not None:
                        results.append(done)
            self.metrics.applied.inc(await apply_deltas(conn, pending))
        for done in results:
            self.metrics.divergent.labels(done.source).set(len(done.diverged))
            self.metrics.checkpoints.labels(
                done.source, "diverged" if done.diverged else "agreed"
            ).inc()
            if done.diverged:
                log.warning(
                    "inventory view of %s diverged from its checkpoint on %d SKUs: %s",
                    done.source,
                    len(done.diverged),
                    ", ".join(sorted(done.diverged)[:10]),
                )
        return results

    async def run(self) -> None:
        backoff = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                metadata_max_age_ms=2000,
                max_poll_records=2000,
            )
            try:
                await consumer.start()
                consumer.subscribe(pattern=topics_pattern(self.region))
                backoff = 0.2
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                    for records in batches.values():
                        await self.apply([json.loads(r.value) for r in records if r.value])
                    if batches:
                        await consumer.commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inventory reconciler: %s: %s; retrying", type(exc).__name__, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()


async def global_view(pool: asyncpg.Pool) -> dict[str, dict[str, int]]:
    """sku -> {region: available, ..., "total": sum} as this region sees it."""
    rows = await pool.fetch("SELECT region, sku, available FROM global_stock ORDER BY sku, region")
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        entry = out.setdefault(r["sku"], {"total": 0})
        entry[r["region"]] = int(r["available"])
        entry["total"] += int(r["available"])
    return out
