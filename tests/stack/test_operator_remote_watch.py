"""Remote regions get the same care as local ones (issue 24), through a running operator and a
second, independent control plane: children in the remote cluster are watched (drift there is
repaired in seconds, not at the next resync), ``RemoteClusterReachable`` says when and why the
remote API server cannot be reached, and a rotated kubeconfig Secret is used without a restart.

The resync interval is 600 s, so every repair seen here came from a watch.
"""

from __future__ import annotations

import asyncio
import copy
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_kube import errors as kerrors
from checkout_operator.kube import reachability
from checkout_operator.reconcile import desired, index, remote_watch, status
from checkout_operator.reconcile import reachable as reachable_condition
from checkout_operator.reconcile import region as reconcile_region

from . import operator_support as sup
from . import remote_support as rs

pytestmark = pytest.mark.stack

RESYNC = 600.0


@pytest.fixture(scope="module")
def remote(kube_factory: Any) -> Any:
    return kube_factory("remote-watch")


@pytest.fixture
def running(
    kube: Any, remote: Any, tmp_path: pathlib.Path
) -> Iterator[tuple[rs.RemoteRegion, sup.Operator]]:
    sup.install_crds(kube)
    ns = sup.unique("rw")
    kube.kubectl("create", "namespace", ns)
    region = rs.make_region(kube, remote, ns)
    try:
        with sup.running_operator(
            kube.kubeconfig, ns, tmp_path / "operator.log", drift_interval=RESYNC
        ) as op:
            op.wait_live()
            sup.apply_yaml(kube, region.body)

            def ready() -> bool:
                cr = sup.get(kube, "-n", ns, "checkoutregion", "ap-south-1")
                return (cr.get("status") or {}).get("phase") == "Ready"

            sup.wait_for(ready, 180, "remote region Ready", op.log)
            yield region, op
            kube.kubectl("-n", ns, "delete", "checkoutregion", "--all", "--wait=false")
            sup.wait_for(
                lambda: not rs.deployment(remote, region.remote_ns, "checkout-cart"),
                60,
                "remote children cleaned up",
                op.log,
            )
    finally:
        for user in (region.user, *region.more_users):
            rs.revoke(remote, user)
        sup.delete_namespace(kube, ns)
        sup.delete_namespace(remote, region.remote_ns)


def reachable(kube: Any, region: rs.RemoteRegion) -> dict[str, Any] | None:
    return rs.condition(kube, region.ns, "ap-south-1", rs.CONDITION)


def wait_reachable(kube: Any, region: rs.RemoteRegion, op: sup.Operator, want: str) -> Any:
    """The RemoteClusterReachable condition once its status is ``want`` (within 30 s)."""

    def probe() -> dict[str, Any] | None:
        cond = reachable(kube, region)
        return cond if cond is not None and cond["status"] == want else None

    return sup.wait_for(probe, 30, f"RemoteClusterReachable {want}", op.log)


def test_remote_drift_is_repaired_by_the_watch(
    kube: Any, remote: Any, running: tuple[rs.RemoteRegion, sup.Operator]
) -> None:
    region, op = running
    cond = wait_reachable(kube, region, op, "True")
    assert cond["reason"] == "Reachable"
    for edit in ("delete", "scale"):
        seconds = rs.restored_within(remote, region.remote_ns, "checkout-cart", edit)
        assert seconds < 5, f"{edit}: restored after {seconds:.1f} s"
    metrics = sup.http_get(op.metrics_url)
    assert 'checkout_operator_remote_watches{secret="' in metrics
    watches = [
        line for line in metrics.splitlines()
        if line.startswith("checkout_operator_remote_watches{")
    ]  # fmt: skip
    assert [float(line.rsplit(" ", 1)[1]) for line in watches] == [3.0], watches


