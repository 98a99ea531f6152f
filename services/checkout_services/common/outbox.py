"""Transactional outbox and its relay to Kafka.

``enqueue`` writes the event in the caller's transaction (so the event exists iff the state
change committed). The relay claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (several
relays may run), publishes them (acks=all, idempotent producer), then stamps ``published_at``
in the same transaction. A crash between publish and commit re-publishes: delivery is at
least once, and every record carries its ``event_id`` (payload field and Kafka header) so
consumers drop duplicates.

The relay creates its topics (``common/topics.py``: partitions, replication factor, cleanup
policy, retention from one table) with the Kafka admin client when it starts, and any topic an
outbox row names that is not in its table before publishing to it: it never relies on the
broker's topic auto-creation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from checkout_contract import config
from checkout_services.common import scrub, tracing
from checkout_services.common import topics as kafka_topics

log = logging.getLogger("checkout_services.common.outbox")

CHANNEL = "checkout_outbox"
"""The Postgres NOTIFY channel :func:`enqueue` signals and the relays LISTEN on: an idle relay
sleeps until an event commits instead of polling the table."""

TOMBSTONE_EVENTS = frozenset({"CUSTOMER_ERASED"})
"""Published as a Kafka tombstone (key, null value): log compaction then drops every earlier
record of the key, and consumers (the replicas) erase it."""


async def enqueue(
    conn: asyncpg.Connection,
    *,
    topic: str,
    event_type: str,
    key: str,
    data: Mapping[str, Any],
    event_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Write one event in the caller's (open) transaction; returns its event id. The key
    becomes the Kafka record key, which nothing scrubs downstream: a key that holds a card
    number is refused (:class:`scrub.CardNumberRefused`), the payload is scrubbed."""
    eid = event_id or uuid.uuid4()
    scrub.require_no_pan(key, "key")
    data = scrub.scrub_event(event_type, data)
    envelope = {
        "eventId": str(eid),
        "type": event_type,
        "key": key,
        "occurredAt": datetime.now(UTC).isoformat(),
        "data": dict(data),
    }
    carrier = tracing.current_carrier()  # None unless tracing is on
    # One round trip: the row, and a NOTIFY that Postgres delivers to the relays' LISTEN when
    # the caller's transaction commits (never if it rolls back; several collapse into one).
    await conn.execute(
        "WITH ins AS (INSERT INTO outbox (event_id, topic, event_type, key, payload,"
        " trace_context) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING 1)"
        " SELECT pg_notify($7, '') FROM ins",
        eid,
        topic,
        event_type,
        key,
        json.dumps(envelope),
        json.dumps(carrier) if carrier is not None else None,
        CHANNEL,
    )
    return eid


