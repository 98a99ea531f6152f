"""The region's Kafka topics, created by the outbox relay at start (never by broker
auto-creation, which production clusters disable and which would pick the broker's default
partitions, replication factor and retention).

``TABLE`` is the one place that says how each topic is laid out: partitions, cleanup policy and
retention. The replication factor is the region's (``RegionConfig.kafka_replication_factor``,
rendered from ``CheckoutRegion.spec.replication.replicationFactor``); ``min.insync.replicas``
follows it (2 when there are at least 3 replicas, so acks=all survives one broker down).

:func:`ensure` creates the missing topics and converges the configs of existing ones
(cleanup policy, retention, min ISR); it never shrinks or grows partitions (that would move
keys between partitions and break per-checkout ordering) but reports a topic with fewer
partitions than the table asks for.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

from checkout_contract import classification, config

log = logging.getLogger("checkout_services.common.topics")

DAY_MS: Final = 24 * 3600 * 1000
TOPIC_ALREADY_EXISTS: Final = 36


@dataclass(frozen=True)
class Layout:
    partitions: int
    cleanup_policy: Literal["delete", "compact", "compact,delete"]
    retention_ms: int
    """-1: keep forever."""


TABLE: Final[Mapping[str, Layout]] = {
    # field of config.KafkaTopics -> layout. Events: keyed by checkout id, 6 partitions,
    # kept 7 days (longer than any consumer or MirrorMaker 2 outage we plan for).
    "order_placed": Layout(partitions=6, cleanup_policy="delete", retention_ms=7 * DAY_MS),
    "payment_captured": Layout(partitions=6, cleanup_policy="delete", retention_ms=7 * DAY_MS),
    "fulfillment_requested": Layout(partitions=6, cleanup_policy="delete", retention_ms=7 * DAY_MS),
    # DLQs: few records, inspected and replayed by hand: kept 30 days.
    "payment_capture_failed_dlq": Layout(
        partitions=3, cleanup_policy="delete", retention_ms=30 * DAY_MS
    ),
    "reservation_expired_dlq": Layout(
        partitions=3, cleanup_policy="delete", retention_ms=30 * DAY_MS
    ),
    # Profiles keyed by customer id, compacted and kept: a tombstone erases one (GDPR).
    "customers": Layout(partitions=6, cleanup_policy="compact", retention_ms=-1),
    # Aggregates mirrored to every region: stock movements and divergence reports.
    "stock_deltas": Layout(partitions=6, cleanup_policy="delete", retention_ms=7 * DAY_MS),
    "inventory_divergence": Layout(partitions=3, cleanup_policy="delete", retention_ms=30 * DAY_MS),
}

_DEFAULT_TOPICS: Final = config.KafkaTopics()

DEFAULT_LAYOUT: Final = Layout(partitions=6, cleanup_policy="delete", retention_ms=7 * DAY_MS)
"""For a topic an outbox row names that no family of the classification matches (an older
release's)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def min_insync(replication_factor: int) -> int:
    return 2 if replication_factor >= 3 else 1


def spec(name: str, layout: Layout, replication_factor: int) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=layout.partitions,
        replication_factor=replication_factor,
        configs={
            "cleanup.policy": layout.cleanup_policy,
            "retention.ms": str(layout.retention_ms),
            "min.insync.replicas": str(min_insync(replication_factor)),
        },
    )


def _scope(key: str) -> str:
    """The classification scope of the KafkaTopics field ``key`` (by its default base name:
    a region may rename a topic, not change what it holds)."""
    return classification.of_base(getattr(_DEFAULT_TOPICS, key)).scope


def plan(region: config.RegionConfig) -> dict[str, TopicSpec]:
    """Topic name -> what it must look like, for every topic of ``region``.

    A market-scoped family (``classification``) gets one topic per home market of the region
    (``checkout.order-placed.NL``); a market this region writes after a failover gets its
    topic on first use (:func:`layout_for` finds the family's layout).
    """
    names = region.topics.model_dump()
    missing = set(names) - set(TABLE)
    if missing:  # a topic added to KafkaTopics without a layout: a bug, caught by the tests
        raise ValueError(f"no layout in topics.TABLE for {sorted(missing)}")
    rf = region.kafka_replication_factor
    out: dict[str, TopicSpec] = {}
    for key, base in names.items():
        if _scope(key) == "market":
            for market in region.home_markets:
                name = classification.market_topic(base, market)
                out[name] = spec(name, TABLE[key], rf)
        else:
            out[base] = spec(base, TABLE[key], rf)
    return out


