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
import datetime
import json
import os
import pathlib
import re
import statistics
import time
from typing import Any

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc; less load-dependent than wall)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def control_plane_cpu(cp: Any) -> dict[str, float]:
    """CPU seconds of each process of a control plane (etcd, kube-apiserver, ...)."""
    out: dict[str, float] = {}
    for proc in cp.procs:
        if proc.alive():
            out[proc.component.rpartition("/")[2]] = cpu_seconds(proc.pid)
    return out


def scrape(url: str) -> dict[str, float]:
    """``name{labels}`` -> value of a Prometheus text page."""
    out: dict[str, float] = {}
    for line in sup.http_get(url).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _stamp(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _condition_time(obj: dict[str, Any], type_: str) -> float | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_ and cond.get("status") == "True":
            return _stamp(cond.get("lastTransitionTime"))
    return None


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.0f} s, max {max(values):.0f} s"


async def timeline(kube: Any, names: list[str], start: float) -> str:
    """Where the time went, from the objects' own timestamps (1 s resolution), relative to the
    first CheckoutRegion create: children created (by the operator's applies), pods created (by
    kube-controller-manager's ReplicaSets), Deployments Available (pods Ready via kwok), and each
    region's Ready condition (written by the operator)."""
    wanted = set(names)
    deps = [
        d for d in await kube.list("apps/v1", "Deployment") if d["metadata"]["namespace"] in wanted
    ]
    pods = [p for p in await kube.list("v1", "Pod") if p["metadata"]["namespace"] in wanted]
    regions = [
        r for r in await kube.list(API, "CheckoutRegion") if r["metadata"]["namespace"] in wanted
    ]

    def rel(t: float | None) -> float | None:
        return None if t is None else t - start

    created = [rel(_stamp(d["metadata"]["creationTimestamp"])) for d in deps]
    available = [rel(_condition_time(d, "Available")) for d in deps]
    pod_created = [rel(_stamp(p["metadata"]["creationTimestamp"])) for p in pods]
    pod_ready = [rel(_condition_time(p, "Ready")) for p in pods]
    ready = [rel(_condition_time(r, "Ready")) for r in regions]
    per_region_first: dict[str, float] = {}
    for d, t in zip(deps, created, strict=True):
        if t is not None:
            ns = d["metadata"]["namespace"]
            per_region_first[ns] = min(t, per_region_first.get(ns, t))

    def clean(values: list[float | None]) -> list[float]:
        return [v for v in values if v is not None]

    return (
        f"timeline (s after the first create; 1 s resolution): "
        f"first Deployment of a region created {_spread(list(per_region_first.values()))}; "
        f"Deployments created {_spread(clean(created))}; "
        f"pods created ({len(pods)}) {_spread(clean(pod_created))}; "
        f"pods Ready {_spread(clean(pod_ready))}; "
        f"Deployments Available {_spread(clean(available))}; "
        f"regions Ready {_spread(clean(ready))}"
    )


def reconcile_summary(metrics: dict[str, float]) -> str:
    key = 'checkout_operator_reconcile_duration_seconds_{}{{kind="CheckoutRegion"}}'
    count = metrics.get(key.format("count"), 0.0)
    total = metrics.get(key.format("sum"), 0.0)
    writes: dict[str, float] = {}
    for name, value in metrics.items():
        if name.startswith("checkout_operator_api_writes_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', name))
            what = f"{labels.get('verb')} {labels.get('kind')}"
            writes[what] = writes.get(what, 0.0) + value
    listed = ", ".join(f"{k} {v:.0f}" for k, v in sorted(writes.items()))
    mean = total / count * 1000 if count else 0.0
    return (
        f"operator reconciles: {count:.0f}, {total:.1f} s in total (mean {mean:.0f} ms); "
        f"API writes: {listed}"
    )


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
                f"max {max(seconds) * 1000:.0f} ms; operator RSS {rss_mib(op.proc.pid):.0f} MiB; "
                f"load average {load_average()}"
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
            cpu0 = cpu_seconds(op.proc.pid)
            cp_cpu0 = control_plane_cpu(bench_kube)
            load0 = load_average()
            wall0 = time.time()
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
            op_cpu = cpu_seconds(op.proc.pid) - cpu0
            cp_cpu1 = control_plane_cpu(bench_kube)
            load1 = load_average()
            reconciles = reconcile_summary(scrape(op.metrics_url))
            await asyncio.sleep(10)
            rss_settled = rss_mib(op.proc.pid)
            assert op.stop() == 0
        cp_cpu = ", ".join(f"{k} {cp_cpu1[k] - cp_cpu0.get(k, 0.0):.1f}" for k in sorted(cp_cpu1))
        print(
            f"\n{await timeline(kube, names, wall0)}\n{reconciles}\n"
            f"CPU seconds during the run: operator {op_cpu:.1f}; control plane: {cp_cpu}\n"
            f"load average before {load0}, after {load1}"
        )

        one = sup.local_region(names[0])
        per_region = len(desired.render(one, [], [one]).objects)
        print(
            f"{REGIONS} regions ({per_region} children each) from nothing to Ready: "
            f"{elapsed:.1f} s ({REGIONS * per_region / elapsed:.0f} objects/s); "
            f"operator RSS idle {rss_idle:.0f} MiB, "
            f"after {REGIONS} regions {rss_busy:.0f} MiB ({rss_settled:.0f} MiB 10 s later)"
        )

        # no-op resync cost, measured on the reconcile layer with its request counters. A first
        # pass catches up with what changed after the operator stopped (a child's status it had
        # not rolled up yet); the second pass is the no-op resync measured.
        ctx = region.Context(kube, desired.render)
        caught_up = 0
        for ns in names:
            caught_up += (
                await region.reconcile_region(ctx, index.Ref(ns, "ap-south-1"))
            ).writes > 0
        writes0, requests0 = kube.write_count, kube.request_count
        t1 = time.perf_counter()
        for ns in names:
            result = await region.reconcile_region(ctx, index.Ref(ns, "ap-south-1"))
            assert result.writes == 0, (ns, result)
        resync = time.perf_counter() - t1
        writes = kube.write_count - writes0
        reads = kube.request_count - requests0 - writes
        print(
            f"no-op resync of {REGIONS} regions: {writes} API writes, {reads / REGIONS:.0f} reads "
            f"per region, {resync / REGIONS * 1000:.0f} ms per region (first pass after the "
            f"operator stopped: {caught_up} regions had a status change to write)"
        )
