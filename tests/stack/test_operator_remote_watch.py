"""Remote regions get the same care as local ones (issue 24), through a running operator and a
second, independent control plane: children in the remote cluster are watched (drift there is
repaired in seconds, not at the next resync), ``RemoteClusterReachable`` says when and why the
remote API server cannot be reached, and a rotated kubeconfig Secret is used without a restart.

The resync interval is 600 s, so every repair seen here came from a watch.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

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
