"""The promises, checked from the systems of record after the run.

* double charges: the PSP simulator's ledger (authorizations not voided, captures, per checkout);
* oversold units: every region's inventory database (sold + held + available vs the stock set);
* acknowledged orders missing: every acknowledged checkout must have its order row in the
  database of the region that acknowledged it, and its ORDER_PLACED event in that region's
  Kafka (the outbox publishes at least once).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

ORDER_PLACED = "checkout.order-placed"


@dataclass
class Verdict:
    double_charges: int = 0
    double_charged: list[str] = field(default_factory=list)
    captured_twice: int = 0
    oversold_units: int = 0
    stock: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    missing_in_db: list[str] = field(default_factory=list)
    missing_in_kafka: list[str] = field(default_factory=list)
    completed: int = 0
    orders_by_state: dict[str, int] = field(default_factory=dict)
    ledger_totals: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return len(set(self.missing_in_db) | set(self.missing_in_kafka))


def double_charges(ledger: Mapping[str, Any], verdict: Verdict) -> None:
    verdict.ledger_totals = dict(ledger.get("totals") or {})
    for ref, row in (ledger.get("checkouts") or {}).items():
        if row.get("charged", 0) > 1 or row.get("captures", 0) > 1:
            verdict.double_charged.append(ref)
        if row.get("captures", 0) > 1:
            verdict.captured_twice += 1
    verdict.double_charges = len(verdict.double_charged)


async def inventory(region: str, dsn: str, initial: Mapping[str, int], verdict: Verdict) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT sku, available FROM stock")
        held = await conn.fetch(
            "SELECT sku, state, sum(quantity)::int AS q FROM reservations GROUP BY sku, state"
        )
    finally:
        await conn.close()
    per: dict[str, dict[str, int]] = {}
    for r in rows:
        per[r["sku"]] = {"initial": initial.get(r["sku"], 0), "available": r["available"]}
    for r in held:
        per.setdefault(r["sku"], {"initial": initial.get(r["sku"], 0), "available": 0})
        per[r["sku"]][r["state"]] = r["q"]
    for sku, s in per.items():
        sold = s.get("committed", 0) + s.get("held", 0)
        over = max(0, sold - s["initial"])
        s["oversold"] = over
        verdict.oversold_units += over
        if s["available"] + sold != s["initial"] and s["initial"]:
            verdict.notes.append(
                f"{region}/{sku}: available {s['available']} + sold/held {sold} != "
                f"initial {s['initial']} (released or expired stock is counted as available)"
            )
    verdict.stock[region] = per


async def orders(region: str, dsn: str) -> dict[str, str]:
    """checkout id -> order state, of one region's database."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch("SELECT checkout_id, state FROM orders")
    finally:
        await conn.close()
    return {r["checkout_id"]: r["state"] for r in rows}


async def placed_events(bootstrap: str, topic: str = ORDER_PLACED, wait_s: float = 30) -> set[str]:
    """The checkout ids of every ORDER_PLACED event in ``topic`` and its per-market topics."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: set[str] = set()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        # the family's topics of this region: ``checkout.order-placed.<MARKET>`` (residency:
        # personal events carry their market), and the unsuffixed name of older builds
        names = [
            t
            for t in cluster.topics()
            if t == topic or re.fullmatch(re.escape(topic) + r"\.[A-Z]{2}", t)
        ]
        tps = [TopicPartition(t, p) for t in names for p in cluster.partitions_for_topic(t) or ()]
        if not tps:
            return found
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for rec in records:
                    if rec.key is not None:
                        found.add(rec.key.decode())
                    elif rec.value:
                        data = json.loads(rec.value)
                        found.add(str((data.get("data") or data).get("checkoutId")))
        return found
    finally:
        await consumer.stop()


def missing_orders(
    acknowledged: Iterable[tuple[str, str]],
    db: Mapping[str, Mapping[str, str]],
    kafka: Mapping[str, set[str]],
    verdict: Verdict,
) -> None:
    """``acknowledged``: (checkout id, region the client sent it to). The order must be in the
    database of some region (the one the client reached, or the writer a gateway forwarded it
    to), and its ORDER_PLACED event in that same region's Kafka."""
    acknowledged = list(acknowledged)
    states: dict[str, int] = {}
    for checkout_id, region in acknowledged:
        holders = [r for r in (region, *sorted(db)) if checkout_id in db.get(r, {})]
        if not holders:
            verdict.missing_in_db.append(checkout_id)
            continue
        if not any(checkout_id in kafka.get(r, set()) for r in holders):
            verdict.missing_in_kafka.append(checkout_id)
        state = db[holders[0]][checkout_id]
        states[state] = states.get(state, 0) + 1
    verdict.orders_by_state = states
    verdict.completed = states.get("fulfilment_requested", 0)