def _carrier(raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


@dataclass
class RelayMetrics:
    registry: CollectorRegistry

    def __post_init__(self) -> None:
        self.published = Counter(
            "checkout_outbox_published_total",
            "Outbox events published to Kafka",
            ["topic"],
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "checkout_outbox_lag_seconds",
            "Age of the oldest unpublished outbox event (0 when none)",
            registry=self.registry,
        )
        self.pending = Gauge(
            "checkout_outbox_pending",
            "Unpublished outbox events",
            registry=self.registry,
        )


class Relay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap: str,
        *,
        metrics: RelayMetrics | None = None,
        batch: int = 200,
        idle_sleep: float = 1.0,
        topics: Mapping[str, kafka_topics.TopicSpec] | None = None,
        replication_factor: int = 3,
        topic_names: config.KafkaTopics | None = None,
    ) -> None:
        """``topics`` (from :func:`topics.plan` of the region) are created at start; a topic
        that is not among them gets its family's layout (``topics.layout_for``) and
        ``replication_factor``. An idle relay waits for :data:`CHANNEL`'s NOTIFY (sent when an
        :func:`enqueue` commits), at most ``idle_sleep`` seconds: the poll is only the safety
        net for a lost listen connection, so it can be long."""
        self.pool = pool
        self.bootstrap = bootstrap
        self.metrics = metrics
        self.batch = batch
        self.idle_sleep = idle_sleep
        self.topics = dict(topics or {})
        self.replication_factor = replication_factor
        self.topic_names = topic_names or config.KafkaTopics()
        self.ensured: set[str] = set()
        self.fresh: set[str] = set()
        """Topics created by this relay whose partition leaders the producer has not seen yet."""
        self.producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    @classmethod
    def for_region(
        cls,
        pool: asyncpg.Pool,
        bootstrap: str,
        region: config.RegionConfig,
        *,
        metrics: RelayMetrics | None = None,
    ) -> Relay:
        """The relay of a region: it creates the region's topics (``topics.plan``) at start."""
        return cls(
            pool,
            bootstrap,
            metrics=metrics,
            topics=kafka_topics.plan(region),
            replication_factor=region.kafka_replication_factor,
            topic_names=region.topics,
        )

    async def ensure_topics(self, specs: Iterable[kafka_topics.TopicSpec]) -> None:
        todo = [s for s in specs if s.name not in self.ensured]
        if not todo:
            return
        result = await kafka_topics.ensure(self.bootstrap, todo)
        if result.created or result.reconfigured:
            log.info(
                "outbox relay: topics created %s, reconfigured %s",
                result.created,
                result.reconfigured,
            )
        self.ensured.update(s.name for s in todo)
        self.fresh.update(result.created)

    async def await_leaders(self, limit_s: float = 10.0) -> None:
        """A topic created a moment ago has no partition leader in the producer's metadata yet,
        and a send to it fails with NotLeaderForPartition (seen on a one-broker cluster). Wait,
        bounded, until every partition of the fresh topics has a leader; on timeout the send
        goes ahead and a failure leaves the rows for the next pass (at least once)."""
        assert self.producer is not None
        client = self.producer.client
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while self.fresh and loop.time() < deadline:
            for name in sorted(self.fresh):
                with contextlib.suppress(KafkaError, TimeoutError):
                    parts = await asyncio.wait_for(self.producer.partitions_for(name), 2.0)
                    leaders = [
                        client.cluster.leader_for_partition(TopicPartition(name, p)) for p in parts
                    ]
                    if parts and all(leader is not None and leader >= 0 for leader in leaders):
                        self.fresh.discard(name)
            if self.fresh:
                await client.force_metadata_update()
                await asyncio.sleep(0.1)
        self.fresh.clear()

    def topic_spec(self, name: str) -> kafka_topics.TopicSpec:
        known = self.topics.get(name)
        if known is not None:
            return known
        layout = kafka_topics.layout_for(name, self.topic_names)
        return kafka_topics.spec(name, layout, self.replication_factor)

    async def start(self) -> None:
        await self.ensure_topics(self.topics.values())
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
        )
        await self.producer.start()
        await self.listen()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def listen(self) -> None:
        """LISTEN on :data:`CHANNEL` on a connection held for it (again after it was lost); a
        failure only logs: the relay then polls every ``idle_sleep``."""
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._unlisten()
        try:
            conn = await self.pool.acquire()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox relay: no LISTEN connection (%s); polling", exc)
            return
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox relay: LISTEN %s failed (%s); polling", CHANNEL, exc)
            await self.pool.release(conn)
            return
        self._listener = conn
        self._wake.set()  # whatever committed before the LISTEN: one pass now

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(CHANNEL, self._notified)
            with contextlib.suppress(Exception):
                await self.pool.release(conn)

    async def stop(self) -> None:
        await self._unlisten()
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def wait_idle(self) -> None:
        """Until a NOTIFY (or ``idle_sleep``); re-LISTENs first if the connection was lost."""
        await self.listen()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.idle_sleep):
                await self._wake.wait()

    async def publish_once(self) -> int:
        """Publish one batch; returns how many events went out."""
        assert self.producer is not None, "Relay.start() first"
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, event_id, topic, event_type, key, payload, trace_context FROM outbox"
                " WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self.batch,
            )
            if not rows:
                return 0
            await self.ensure_topics(self.topic_spec(t) for t in {r["topic"] for r in rows})
            if self.fresh:
                await self.await_leaders()
            futures = []
            for r in rows:
                # tracing on: the send span (and the record's traceparent header) continue the
                # trace of the transaction that wrote the event
                with tracing.attached(_carrier(r["trace_context"])):
                    tombstone = r["event_type"] in TOMBSTONE_EVENTS
                    futures.append(
                        await self.producer.send(
                            r["topic"],
                            value=None if tombstone else r["payload"].encode(),
                            key=r["key"].encode(),
                            headers=[("event-id", str(r["event_id"]).encode())],
                        )
                    )
            await asyncio.gather(*futures)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
        if self.metrics is not None:
            for r in rows:
                self.metrics.published.labels(r["topic"]).inc()
        return len(rows)

    async def observe_lag(self) -> None:
        if self.metrics is None:
            return
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
            " FROM outbox WHERE published_at IS NULL"
        )
        self.metrics.pending.set(row["n"])
        self.metrics.lag_seconds.set(float(row["age"]))

    async def run(self) -> None:
        """Relay forever (until cancelled); errors are logged and retried with backoff."""
        backoff = 0.1
        while True:
            try:
                if self.producer is None:
                    await self.start()
                self._wake.clear()  # before the SELECT: a commit after it wakes the wait below
                sent = await self.publish_once()
                await self.observe_lag()
                backoff = 0.1
                if sent == 0:
                    await self.wait_idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "outbox relay: %s: %s; retrying in %.1fs", type(exc).__name__, exc, backoff
                )
                with contextlib.suppress(Exception):
                    await self.stop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