def test_remote_apiserver_down_and_back(
    kube: Any, remote: Any, running: tuple[rs.RemoteRegion, sup.Operator]
) -> None:
    region, op = running
    wait_reachable(kube, region, op, "True")
    stopped = time.monotonic()
    remote.stop_apiserver()
    try:
        down = wait_reachable(kube, region, op, "False")
        print(f"condition False {time.monotonic() - stopped:.1f} s after the stop began: {down}")
        assert down["reason"] == "ConnectionRefused", down
        assert "refused the connection" in down["message"]
        gauge = 'checkout_operator_remote_cluster_reachable{name="ap-south-1",namespace="'
        assert f'{gauge}{region.ns}"}} 0.0' in sup.http_get(op.metrics_url)
    finally:
        remote.start_apiserver()
    started = time.monotonic()
    up = wait_reachable(kube, region, op, "True")
    print(f"condition True {time.monotonic() - started:.1f} s after the API server was ready")
    assert up["reason"] == "Reachable"
    events = sup.get(kube, "-n", region.ns, "events")["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "ap-south-1"}
    assert {"RemoteClusterConnectionRefused", "RemoteClusterReachable"} <= reasons, reasons
    # and the watches came back: drift is repaired by them again
    assert rs.restored_within(remote, region.remote_ns, "checkout-cart", "delete") < 5


def test_rotated_kubeconfig_is_used_without_a_restart(
    kube: Any, remote: Any, running: tuple[rs.RemoteRegion, sup.Operator]
) -> None:
    region, op = running
    wait_reachable(kube, region, op, "True")
    old = remote.dir / f"{region.user}.kubeconfig"
    user = sup.unique("operator-v2")
    rs.grant(remote, user)
    region.more_users.append(user)  # revoked by the fixture, after the remote clean-up
    new = remote.issue_kubeconfig(user, user)
    sup.apply_yaml(kube, rs.kubeconfig_secret(region.ns, region.secret, new))
    rotated = time.monotonic()
    rs.revoke(remote, region.user)  # from now on the old certificate is refused
    refused = remote.kubectl(
        "-n", region.remote_ns, "get", "deployments", kubeconfig=old, check=False
    )
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    # the operator repairs drift in the remote cluster: it can only be with the new one
    seconds = rs.restored_within(remote, region.remote_ns, "checkout-cart", "delete", within=30)
    assert time.monotonic() - rotated < 30
    print(f"rotated kubeconfig in use: drift repaired {seconds:.1f} s after the edit")
    cond = wait_reachable(kube, region, op, "True")
    assert cond["reason"] == "Reachable"


async def test_regions_on_one_cluster_share_its_watches(kube: Any, remote: Any) -> None:
    """Two regions naming the same Secret: one cluster, one watch per kind; a child event in
    the remote cluster pokes its own region; the watches stop with the last region."""
    sup.install_crds(kube)
    ns = sup.unique("rwshare")
    kube.kubectl("create", "namespace", ns)
    region = rs.make_region(kube, remote, ns)
    other = copy.deepcopy(region.body)
    other["metadata"]["name"] = other["spec"]["region"] = "eu-west-1"
    poked: asyncio.Queue[index.Ref] = asyncio.Queue()
    try:
        async with kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig)) as mgmt:
            ctx = reconcile_region.Context(mgmt, desired.render)
            watches = remote_watch.RemoteWatches(ctx, poked.put_nowait, interval=1.0)
            watches.track(region.body)
            watches.track(other)
            assert len(watches.clusters) == 1
            (key,) = watches.clusters
            await sup.eventually(
                lambda: _true(watches.watch_count(key) == len(remote_watch.WATCHED_KINDS)),
                30, "the watches",
            )  # fmt: skip
            remote.kubectl(
                "-n", region.remote_ns, "create", "configmap", "drift-probe",
            )  # fmt: skip
            remote.kubectl(
                "-n", region.remote_ns, "label", "configmap", "drift-probe",
                "app.kubernetes.io/managed-by=checkout-operator",
                "checkout-operator.io/region=eu-west-1",
            )  # fmt: skip
            ref = await asyncio.wait_for(poked.get(), 30)
            assert ref == index.Ref(ns, "eu-west-1")

            # the Secret rotated: a new client, the watches on it, the old one closed
            cluster = watches.clusters[key]
            before = cluster.client
            assert before is not None
            user = sup.unique("operator-v2")
            rs.grant(remote, user)
            region.more_users.append(user)
            rotated = rs.kubeconfig_secret(ns, region.secret, remote.issue_kubeconfig(user, user))
            sup.apply_yaml(kube, rotated)
            await sup.eventually(lambda: _true(cluster.client is not before), 30, "a new client")
            with pytest.raises(RuntimeError, match="closed"):
                await before.request("GET", "/version")
            assert watches.watch_count(key) == len(remote_watch.WATCHED_KINDS)
            watches.forget(index.Ref(ns, "ap-south-1"))
            assert watches.watch_count(key) == len(remote_watch.WATCHED_KINDS)
            watches.forget(ref)
            assert watches.clusters == {}
            await watches.aclose()
            assert ctx.remotes is not None
            await ctx.remotes.aclose()
    finally:
        for user in (region.user, *region.more_users):
            rs.revoke(remote, user)
        sup.delete_namespace(kube, ns)
        sup.delete_namespace(remote, region.remote_ns)


