"""Customers' personal data and its erasure (GDPR art. 17), in the home region and in replicas.

* :func:`record_customer` (the orders API, before the saga starts, so the workflow history only
  ever holds the customer id): upsert ``customers`` and write ``CUSTOMER_UPSERTED`` to the
  compacted ``checkout.customers.<MARKET>`` topic, keyed by customer id, in one transaction.
  MirrorMaker 2 copies it only to regions the market's residency allows.
* :class:`ReplicaApplier` (every region): applies the replicated copies
  ``<source>.checkout.customers.<MARKET>`` into ``customer_replicas``; a tombstone (null value)
  deletes the copy and records the erasure.
* :func:`erase` (``checkout-services privacy erase CUSTOMER``, in the home region): deletes the
  profile, clears ``orders.customer_id`` (amounts, currency and lines stay, so totals and tax
  still add up), deletes the outbox rows that carried the profile and enqueues the tombstone
  (``CUSTOMER_ERASED``), all in one transaction. Compaction then removes every earlier record of
  the key from the home topic and from each replicated copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer

from checkout_contract import classification, config
from checkout_services.common import outbox, scrub
from checkout_services.orders import exceptions

log = logging.getLogger("checkout_services.orders.privacy")
EVENT_NS = uuid.UUID("3c9e8f0a-6d2b-4f7e-9a1c-5b8d7e6f4a21")
REPLICA_TOPICS = re.compile(r"^[a-z0-9][a-z0-9-]*\.checkout\.customers\.[A-Z]{2}$")


def subject_hash(customer_id: str) -> str:
    return hashlib.sha256(customer_id.encode()).hexdigest()


def customers_topic(region: config.RegionConfig, market: str) -> str:
    return classification.market_topic(region.topics.customers, market)


async def record_customer(
    pool: asyncpg.Pool,
    region: config.RegionConfig,
    market: str,
    customer: dict[str, Any],
    owner: str | None = None,
) -> str:
    """Upsert the customer's profile and publish it (outbox); returns the customer id. A
    profile holding a card number anywhere is refused, not stored. With ``owner`` (the caller's
    tag) the customer id is bound to it: another caller's profile is never overwritten (409)."""
    found = scrub.pan_field(customer)
    if found is not None:
        raise scrub.CardNumberRefused(
            f"customer.{found} looks like a card number: not stored", field=f"customer.{found}"
        )
    cid = str(customer["customer_id"])
    address = customer.get("address")
    async with pool.acquire() as conn, conn.transaction():
        if owner is not None:
            holder = await conn.fetchrow(
                "SELECT owner FROM customers WHERE customer_id = $1 FOR UPDATE", cid
            )
            if holder is not None and holder["owner"] not in (None, owner):
                raise exceptions.CustomerIdTaken(
                    "this customer_id belongs to another client", field="customer.customer_id"
                )
        changed = await conn.fetchval(
            "INSERT INTO customers (customer_id, market, email, name, address, owner)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6)"
            " ON CONFLICT (customer_id) DO UPDATE SET email = EXCLUDED.email,"
            " name = EXCLUDED.name, address = EXCLUDED.address, updated_at = now(),"
            " owner = COALESCE(customers.owner, EXCLUDED.owner)"
            " WHERE (customers.email, customers.name, customers.address, customers.owner)"
            " IS DISTINCT FROM (EXCLUDED.email, EXCLUDED.name, EXCLUDED.address,"
            " COALESCE(customers.owner, EXCLUDED.owner))"
            " RETURNING 1",
            cid,
            market,
            customer.get("email"),
            customer.get("name"),
            json.dumps(address) if address is not None else None,
            owner,
        )
        if changed:
            await outbox.enqueue(
                conn,
                topic=customers_topic(region, market),
                event_type="CUSTOMER_UPSERTED",
                key=cid,
                data={
                    "customerId": cid,
                    "market": market,
                    "email": customer.get("email"),
                    "name": customer.get("name"),
                    "address": address,
                },
            )
    return cid


@dataclass(frozen=True)
class Erased:
    customer_id: str
    market: str
    orders_anonymised: int
    outbox_rows_deleted: int
    already: bool = False


