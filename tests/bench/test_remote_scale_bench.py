"""20 regions across 10 remote control planes (issue 24): what remote regions cost the operator.

Ten independent control planes (the harness's ``kube_factory``, lean: kube-controller-manager
runs only the controllers a Deployment needs), started one after another. Two regions per
control plane, both in one management namespace and naming one kubeconfig Secret (its own
user, bound by RBAC in that control plane), so they share the cluster's watches. Through a
running operator (``--all-namespaces``, a resync every ``RESYNC`` s), printed and asserted:

- operator RSS, sampled every 0.5 s from its start to the end: max < 200 MiB;
- watches per remote cluster = the kinds watched there (3), not per region: the operator's
  ``checkout_operator_remote_watches`` gauge, and what each remote API server holds
  (``apiserver_longrunning_requests{verb="WATCH"}`` per resource, with the operator running
  minus before it started);
- API writes during a no-op resync (two resync periods, every region reconciled at least
  once, after one catch-up period): 0 by the operator's own count
  (``checkout_operator_api_writes_total``, every client it has: management, remotes, leases)
  and 0 by the API servers' (``apiserver_request_total``: write verbs on the kinds the
  operator renders in the remote clusters, main resource; on CheckoutRegions and PSPRoutes,
  status included, in the management cluster);

printed only: time from the first create to all 20 Ready, CPU seconds of the operator and of
the control planes (ramp-up and steady state), reads per resync.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import http.server
import json
import os
import pathlib
import re
import threading
import time
from typing import Any

import pytest
from test_operator_bench import control_plane_cpu, cpu_seconds, load_average, rss_mib, scrape

import loopback_http
from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator.reconcile import desired, region, remote_watch
from stack import operator_support as sup
from stack import remote_support as rs

pytestmark = [pytest.mark.bench, pytest.mark.stack]

API = region.API_VERSION
CLUSTERS = int(os.environ.get("CHECKOUT_BENCH_REMOTE_CLUSTERS", "10"))
"""Remote control planes (the issue's figure; fewer for a quick look at a small machine)."""
NAMES = ("ap-south-1", "ap-south-2")
"""The regions of each control plane (one management namespace, one Secret)."""
REGIONS = CLUSTERS * len(NAMES)
RESYNC = 20.0
RSS_LIMIT_MIB = 200.0
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
LABELS = re.compile(r'(\w+)="([^"]*)"')


class RssSampler(threading.Thread):
    """The operator's RSS every 0.5 s until ``stop``: the maximum and the last sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append(rss_mib(self.pid))
            except OSError:
                return
            self._done.wait(0.5)

    def stop(self) -> None:
        self._done.set()
        self.join(5)


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200 if self.path == "/health/ready" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def healthy_gateway() -> contextlib.AbstractContextManager[str]:
    """A loopback URL whose ``/health/ready`` answers 200 (in a thread of its own, so the
    test's blocking calls never make a probe time out): every region is Healthy, and the
    failover engine has nothing to record."""
    return loopback_http.serving(_Healthy)


def lease_versions(kube: Any, namespaces: list[str]) -> dict[str, str]:
    """namespace/name -> resourceVersion of the Leases in ``namespaces`` (the markets')."""
    items = json.loads(kube.kubectl("get", "leases", "-A", "-o", "json").stdout)["items"]
    return {
        f"{m['namespace']}/{m['name']}": m["resourceVersion"]
        for m in (i["metadata"] for i in items)
        if m["namespace"] in namespaces
    }


def events_since(kube: Any, namespaces: list[str], since: str) -> list[str]:
    """``reason object: message`` of the Events in ``namespaces`` last seen at or after
    ``since`` (RFC 3339, UTC)."""
    items = json.loads(kube.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return [
        f"{e['reason']} {e['involvedObject'].get('name')}: {e.get('message', '')[:160]}"
        for e in items
        if e["metadata"]["namespace"] in namespaces
        and str(e.get("lastTimestamp") or e.get("eventTime") or "") >= since
    ]


def plural(kind: str) -> str:
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def apiserver_metrics(cp: Any) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of the API server's request metrics (admin credentials)."""
    text = cp.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    out = []
    for line in text.splitlines():
        if line.startswith(("apiserver_request_total{", "apiserver_longrunning_requests{")):
            head, _, value = line.rpartition(" ")
            name, _, labels = head.partition("{")
            out.append((name, dict(LABELS.findall(labels)), float(value)))
    return out


def watches_held(cp: Any) -> collections.Counter[str]:
    """WATCH requests the API server holds now, by resource."""
    held: collections.Counter[str] = collections.Counter()
    for name, labels, value in apiserver_metrics(cp):
        if name == "apiserver_longrunning_requests" and labels.get("verb") == "WATCH":
            held[labels.get("resource", "")] += int(value)
    return held


def requests_served(cp: Any, resources: frozenset[str], main_only: bool) -> dict[str, float]:
    """Requests served so far on ``resources``, by verb (``main_only``: no subresource)."""
    out: collections.Counter[str] = collections.Counter()
    for name, labels, value in apiserver_metrics(cp):
        if name != "apiserver_request_total" or labels.get("resource") not in resources:
            continue
        if main_only and labels.get("subresource"):
            continue
        out[labels.get("verb", "")] += value
    return dict(out)


def writes_of(by_verb: dict[str, float]) -> float:
    return sum(v for verb, v in by_verb.items() if verb in WRITE_VERBS)


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def operator_writes(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith("checkout_operator_api_writes_total{")}


def reconciles(metrics: dict[str, float]) -> float:
    key = 'checkout_operator_reconcile_duration_seconds_count{kind="CheckoutRegion"}'
    return metrics.get(key, 0.0)


def cpu_of(planes: list[Any]) -> float:
    return sum(sum(control_plane_cpu(cp).values()) for cp in planes)


def region_body(ns: str, remote_ns: str, name: str, secret: str, gateway: str) -> dict[str, Any]:
    """The ap-south-1 example as region ``name`` (a fleet of its own: one home per market)."""
    body = copy.deepcopy(sup.example("ap-south-1"))
    body["metadata"].update(name=name, namespace=ns)
    body["spec"]["region"] = name
    body["spec"]["gatewayUrl"] = gateway
    body["spec"]["fleet"] = name
    body["spec"]["remoteCluster"]["namespace"] = remote_ns
    body["spec"]["remoteCluster"]["kubeconfigSecretRef"] = {"name": secret, "key": "kubeconfig"}
    return body


async def test_remote_scale(kube: Any, kube_factory: Any, tmp_path: pathlib.Path) -> None:
    with healthy_gateway() as gateway:
        await _remote_scale(kube, kube_factory, tmp_path, gateway)


async def _remote_scale(kube: Any, kube_factory: Any, tmp_path: pathlib.Path, gateway: str) -> None:
    sup.install_crds(kube)
    t_planes = time.perf_counter()
    remotes = [kube_factory(f"scale{i:02d}", lean=True) for i in range(CLUSTERS)]
    planes_s = time.perf_counter() - t_planes
    secret = "remote-kubeconfig"
    bodies: list[dict[str, Any]] = []
    namespaces: list[str] = []
    for i, remote in enumerate(remotes):
        user = sup.unique("operator")
        rs.grant(remote, user)
        ns = sup.unique(f"scale{i:02d}")
        kube.kubectl("create", "namespace", ns)
        namespaces.append(ns)
        sup.apply_yaml(kube, rs.kubeconfig_secret(ns, secret, remote.issue_kubeconfig(user, user)))
        for name in NAMES:
            remote_ns = sup.unique(name)
            remote.kubectl("create", "namespace", remote_ns)
            bodies.append(region_body(ns, remote_ns, name, secret, gateway))
    rendered = frozenset(
        plural(o["kind"]) for o in desired.render(bodies[0], [], [bodies[0]]).objects
    )
    kinds = len(remote_watch.WATCHED_KINDS)
    held0 = [watches_held(cp) for cp in remotes]
    log = tmp_path / "operator.log"
    async with kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig)) as mgmt:
        with sup.running_operator(kube.kubeconfig, None, log, drift_interval=RESYNC) as op:
            rss = RssSampler(op.proc.pid)
            rss.start()
            try:
                op.wait_live()
                rss_idle = rss_mib(op.proc.pid)
                cpu0, planes_cpu0 = cpu_seconds(op.proc.pid), cpu_of([kube, *remotes])
                t0 = time.perf_counter()
                for body in bodies:
                    await mgmt.request(
                        "POST",
                        f"/apis/{API}/namespaces/{body['metadata']['namespace']}/checkoutregions",
                        body=body,
                    )

                async def all_ready() -> bool:
                    listed = await mgmt.list(API, region.REGION_KIND)
                    ours = [r for r in listed if r["metadata"]["namespace"] in namespaces]
                    ready = [r for r in ours if (r.get("status") or {}).get("phase") == "Ready"]
                    return len(ready) == REGIONS

                await sup.eventually(all_ready, 600, f"{REGIONS} remote regions Ready", every=1)
                to_ready = time.perf_counter() - t0
                ramp_op_cpu = cpu_seconds(op.proc.pid) - cpu0
                ramp_planes_cpu = cpu_of([kube, *remotes]) - planes_cpu0
                rss_ready = rss_mib(op.proc.pid)

                # watches: the operator's gauge and what each remote API server holds
                metrics = scrape(op.metrics_url)
                gauges = {
                    k: v
                    for k, v in metrics.items()
                    if k.startswith("checkout_operator_remote_watches{")
                }
                per_cluster = [
                    {r: n for r, n in (watches_held(cp) - held).items() if n}
                    for cp, held in zip(remotes, held0, strict=True)
                ]

                # one catch-up period (a rollout's last status may still be rolled up), then
                # two no-op resync periods: every region reconciled at least once
                async def reconciled(at_least: float) -> bool:
                    return reconciles(scrape(op.metrics_url)) >= at_least

                start = reconciles(scrape(op.metrics_url))
                await sup.eventually(
                    lambda: reconciled(start + REGIONS), RESYNC * 3 + 60, "a catch-up resync"
                )
                before_op = scrape(op.metrics_url)
                leases_before = lease_versions(kube, namespaces)
                window_start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                before_remote = [requests_served(cp, rendered, True) for cp in remotes]
                before_mgmt = requests_served(
                    kube, frozenset({"checkoutregions", "psproutes"}), False
                )
                cpu1, planes_cpu1, t1 = (
                    cpu_seconds(op.proc.pid),
                    cpu_of([kube, *remotes]),
                    time.perf_counter(),
                )
                await sup.eventually(
                    lambda: reconciled(reconciles(before_op) + 2 * REGIONS),
                    RESYNC * 4 + 60,
                    "two no-op resyncs",
                )
                after_op = scrape(op.metrics_url)
                leases_after = lease_versions(kube, namespaces)
                events = events_since(kube, namespaces, window_start)
                after_remote = [requests_served(cp, rendered, True) for cp in remotes]
                after_mgmt = requests_served(
                    kube, frozenset({"checkoutregions", "psproutes"}), False
                )
                steady_s = time.perf_counter() - t1
                steady_op_cpu = cpu_seconds(op.proc.pid) - cpu1
                steady_planes_cpu = cpu_of([kube, *remotes]) - planes_cpu1
                assert op.stop() == 0
            finally:
                rss.stop()

    op_all = delta(operator_writes(after_op), operator_writes(before_op))
    # the failover engine's leader Lease is renewed every 2 s whatever the resync does: a
    # heartbeat, not a resync write (the market Leases are checked unchanged below)
    lease_renewals = op_all.pop('checkout_operator_api_writes_total{kind="Lease",verb="PATCH"}', 0)
    op_writes = op_all
    catch_up = delta(operator_writes(before_op), operator_writes(metrics))
    remote_deltas = [delta(a, b) for a, b in zip(after_remote, before_remote, strict=True)]
    remote_writes = sum(writes_of(d) for d in remote_deltas)
    remote_reads = sum(sum(d.values()) for d in remote_deltas) - remote_writes
    mgmt_writes = writes_of(delta(after_mgmt, before_mgmt))
    resynced = reconciles(after_op) - reconciles(before_op)
    print(
        f"\n{REGIONS} regions on {CLUSTERS} remote control planes (started in sequence in "
        f"{planes_s:.0f} s; {len(NAMES)} regions and one Secret per plane):\n"
        f"  all Ready {to_ready:.1f} s after the first create; operator CPU meanwhile "
        f"{ramp_op_cpu:.1f} s, control planes ({CLUSTERS + 1}) {ramp_planes_cpu:.1f} s\n"
        f"  operator RSS: idle {rss_idle:.0f} MiB, at all Ready {rss_ready:.0f} MiB, max "
        f"{max(rss.samples):.0f} MiB over {len(rss.samples)} samples, "
        f"last {rss.samples[-1]:.0f} MiB\n"
        f"  watches per remote cluster: operator gauge {sorted(set(gauges.values()))} over "
        f"{len(gauges)} Secrets; held by the remote API servers (operator on minus off): "
        f"{per_cluster}\n"
        f"  no-op resync ({resynced:.0f} reconciles in {steady_s:.0f} s, "
        f"resync every {RESYNC:.0f} s): "
        f"operator writes {sum(op_writes.values()):.0f} {op_writes} (besides {lease_renewals:.0f} "
        f"renewals of its leader Lease; {len(leases_before)} market Leases "
        f"{'unchanged' if leases_after == leases_before else 'CHANGED'}); remote API servers: "
        f"{remote_writes:.0f} writes, {remote_reads / max(resynced, 1):.1f} reads per reconcile on "
        f"the rendered kinds; management: {mgmt_writes:.0f} writes on CheckoutRegions/PSPRoutes; "
        f"(the catch-up period before it: operator writes {catch_up}); Events posted in the "
        f"window: {events}\n"
        f"  steady state CPU: operator {steady_op_cpu / steady_s * 100:.1f}% of a core, control "
        f"planes ({CLUSTERS + 1}) {steady_planes_cpu / steady_s * 100:.1f}%; "
        f"load average {load_average()}"
    )
    assert max(rss.samples) < RSS_LIMIT_MIB, max(rss.samples)
    assert len(gauges) == CLUSTERS, gauges
    assert set(gauges.values()) == {float(kinds)}, gauges
    watched = {plural(kind) for _, kind in remote_watch.WATCHED_KINDS}
    assert per_cluster == [dict.fromkeys(watched, 1)] * CLUSTERS, per_cluster
    assert resynced >= 2 * REGIONS
    assert op_writes == {}, op_writes
    assert leases_after == leases_before
    assert lease_renewals <= steady_s / 2 + 2, lease_renewals
    assert remote_writes == 0, remote_deltas
    assert mgmt_writes == 0, delta(after_mgmt, before_mgmt)
