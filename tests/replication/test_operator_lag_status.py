"""The operator records MirrorMaker 2 lag in CheckoutRegion status, on a real apiserver + Kafka.

``reconcile.replication.observe`` reads the bootstrap Secrets from the cluster, measures the lag
of the flow peer -> region, sets the gauges and patches ``status.replication`` and the
``ReplicationLagging`` condition. The region's MM2 runs from its own render.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import mm2_fleet as fleet_h
import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator import metrics
from checkout_operator.reconcile import desired, index, region, replication
from checkout_stack.components.kafka import MirrorMaker
from checkout_stack.pytest_plugin import KafkaClusters

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
A, B = "eu-west-1", "eu-central-1"
API = region.API_VERSION


@pytest.fixture
def namespace(kube: Any) -> Iterator[str]:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/checkoutregions.checkout-operator.io",
    )  # fmt: skip
    ns = f"lag-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", ns)
    yield ns
    kube.kubectl("delete", "namespace", ns, "--wait=false")


@pytest.fixture
async def ctx(kube: Any) -> AsyncIterator[region.Context]:
    client = kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig))
    ctx = region.Context(client, desired.render)
    yield ctx
    assert ctx.remotes is not None
    await ctx.remotes.aclose()
    await client.aclose()


def secret(name: str, namespace: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"bootstrap": base64.b64encode(value.encode()).decode()},
    }


def lagging(st: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == "ReplicationLagging")


async def test_lag_rises_and_falls_in_status_and_metrics(
    kube: Any,
    ctx: region.Context,
    namespace: str,
    kafka_clusters: KafkaClusters,
    tmp_path: Path,
) -> None:
    clusters = kafka_clusters.start_many(A, B)
    topic = f"checkout.status-{uuid.uuid4().hex[:6]}"
    patterns = [topic.replace(".", r"\.")]
    doc = fleet_h.region_doc(A, [B], topic_patterns=patterns, max_lag=100, namespace=namespace)
    for obj in (
        secret(f"{A}-kafka", namespace, clusters[A].bootstrap),
        secret(f"{B}-kafka-remote", namespace, clusters[B].bootstrap),
    ):
        await ctx.client.apply(obj)
    await ctx.client.request(
        "POST", f"/apis/{API}/namespaces/{namespace}/checkoutregions", body=doc
    )
    ref = index.ref(doc)
    await fleet_h.produce_events(clusters[B].bootstrap, B, range(500), topic)

    # no MirrorMaker 2 yet: the whole topic lags, above maxLagOnFailover
    st = await replication.observe(ctx, ref)
    assert st is not None
    (peer,) = st["replication"]
    assert (peer["peer"], peer["lagMessages"], peer["message"]) == (B, 500, "")
    assert peer["topics"] == [
        {"topic": topic, "lagMessages": 500, "lagSeconds": peer["lagSeconds"]}
    ]
    assert lagging(st)["status"] == "True"
    assert lagging(st)["reason"] == "LagAboveBound"
    gauge = metrics.REGISTRY.get_sample_value(
        "checkout_operator_replication_lag_messages", {"region": A, "peer": B, "topic": topic}
    )
    assert gauge == 500
    live = await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace)
    assert live["status"]["replication"][0]["lagMessages"] == 500

    # the region's MirrorMaker 2, from the same CheckoutRegion's render, catches up
    region_model = fleet_h.region(A, [B], topic_patterns=patterns)
    fleet = [region_model, fleet_h.region(B, [])]
    mm2: MirrorMaker = fleet_h.start_mm2(kafka_clusters, region_model, fleet, clusters, tmp_path)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            await replication.observe(ctx, ref)
            live = await ctx.client.get(API, "CheckoutRegion", ref.name, ref.namespace)
            if live["status"]["replication"][0]["lagMessages"] == 0:
                break
            await asyncio.sleep(2)
    finally:
        mm2.stop()
    st = live["status"]
    assert st["replication"][0]["lagMessages"] == 0, st
    assert lagging(st)["status"] == "False"
    assert st["replication"][0]["observedAt"].endswith("Z")
    # an unchanged measurement writes nothing (checked once caught up: while a topic lags, its
    # lagSeconds grows with the clock, so two observations a second apart differ by design)
    assert await replication.observe(ctx, ref) is None

    # a missing Secret: Unknown, named, last values kept, no address in the status
    await ctx.client.delete("v1", "Secret", f"{B}-kafka-remote", namespace)
    st = await replication.observe(ctx, ref)
    assert st is not None
    assert lagging(st)["status"] == "Unknown"
    assert f"Secret {namespace}/{B}-kafka-remote not found" in st["replication"][0]["message"]
    assert st["replication"][0]["lagMessages"] == 0
    assert clusters[B].bootstrap not in str(st)
