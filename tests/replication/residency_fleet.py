"""The four-region residency fleet (tests/data/residency/fleet.yaml) on the stack's Kafka.

One region per jurisdiction that matters: us-east-1 (US; markets US, BR, which also allow EU),
eu-west-1 (EU; NL), eu-central-1 (EU; DE), ap-south-1 (IN; IN). Every region pulls from every
other with MirrorMaker 2 rendered by the operator (through ``mm2_fleet.start_mm2``), tuned for a
one-broker test cluster.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import mm2_fleet as fleet_h
import yaml
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from checkout_contract import classification
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion

FLEET_FILE = Path(__file__).resolve().parents[1] / "data" / "residency" / "fleet.yaml"
REGIONS = ("ap-south-1", "eu-central-1", "eu-west-1", "us-east-1")
HOME = {"US": "us-east-1", "BR": "us-east-1", "NL": "eu-west-1", "DE": "eu-central-1"}
HOME["IN"] = "ap-south-1"
JURISDICTION = {"us-east-1": "US", "eu-west-1": "EU", "eu-central-1": "EU", "ap-south-1": "IN"}
ALLOWED = {"US": {"US", "EU"}, "BR": {"US", "EU"}, "NL": {"EU"}, "DE": {"EU"}, "IN": {"IN"}}
"""Where each market's personal and payment data may live (written out, not computed)."""


def fleet() -> list[CheckoutRegion]:
    out = []
    for doc in yaml.safe_load_all(FLEET_FILE.read_text()):
        doc["spec"]["replication"].update(fleet_h.TEST_TUNING)
        obj = load.parse(doc)
        assert isinstance(obj, CheckoutRegion)
        out.append(obj)
    return sorted(out, key=lambda r: r.spec.region)


async def run_events(bootstrap: str, run: str) -> dict[str, set[str]]:
    """topic -> distinct event ids of run ``run``, over every classified topic of a cluster
    (originals and replicated copies ``<source>.<topic>``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if classification.classify_topic(t)]
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()]
        got: dict[str, set[str]] = defaultdict(set)
        if not tps:
            return got
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for r in records:
                    if r.value is None:
                        continue
                    event: dict[str, Any] = json.loads(r.value)
                    if event.get("data", {}).get("run") == run:
                        got[tp.topic].add(event["eventId"])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return got
    finally:
        await consumer.stop()
