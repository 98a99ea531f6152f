"""A live region's replication settings change: the restarted MirrorMaker 2 never replays the old.

us-east-1 holds market US, whose data EU may hold at first; eu-west-1 (EU) pulls from it with
``checkout\\..*``. Then, at once, the US region stops allowing EU (a residency change) and
eu-west-1 narrows its topicPatterns so a promo topic is no longer pulled. The MM2 Deployment is
replaced (``Recreate``: old process stopped, the new pod's init container, then the new MM2),
played here on real Kafka clusters with the rendered objects.

Before the fix, the new MM2 ran the old connector configs from ``mm2-configs.<peer>.internal``
for a moment and copied a batch of the now-excluded topics (a residency breach). Must hold:

* NONE of the events produced after the change (while MM2 was down or after it restarted) on a
  now-excluded topic reaches eu-west-1;
* a still-allowed topic keeps replicating: every event arrives, duplicates at most what MM2's
  at-least-once redelivers since its last flushed position (reported);
* consumer-group offsets still translate into eu-west-1 after the change.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import mm2_fleet as fleet_h
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from checkout_contract import classification
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

SOURCE, TARGET = "us-east-1", "eu-west-1"
BEFORE, DOWN, AFTER = range(0, 200), range(200, 300), range(300, 400)


def source_region(eu_allowed: bool) -> CheckoutRegion:
    doc = fleet_h.region_doc(SOURCE, [])
    doc["spec"]["jurisdiction"] = "US"
    doc["spec"]["homeMarkets"] = [
        {"country": "US", **({"allowedJurisdictions": ["EU"]} if eu_allowed else {})}
    ]
    return _parse(doc)


def target_region(patterns: list[str]) -> CheckoutRegion:
    doc = fleet_h.region_doc(TARGET, [SOURCE], topic_patterns=patterns)
    doc["spec"]["failover"] = {"targets": []}
    return _parse(doc)


def _parse(doc: dict[str, Any]) -> CheckoutRegion:
    obj = load.parse(doc)
    assert isinstance(obj, CheckoutRegion)
    return obj


async def ids_in(bootstrap: str, topic: str, run: str) -> list[int]:
    """The seq of every record of this run in ``topic`` (duplicates kept)."""
    out = []
    for raw in await fleet_h.read_all(bootstrap, [topic]):
        event = json.loads(raw)
        if event["region"] == run:
            out.append(int(event["seq"]))
    return out


async def produce_all(bootstrap: str, run: str, topics: list[str], seqs: range) -> None:
    for topic in topics:
        assert await fleet_h.produce_events(bootstrap, run, seqs, topic) == len(seqs)


async def commit(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    """Commit ``offset`` for ``group`` (no auto-commit: stopping must not commit a position)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


async def wait_translated(
    bootstrap: str, group: str, tp: TopicPartition, above: int, timeout_s: float
) -> int | None:
    deadline = time.monotonic() + timeout_s
    got = await fleet_h.committed(bootstrap, group, tp)
    while (got or 0) <= above and time.monotonic() < deadline:
        await asyncio.sleep(2)
        got = await fleet_h.committed(bootstrap, group, tp)
    return got