async def _true(value: bool) -> bool:
    return value


async def test_a_stale_status_write_keeps_a_condition_written_meanwhile(kube: Any) -> None:
    """A reconcile read the region, then RemoteClusterReachable was written: its status write
    (computed from the stale copy) must not drop the condition, and the condition's own write
    from a stale copy must not drop the reconcile's."""
    sup.install_crds(kube)
    ns = sup.unique("rwstale")
    kube.kubectl("create", "namespace", ns)
    body = sup.local_region(ns)
    try:
        async with kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig)) as mgmt:
            ctx = reconcile_region.Context(mgmt, desired.render)
            ref = index.Ref(ns, "ap-south-1")
            api = reconcile_region.API_VERSION
            created = await mgmt.request(
                "POST", f"/apis/{api}/namespaces/{ns}/checkoutregions", body=body
            )
            assert await reachable_condition.record(
                ctx, ref, reachability.OK
            )  # the reconcile's copy is stale
            outcome = status.Outcome(1, desired=1, in_sync=1)
            _, written = await reconcile_region._write_status(ctx, created, outcome)
            assert written
            now = await mgmt.get(api, "CheckoutRegion", "ap-south-1", ns)
            types = {c["type"]: c["status"] for c in now["status"]["conditions"]}
            assert types == {
                "Ready": "True", "Progressing": "False", "Degraded": "False",
                rs.CONDITION: "True",
            }, types  # fmt: skip

            # and the other way round: the condition's writer read before the reconcile wrote
            down = reachability.Reachability(False, "Timeout", "no answer within 5 s")
            stale = now
            await mgmt.patch_status(api, "CheckoutRegion", "ap-south-1", ns, {"phase": "Degraded"})
            with pytest.raises(kerrors.Conflict):
                await mgmt.patch_status(
                    api, "CheckoutRegion", "ap-south-1", ns,
                    {"phase": "Pending"},
                    resource_version=stale["metadata"]["resourceVersion"],
                )  # fmt: skip
            assert await reachable_condition.record(ctx, ref, down)  # reads afresh, then writes
            after = await mgmt.get(api, "CheckoutRegion", "ap-south-1", ns)
            assert after["status"]["phase"] == "Degraded"
            assert rs.condition(kube, ns, "ap-south-1", rs.CONDITION)["reason"] == "Timeout"  # type: ignore[index]
            assert ctx.remotes is not None
            await ctx.remotes.aclose()
    finally:
        sup.delete_namespace(kube, ns)
