"""Run the operator's rendered MirrorMaker 2 on the real per-region Kafka clusters of the stack.

The render is used UNCHANGED: the ``mm2.properties`` of the rendered ConfigMap is written to a
file as is, and the process gets the env vars the rendered Deployment fills from Secrets
(``KAFKA_BOOTSTRAP_<REGION>`` via ``secretKeyRef``). The test plays the kubelet: it resolves each
``secretKeyRef`` against the Secrets a cluster would hold (``<region>-kafka`` /
``<region>-kafka-remote``, key ``bootstrap``) and runs the Deployment's command
(``--clusters <region>``) on the stack's Kafka jars, after its init containers (each run to
completion first, ``$(VAR)`` in their commands expanded from their env, as the kubelet does).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import mirrormaker
from checkout_operator.render.region import render_region
from checkout_stack.components import kafka as kafka_component
from checkout_stack.components.kafka import KafkaCluster, MirrorMaker
from checkout_stack.pytest_plugin import KafkaClusters

TOPIC = "checkout.orders"
GROUP = "checkout-fulfilment"
MARKETS = {"eu-west-1": "IE", "eu-central-1": "DE", "eu-north-1": "SE", "us-east-1": "US"}

# Test tuning through the API (single broker, fast discovery, frequent checkpoints/flushes).
TEST_TUNING: dict[str, Any] = {
    "replicationFactor": 1,
    "refreshIntervalSeconds": 2,
    "checkpointIntervalSeconds": 2,
    "offsetFlushIntervalMs": 500,
}


def region(
    name: str,
    peers: Sequence[str],
    policy: str = "Default",
    topic_patterns: Sequence[str] = (r"checkout\..*",),
    max_lag: int = 100,
) -> CheckoutRegion:
    """A valid CheckoutRegion pulling from ``peers`` with Standalone MM2 and test tuning."""
    obj = load.parse(region_doc(name, peers, policy, topic_patterns, max_lag))
    assert isinstance(obj, CheckoutRegion)
    return obj


def region_doc(
    name: str,
    peers: Sequence[str],
    policy: str = "Default",
    topic_patterns: Sequence[str] = (r"checkout\..*",),
    max_lag: int = 100,
    namespace: str = "checkout",
) -> dict[str, Any]:
    """The CheckoutRegion document behind ``region``."""
    return {
        "apiVersion": "checkout-operator.io/v1alpha1",
        "kind": "CheckoutRegion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "region": name,
            "fleet": "replication-test",
            "jurisdiction": "EU",
            "gatewayUrl": f"https://checkout.{name}.example.com",
            "edge": {"gateway": {"issuer": "https://login.example.com/", "audience": "checkout"}},
            "homeMarkets": [{"country": MARKETS[name]}],
            "services": {"image": "ghcr.io/example/checkout-services:0.1.0"},
            "dependencies": {
                "postgres": {"name": f"{name}-postgres", "key": "url"},
                "redis": {"name": f"{name}-redis", "key": "url"},
                "kafka": {"name": f"{name}-kafka", "key": "bootstrap"},
                "temporal": {"name": f"{name}-temporal", "key": "address"},
            },
            "replication": {
                "mode": "Standalone",
                "policy": policy,
                "peers": [
                    {
                        "region": p,
                        "bootstrapSecretRef": {"name": f"{p}-kafka-remote", "key": "bootstrap"},
                    }
                    for p in peers
                ],
                "topicPatterns": list(topic_patterns),
                "maxLagOnFailover": max_lag,
                "groupPatterns": ["checkout-.*"],
                **TEST_TUNING,
            },
            "failover": {"targets": list(peers)[:1]},
        },
    }


def full_mesh(names: Sequence[str], policy: str = "Default") -> list[CheckoutRegion]:
    return [region(n, [p for p in names if p != n], policy) for n in names]


@dataclass(frozen=True)
class Container:
    command: list[str]
    env_refs: dict[str, tuple[str, str]]  # env var -> (secret name, key)
    env_values: dict[str, str]

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Container:
        env = spec.get("env") or []
        refs = {
            e["name"]: (
                e["valueFrom"]["secretKeyRef"]["name"],
                e["valueFrom"]["secretKeyRef"]["key"],
            )
            for e in env
            if "valueFrom" in e
        }
        values = {e["name"]: e["value"] for e in env if "value" in e}
        return cls(list(spec["command"]), refs, values)

    def environment(self, secrets: Mapping[tuple[str, str], str]) -> dict[str, str]:
        return {**self.env_values, **{var: secrets[ref] for var, ref in self.env_refs.items()}}


@dataclass(frozen=True)
class RenderedMM2:
    properties: str
    command: list[str]
    env_refs: dict[str, tuple[str, str]]  # env var -> (secret name, key)
    init_containers: list[Container]


def rendered_mm2(target: CheckoutRegion, fleet: Sequence[CheckoutRegion]) -> RenderedMM2:
    """The ConfigMap's ``mm2.properties`` and the Deployment's command/env, as rendered."""
    objects = render_region(target, fleet, [])
    by_kind = {
        o["kind"]: o
        for o in objects
        if o["metadata"]["name"] == mirrormaker.NAME and o["kind"] in ("ConfigMap", "Deployment")
    }
    props = by_kind["ConfigMap"]["data"][mirrormaker.PROPERTIES_KEY]
    pod = by_kind["Deployment"]["spec"]["template"]["spec"]
    main = Container.of(pod["containers"][0])
    inits = [Container.of(c) for c in pod.get("initContainers") or []]
    return RenderedMM2(props, main.command, main.env_refs, inits)


def kubelet_expand(arg: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` -> its value from the container's env (``$$`` escapes; unknown stays)."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        arg,
    )


def secrets_for(clusters: Mapping[str, KafkaCluster]) -> dict[tuple[str, str], str]:
    """The Secret keys a region's cluster would hold: own and peer bootstrap addresses."""
    out: dict[tuple[str, str], str] = {}
    for name, cluster in clusters.items():
        out[(f"{name}-kafka", "bootstrap")] = cluster.bootstrap
        out[(f"{name}-kafka-remote", "bootstrap")] = cluster.bootstrap
    return out