class UnknownCustomer(LookupError):
    pass


async def erase(pool: asyncpg.Pool, region: config.RegionConfig, customer_id: str) -> Erased:
    """Erase ``customer_id`` in this (home) region and enqueue the tombstone for the replicas."""
    digest = subject_hash(customer_id)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "DELETE FROM customers WHERE customer_id = $1 RETURNING market", customer_id
        )
        if row is None:
            done = await conn.fetchrow(
                "SELECT market FROM erasures WHERE subject_hash = $1 AND origin = 'home'", digest
            )
            if done is not None:
                return Erased(customer_id, done["market"], 0, 0, already=True)
            raise UnknownCustomer(
                f"no customer {customer_id!r} in this region's database: run the erasure in "
                "the customer's home region (replicas follow its tombstone)"
            )
        market = row["market"]
        anonymised = await conn.fetchval(
            "WITH o AS (UPDATE orders SET customer_id = NULL, updated_at = now()"
            " WHERE customer_id = $1 RETURNING 1) SELECT count(*) FROM o",
            customer_id,
        )
        topic = customers_topic(region, market)
        deleted = await conn.fetchval(
            "WITH d AS (DELETE FROM outbox WHERE topic = $1 AND key = $2 RETURNING 1)"
            " SELECT count(*) FROM d",
            topic,
            customer_id,
        )
        await conn.execute(
            "INSERT INTO erasures (subject_hash, market, origin) VALUES ($1, $2, 'home')"
            " ON CONFLICT (subject_hash) DO NOTHING",
            digest,
            market,
        )
        await outbox.enqueue(
            conn,
            topic=topic,
            event_type="CUSTOMER_ERASED",
            key=customer_id,
            event_id=uuid.uuid5(EVENT_NS, f"erased:{digest}"),
            data={"market": market},
        )
    return Erased(customer_id, market, int(anonymised), int(deleted))


async def apply_replica_record(
    pool: asyncpg.Pool, topic: str, key: bytes | None, value: bytes | None
) -> str:
    """Apply one record of a replicated customers topic; returns what it did."""
    if key is None or not REPLICA_TOPICS.match(topic):
        return "ignored"
    customer_id = key.decode()
    source = topic.split(".checkout.customers.", 1)[0]
    market = topic.rsplit(".", 1)[1]
    if value is None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM customer_replicas WHERE customer_id = $1", customer_id)
            await conn.execute(
                "INSERT INTO erasures (subject_hash, market, origin) VALUES ($1, $2, 'replica')"
                " ON CONFLICT (subject_hash) DO NOTHING",
                subject_hash(customer_id),
                market,
            )
        return "erased"
    event = json.loads(value)
    if event.get("type") != "CUSTOMER_UPSERTED":
        return "ignored"
    data = event["data"]
    await pool.execute(
        "INSERT INTO customer_replicas (customer_id, market, source_region, email, name, address)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (customer_id) DO UPDATE SET"
        " email = EXCLUDED.email, name = EXCLUDED.name, address = EXCLUDED.address,"
        " source_region = EXCLUDED.source_region, updated_at = now()",
        customer_id,
        market,
        source,
        data.get("email"),
        data.get("name"),
        json.dumps(data.get("address")) if data.get("address") is not None else None,
    )
    return "upserted"


class ReplicaApplier:
    """Consume every replicated customers topic of this region's Kafka into the replicas table
    (a committed consumer group: at least once; applying a record twice changes nothing)."""

    def __init__(self, pool: asyncpg.Pool, bootstrap: str, region: str) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.group = f"checkout-privacy-{region}"
        self.applied = 0

    async def run(self) -> None:
        backoff = 0.2
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                metadata_max_age_ms=2000,
            )
            try:
                await consumer.start()
                consumer.subscribe(pattern=REPLICA_TOPICS.pattern)
                backoff = 0.2
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                    for tp, records in batches.items():
                        for r in records:
                            await apply_replica_record(self.pool, tp.topic, r.key, r.value)
                            self.applied += 1
                    if batches:
                        await consumer.commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("customer replica applier: %s; retrying", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
