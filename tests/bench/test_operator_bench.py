"""Operator benchmarks on a real control plane (marker ``bench``; run with ``make bench``).

Prints figures, asserts only that the work got done:
- spec edit -> status observes it (every child applied): p50/p95/max over 50 edits, through the
  running operator;
- 50 regions from nothing to Ready, through the running operator (all namespaces of a
  dedicated control plane);
- API requests per no-op resync (writes must be 0; reads printed);
- the operator's RSS after managing 50 regions.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import statistics
import time
from typing import Any

import pytest

from checkout_operator.kube import client as kclient
from checkout_operator.kube import config as kconfig
from checkout_operator.reconcile import desired, index, region
from checkout_stack.components import kube as stack_kube
from stack import operator_support as sup

pytestmark = [pytest.mark.bench, pytest.mark.stack]

API = region.API_VERSION
EDITS = 50
REGIONS = 50


EXTRA_NODES = 7


def fake_node(name: str) -> dict[str, Any]:
    """A node kwok simulates (it manages nodes annotated ``kwok.x-k8s.io/node: fake``)."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "spec": {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.fixture(scope="module")
def bench_kube(kube_factory: Any) -> Any:
    # 50 regions x 6 Services need more than the stack's default /24 of Service IPs: this
    # dedicated control plane gets a /16 (same first address, so the serving cert still fits).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stack_kube, "SERVICE_CIDR", "10.0.0.0/16")
        cp = kube_factory("bench")
    sup.install_crds(cp)
    # ...and one kwok node holds 110 pods: add fake nodes for the ~600 pods of 50 regions.
    for i in range(1, EXTRA_NODES + 1):
        cp.kubectl("apply", "-f", "-", input=json.dumps(fake_node(f"kwok-node-{i}")))
    return cp


async def test_bench_spec_edit_to_applied(bench_kube: Any, tmp_path: pathlib.Path) -> None:
    ns = sup.unique("edit")
    bench_kube.kubectl("create", "namespace", ns)
    body = sup.local_region(ns)
    async with kclient.KubeClient(kconfig.from_kubeconfig_file(bench_kube.kubeconfig)) as kube:
        with sup.running_operator(bench_kube.kubeconfig, ns, tmp_path / "op.log", 60) as op:
            op.wait_live()
            await kube.request("POST", f"/apis/{API}/namespaces/{ns}/checkoutregions", body=body)

            async def observed(gen: int) -> bool:
                cr = await kube.get(API, "CheckoutRegion", "ap-south-1", ns)
                return (cr.get("status") or {}).get("observedGeneration") == gen

            await sup.eventually(lambda: observed(1), 120, "first reconcile")
            seconds: list[float] = []
            for i in range(EDITS):
                patch = {
                    "spec": {"services": {"image": f"ghcr.io/example/checkout-services:0.1.{i}"}}
                }
                t0 = time.perf_counter()
                cr = await kube.merge_patch(API, "CheckoutRegion", "ap-south-1", ns, patch)
                gen = cr["metadata"]["generation"]
                for _ in range(6000):  # bounded: 60 s
                    if await observed(gen):
                        break
                    await asyncio.sleep(0.01)
                else:
                    raise AssertionError(f"edit {i} not observed within 60 s")
                seconds.append(time.perf_counter() - t0)
            deps = await kube.list("apps/v1", "Deployment", ns)
            assert {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deps} == {
                f"ghcr.io/example/checkout-services:0.1.{EDITS - 1}"
            }
            print(
                f"\nspec edit -> every child applied and status observed ({EDITS} edits, "
                f"6 Deployments re-applied each): p50 {statistics.median(seconds) * 1000:.0f} ms, "
                f"p95 {pct(seconds, 0.95) * 1000:.0f} ms, p99 {pct(seconds, 0.99) * 1000:.0f} ms, "
                f"max {max(seconds) * 1000:.0f} ms; operator RSS {rss_mib(op.proc.pid):.0f} MiB"
            )
            assert op.stop() == 0


async def test_bench_regions_to_ready_and_noop_resync(
    bench_kube: Any, tmp_path: pathlib.Path
) -> None:
    prefix = sup.unique("fleet")
    names = [f"{prefix}-{i:02d}" for i in range(REGIONS)]
    for ns in names:
        bench_kube.kubectl("create", "namespace", ns)
    async with kclient.KubeClient(kconfig.from_kubeconfig_file(bench_kube.kubeconfig)) as kube:
        log = tmp_path / "op.log"
        with sup.running_operator(bench_kube.kubeconfig, None, log, 300) as op:
            op.wait_live()
            rss_idle = rss_mib(op.proc.pid)
            t0 = time.perf_counter()
            for ns in names:
                await kube.request(
                    "POST",
                    f"/apis/{API}/namespaces/{ns}/checkoutregions",
                    body=sup.local_region(ns),
                )

            async def all_ready() -> int | None:
                ready = 0
                for ns in names:
                    cr = await kube.get(API, "CheckoutRegion", "ap-south-1", ns)
                    ready += (cr.get("status") or {}).get("phase") == "Ready"
                return ready if ready == REGIONS else None

            await sup.eventually(all_ready, 900, f"{REGIONS} regions Ready")
            elapsed = time.perf_counter() - t0
            rss_busy = rss_mib(op.proc.pid)
            assert op.stop() == 0

        # no-op resync cost, measured on the reconcile layer with its request counters
        ctx = region.Context(kube, desired.render)
        for ns in names[:5]:
            await region.reconcile_region(ctx, index.Ref(ns, "ap-south-1"))
        one = sup.local_region(names[0])
        per_region = len(desired.render(one, [], [one]).objects)
        writes0, requests0 = kube.write_count, kube.request_count
        t1 = time.perf_counter()
        for ns in names:
            result = await region.reconcile_region(ctx, index.Ref(ns, "ap-south-1"))
            assert result.writes == 0, (ns, result)
        resync = time.perf_counter() - t1
        writes = kube.write_count - writes0
        reads = kube.request_count - requests0 - writes
        print(
            f"\n{REGIONS} regions ({per_region} children each) from nothing to Ready: "
            f"{elapsed:.1f} s ({REGIONS * per_region / elapsed:.0f} objects/s); "
            f"operator RSS idle {rss_idle:.0f} MiB, "
            f"after {REGIONS} regions {rss_busy:.0f} MiB\n"
            f"no-op resync of {REGIONS} regions: {writes} API writes, {reads / REGIONS:.0f} reads "
            f"per region, {resync / REGIONS * 1000:.0f} ms per region"
        )
