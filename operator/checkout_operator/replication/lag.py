"""Read MirrorMaker 2 replication lag from Kafka (aiokafka): the I/O half of ``offsets``.

For the flow ``peer -> region`` (MM2 runs in the target region and pulls):

* the replicated position from ``mm2-offsets.<peer>.internal`` on the region's own Kafka,
* the begin/end offsets of the peer's replicated topics on the peer's Kafka,
* the timestamp of the first record not yet replicated, for the lag in seconds.

Nothing here writes to Kafka or joins a consumer group (no ``group.id``), so measuring never
disturbs MM2 or the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition as KafkaTP

from checkout_operator.replication import offsets

DEFAULT_TIMEOUT_S = 10.0


class LagUnavailable(Exception):
    """The lag of a flow could not be read (a Kafka cluster unreachable, a bad record)."""


@dataclass(frozen=True)
class PeerLag:
    """The measured lag of one flow ``peer -> region``; ``error`` set when it is unknown."""

    peer: str
    topics: tuple[offsets.TopicLag, ...] = ()
    error: str = ""
    observed_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def messages(self) -> int:
        return sum(t.messages for t in self.topics)

    @property
    def seconds(self) -> float:
        return max((t.seconds for t in self.topics), default=0.0)


@contextlib.asynccontextmanager
async def _consumer(bootstrap: str, timeout_s: float) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer without a group, stopped on the way out (also when start fails)."""
    ms = int(timeout_s * 1000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        request_timeout_ms=ms,
        metadata_max_age_ms=ms,
        connections_max_idle_ms=max(ms * 2, 60_000),
        client_id="checkout-operator-lag",
    )
    try:
        await consumer.start()
        yield consumer
    finally:
        await consumer.stop()


async def _metadata(consumer: AIOKafkaConsumer) -> dict[str, list[int]]:
    """topic -> partitions, fresh from the broker (the consumer's own cache only knows topics
    it subscribed to)."""
    cluster = await consumer._client.fetch_all_metadata()
    return {t: sorted(cluster.partitions_for_topic(t) or ()) for t in cluster.topics()}


def _partitions(metadata: dict[str, list[int]], topics: Sequence[str]) -> list[KafkaTP]:
    return [KafkaTP(t, p) for t in topics for p in metadata.get(t, ())]


async def _behind(
    consumer: AIOKafkaConsumer, tps: Sequence[KafkaTP], ends: Mapping[KafkaTP, int]
) -> bool:
    for tp in tps:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


async def read_positions(
    target_bootstrap: str, peer: str, timeout_s: float
) -> dict[offsets.TopicPartition, int]:
    """MM2's replicated position per peer partition, from the target's Connect offsets topic."""
    async with _consumer(target_bootstrap, timeout_s) as consumer:
        topic = offsets.offsets_topic(peer)
        metadata = await _metadata(consumer)
        tps = _partitions(metadata, [topic])
        if not tps:
            return {}  # MM2 has not flushed a position yet: everything lags
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[offsets.Position | None] = []
        deadline = time.monotonic() + timeout_s
        while await _behind(consumer, tps, ends):
            if time.monotonic() > deadline:
                raise LagUnavailable(f"reading {topic} took longer than {timeout_s:.0f} s")
            batches = await consumer.getmany(*tps, timeout_ms=200)
            for batch in batches.values():
                records += [offsets.parse_record(r.key, r.value) for r in batch]
        return offsets.replicated_positions(records, peer)


async def _source_lag(
    peer: str,
    source_bootstrap: str,
    patterns: Sequence[str],
    positions: Mapping[offsets.TopicPartition, int],
    timeout_s: float,
) -> tuple[offsets.TopicLag, ...]:
    async with _consumer(source_bootstrap, timeout_s) as consumer:
        metadata = await _metadata(consumer)
        tps = _partitions(metadata, offsets.replicated_topics(metadata, patterns))
        if not tps:
            return ()
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        parts = offsets.partition_lags(
            {(tp.topic, tp.partition): o for tp, o in starts.items()},
            {(tp.topic, tp.partition): o for tp, o in ends.items()},
            positions,
        )
        lagging = [p for p in parts if p.messages > 0]
        oldest: dict[offsets.TopicPartition, int] = {}
        if lagging:
            assign = [KafkaTP(p.topic, p.partition) for p in lagging]
            consumer.assign(assign)
            for p in lagging:
                consumer.seek(KafkaTP(p.topic, p.partition), p.next_offset)
            deadline = time.monotonic() + timeout_s
            while len(oldest) < len(lagging) and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200, max_records=len(lagging) * 4)
                for tp, batch in batches.items():
                    if batch and (tp.topic, tp.partition) not in oldest:
                        oldest[(tp.topic, tp.partition)] = batch[0].timestamp
                        consumer.pause(tp)
        return tuple(offsets.topic_lags(peer, parts, oldest, int(time.time() * 1000)))


async def measure_peer(
    peer: str,
    peer_bootstrap: str,
    target_bootstrap: str,
    patterns: Sequence[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PeerLag:
    """The lag of the flow ``peer -> target``; never raises for an unreachable cluster."""
    now_ms = int(time.time() * 1000)
    try:
        async with asyncio.timeout(timeout_s * 3):
            positions = await read_positions(target_bootstrap, peer, timeout_s)
            topics = await _source_lag(peer, peer_bootstrap, patterns, positions, timeout_s)
    except (KafkaError, OSError, TimeoutError, LagUnavailable, ValueError) as exc:
        # Kafka client errors quote the bootstrap addresses (from Secrets): name the kind only.
        ours = isinstance(exc, (LagUnavailable, ValueError)) and not isinstance(exc, KafkaError)
        reason = str(exc) if ours else type(exc).__name__
        return PeerLag(peer, error=f"lag from {peer} unknown: {reason}", observed_at_ms=now_ms)
    return PeerLag(peer, topics, observed_at_ms=now_ms)


async def measure(
    target_bootstrap: str,
    peers: Mapping[str, str],
    patterns: Sequence[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[PeerLag]:
    """The lag of every flow into the target, one peer at a time, sorted by peer."""
    return list(
        await asyncio.gather(
            *(
                measure_peer(peer, bootstrap, target_bootstrap, patterns, timeout_s)
                for peer, bootstrap in sorted(peers.items())
            )
        )
    )