def layout_for(name: str, topics: config.KafkaTopics) -> Layout:
    """The layout of a concrete topic name: its family's (``base`` or ``base.<MARKET>`` for a
    market-scoped one), else ``DEFAULT_LAYOUT``."""
    for key, base in topics.model_dump().items():
        if key not in TABLE:
            continue
        if name == base or (
            _scope(key) == "market" and re.fullmatch(rf"{re.escape(base)}\.[A-Z]{{2}}", name)
        ):
            return TABLE[key]
    return DEFAULT_LAYOUT


class TopicError(Exception):
    """The cluster refused to create or configure a topic (message names the topic)."""


@dataclass
class EnsureResult:
    created: list[str]
    reconfigured: list[str]
    under_partitioned: dict[str, int]
    """Topic -> partitions it has (fewer than the table asks for; never changed here)."""


async def ensure(
    bootstrap: str, specs: Iterable[TopicSpec], timeout_ms: int = 30_000
) -> EnsureResult:
    """Create the missing topics and converge the configs of the existing ones."""
    wanted = {s.name: s for s in specs}
    result = EnsureResult(created=[], reconfigured=[], under_partitioned={})
    if not wanted:
        return result
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [wanted[n] for n in sorted(wanted) if n not in existing]
        if new:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=s.replication_factor,
                        topic_configs=dict(s.configs),
                    )
                    for s in new
                ],
                timeout_ms=timeout_ms,
            )
            for topic, code, *rest in response.topic_errors:
                if code == 0:
                    result.created.append(topic)
                elif code == TOPIC_ALREADY_EXISTS:  # another relay was faster
                    existing.add(topic)
                else:
                    message = rest[0] if rest and rest[0] else for_code(code).__name__
                    raise TopicError(f"cannot create topic {topic}: {message}")
        # also the existing ones: another relay may have created them a moment ago
        await _wait_for_leaders(admin, sorted(wanted), timeout_ms / 1000)
        old = sorted(n for n in wanted if n in existing)
        if old:
            await _converge(admin, [wanted[n] for n in old], result)
    finally:
        await admin.close()
    for name, count in result.under_partitioned.items():
        log.warning(
            "topic %s has %d partitions, the table asks for %d: not changed (it would move keys)",
            name,
            count,
            wanted[name].partitions,
        )
    return result


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """A created topic takes writes once every partition has a leader; a producer that comes
    earlier gets NOT_LEADER errors until its metadata catches up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = list(names)
    while pending:
        described = await admin.describe_topics(pending)
        pending = [
            t["topic"]
            for t in described
            if t["error_code"] != 0
            or not t["partitions"]
            or any(p["leader"] < 0 for p in t["partitions"])
        ]
        if not pending:
            return
        if loop.time() > deadline:
            raise TopicError(f"topics {pending} have no leader after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


async def _converge(
    admin: AIOKafkaAdminClient, specs: list[TopicSpec], result: EnsureResult
) -> None:
    for described in await admin.describe_topics([s.name for s in specs]):
        name = described["topic"]
        count = len(described["partitions"])
        target = next(s for s in specs if s.name == name)
        if count < target.partitions:
            result.under_partitioned[name] = count
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    )
    current: dict[str, dict[str, tuple[str, bool]]] = {}
    for response in responses:
        for code, message, _type, name, entries in response.resources:
            if code != 0:
                raise TopicError(f"cannot read the configs of topic {name}: {message}")
            # (name, value, read_only, is_default | config_source, is_sensitive, ...)
            current[name] = {e[0]: (e[1], _is_dynamic(response, e)) for e in entries}
    changes = []
    for s in specs:
        have = current.get(s.name, {})
        if all(have.get(k, (None, False))[0] == v for k, v in s.configs.items()):
            continue
        # AlterConfigs replaces the topic's dynamic configs: keep the others that were set
        merged = {k: v for k, (v, dynamic) in have.items() if dynamic and v is not None}
        merged.update(s.configs)
        changes.append(ConfigResource(ConfigResourceType.TOPIC, s.name, configs=merged))
        result.reconfigured.append(s.name)
    if changes:
        for response in await admin.alter_configs(changes):
            for code, message, _type, name in response.resources:
                if code != 0:
                    raise TopicError(f"cannot configure topic {name}: {message}")


_DYNAMIC_TOPIC_CONFIG: Final = 1


def _is_dynamic(response: object, entry: tuple[object, ...]) -> bool:
    """Whether a described config was set on the topic (not a broker or static default).
    DescribeConfigs v0 says ``is_default``; v1+ say ``config_source`` (1 = topic)."""
    version = getattr(response, "API_VERSION", 0)
    if version == 0:
        return not entry[3]
    return entry[3] == _DYNAMIC_TOPIC_CONFIG


__all__ = ["TABLE", "KafkaError", "Layout", "TopicError", "TopicSpec", "ensure", "plan"]