def start_mm2(
    kafka: KafkaClusters,
    target: CheckoutRegion,
    fleet: Sequence[CheckoutRegion],
    clusters: Mapping[str, KafkaCluster],
    workdir: Path,
) -> MirrorMaker:
    """Start the region's MirrorMaker 2 exactly as its rendered Deployment would run it."""
    mm2 = rendered_mm2(target, fleet)
    secrets = secrets_for(clusters)
    for init in mm2.init_containers:
        init_env = init.environment(secrets)
        kafka_component.run_tool(
            [kubelet_expand(a, init_env) for a in init.command], init_env, workdir / "init"
        )
    env = {var: secrets[ref] for var, ref in mm2.env_refs.items()}
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{target.spec.region}-{mirrormaker.PROPERTIES_KEY}"
    path.write_text(mm2.properties)
    # command: [connect-mirror-maker.sh, <properties>, --clusters, <region>]
    assert mm2.command[1].endswith(mirrormaker.PROPERTIES_KEY)
    assert mm2.command[2] == "--clusters"
    return kafka.run_mirrormaker(path, env, clusters=mm2.command[3:])


CONNECT_STATE_KINDS = ("configs", "offsets", "status")


async def forget_connect_state(
    target_bootstrap: str, peers: Sequence[str], timeout_s: float = 30
) -> list[str]:
    """Delete what earlier MM2s of the flows ``<peer>-><target>`` left on the target cluster:
    the dedicated-mode Connect topics ``mm2-{configs,offsets,status}.<peer>.internal``.

    The session's clusters are shared by every test, and a dedicated MM2 names its Connect
    group and topics after the flow only (``<peer>-mm2``). The rendered init container already
    deletes ``mm2-configs`` (no old connector config ever runs), but the positions in
    ``mm2-offsets`` stay, by design: a test whose MM2 must start as a new region's Deployment
    would (no earlier positions of the flow) calls this first. Returns the deleted topics.
    """
    names = [f"mm2-{kind}.{peer}.internal" for peer in peers for kind in CONNECT_STATE_KINDS]
    admin = AIOKafkaAdminClient(bootstrap_servers=target_bootstrap)
    await admin.start()
    try:
        present = [n for n in names if n in set(await admin.list_topics())]
        if present:
            await admin.delete_topics(present)
        deadline = time.monotonic() + timeout_s
        while set(present) & set(await admin.list_topics()):
            assert time.monotonic() < deadline, f"{present} still listed after {timeout_s} s"
            await asyncio.sleep(0.2)
        return present
    finally:
        await admin.close()


# --- producing and reading events ---------------------------------------------------------------


def event(region: str, seq: int) -> bytes:
    return json.dumps({"id": f"{region}-{seq}", "region": region, "seq": seq}).encode()


async def produce_events(
    bootstrap: str, region: str, seqs: Iterable[int], topic: str = TOPIC
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=65536,
    )
    await producer.start()
    n = 0
    try:
        futures = []
        for seq in seqs:
            futures.append(await producer.send(topic, event(region, seq), key=region.encode()))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The offset ``group`` committed for ``tp`` on the cluster (None: none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(tp)  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """Sum of partition end offsets per topic (0 for a topic that does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        out: dict[str, int] = {}
        cluster = await consumer._client.fetch_all_metadata()
        for topic in topics:
            parts = cluster.partitions_for_topic(topic)
            if not parts:
                out[topic] = 0
                continue
            tps = [TopicPartition(topic, p) for p in parts]
            ends = await consumer.end_offsets(tps)
            out[topic] = sum(ends.values())
        return out
    finally:
        await consumer.stop()


async def wait_for_counts(
    bootstrap: str, expected: Mapping[str, int], timeout_s: float
) -> dict[str, int]:
    """Poll end offsets until every topic holds at least the expected count (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await end_offsets(bootstrap, list(expected))
        if all(got[t] >= n for t, n in expected.items()) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(1.0)


async def read_all(bootstrap: str, topics: Sequence[str], wait_s: float = 30) -> list[bytes]:
    """Every record of ``topics`` from the beginning, until end offsets are reached."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps: list[TopicPartition] = []
        cluster = await consumer._client.fetch_all_metadata()
        for topic in topics:
            parts = cluster.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: list[bytes] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                got.extend(r.value for r in records if r.value is not None)
        return got
    finally:
        await consumer.stop()