async def test_settings_change_never_replays_old_rules(
    kafka_clusters: KafkaClusters, mm2s: list[MirrorMaker], tmp_path: Path
) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    clusters = kafka_clusters.start_many(SOURCE, TARGET)
    src, dst = clusters[SOURCE].bootstrap, clusters[TARGET].bootstrap
    keep = f"checkout.orders-{run}"
    promo = f"checkout.promo-{run}"
    personal = classification.market_topic("checkout.order-placed", "US")
    topics = [keep, promo, personal]
    group = f"checkout-fulfilment-{run}"
    upstream = TopicPartition(keep, 0)
    mirrored = TopicPartition(f"{SOURCE}.{keep}", 0)

    # v1: everything under checkout\..* flows, US data may live in the EU
    v1 = [target_region([r"checkout\..*"]), source_region(eu_allowed=True)]
    props_v1 = fleet_h.rendered_mm2(v1[0], v1).properties
    # a new region's flow: no state from the session's other tests on these clusters
    await fleet_h.forget_connect_state(dst, [SOURCE])
    mm2s.append(fleet_h.start_mm2(kafka_clusters, v1[0], v1, clusters, tmp_path / "v1"))
    await produce_all(src, run, topics, BEFORE)
    await commit(src, group, upstream, 150)
    want = {f"{SOURCE}.{t}": len(BEFORE) for t in topics}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        got = {t: len(set(await ids_in(dst, t, run))) for t in want}
        if got == want:
            break
        await asyncio.sleep(2)
    assert got == want, f"v1 did not replicate: {got}; MM2 log {mm2s[0].log}"
    assert await fleet_h.committed(src, group, upstream) == 150
    before = await wait_translated(dst, group, mirrored, 0, 120)
    assert before is not None, "no translated offset before the change"
    assert 0 < before <= 150, f"v1 translated {before} for an upstream offset of 150"

    # the change: US keeps its data out of the EU, eu-west-1 stops pulling promo topics
    v2 = [
        target_region([re.escape(keep), r"checkout\.order-placed\..*"]),
        source_region(eu_allowed=False),
    ]
    props_v2 = fleet_h.rendered_mm2(v2[0], v2).properties
    assert props_v2 != props_v1  # the ConfigMap (and so the pod template's hash) changes
    mm2s.pop().stop()  # Recreate: the old pod is gone before the new one starts
    await produce_all(src, run, topics, DOWN)
    started = time.monotonic()
    mm2s.append(fleet_h.start_mm2(kafka_clusters, v2[0], v2, clusters, tmp_path / "v2"))
    await produce_all(src, run, topics, AFTER)
    await commit(src, group, upstream, len(BEFORE) + len(DOWN) + len(AFTER))
    assert await fleet_h.committed(src, group, upstream) == len(BEFORE) + len(DOWN) + len(AFTER)

    total = len(BEFORE) + len(DOWN) + len(AFTER)
    deadline = time.monotonic() + 180
    first_new: float | None = None
    while time.monotonic() < deadline:
        seen = set(await ids_in(dst, f"{SOURCE}.{keep}", run))
        if first_new is None and any(s >= DOWN.start for s in seen):
            first_new = time.monotonic() - started
        if len(seen) == total:
            break
        await asyncio.sleep(1)
    caught_up = time.monotonic() - started
    # quiescence: several topic refreshes and checkpoint intervals later
    await asyncio.sleep(5 * fleet_h.TEST_TUNING["refreshIntervalSeconds"] + 5)

    kept = await ids_in(dst, f"{SOURCE}.{keep}", run)
    excluded = {t: await ids_in(dst, f"{SOURCE}.{t}", run) for t in (promo, personal)}
    leaked = {t: sorted(s for s in seqs if s >= DOWN.start) for t, seqs in excluded.items()}
    dupes = sum(n - 1 for n in Counter(kept).values())
    after = await wait_translated(dst, group, mirrored, before, 120)
    print(
        f"\nsettings change: {SOURCE}.{keep} complete ({len(set(kept))}/{total} events, "
        f"{dupes} duplicates; first new event after {first_new or 0:.1f} s, all after "
        f"{caught_up:.1f} s from the new MM2's start, init container included); events after the "
        f"change on excluded topics in {TARGET}: "
        f"{ {t: len(s) for t, s in leaked.items()} }; translated group offset "
        f"{before} -> {after} (upstream committed {total})"
    )
    log = mm2s[-1].log
    assert leaked == {promo: [], personal: []}, f"excluded topics leaked {leaked}; MM2 log {log}"
    # what was copied before the change stays (the rules changed, the past did not)
    assert {t: sorted(set(s)) for t, s in excluded.items()} == {
        promo: list(BEFORE),
        personal: list(BEFORE),
    }
    assert sorted(set(kept)) == list(range(total)), f"allowed topic lost events; MM2 log {log}"
    # at-least-once: only what the stopped MM2 had not yet flushed (offset.flush 500 ms)
    assert dupes <= len(BEFORE), f"{dupes} duplicates"
    assert after is not None, "no translated offset after the change"
    assert before < after <= len(kept), f"translated {before} -> {after}"
