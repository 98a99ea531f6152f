"""Drift repair in a remote cluster (issue 24), through a running operator and a second,
independent control plane: 20 hand edits of the region's Deployments there (deletions and
replica changes, alternately), each timed from the edit until the operator has restored the
Deployment. Prints p50/p95/p99; the issue's bound is p95 < 5 s (the periodic resync is 600 s,
so only the remote watches can make it)."""

from __future__ import annotations

import pathlib
import statistics
from typing import Any

import pytest

from stack import operator_support as sup
from stack import remote_support as rs

pytestmark = [pytest.mark.bench, pytest.mark.stack]

EDITS = 20
DEPLOYMENTS = ("checkout-cart", "checkout-orders")


def test_remote_drift_repair_latency(kube: Any, kube_factory: Any, tmp_path: pathlib.Path) -> None:
    remote = kube_factory("remote-bench")
    sup.install_crds(kube)
    ns = sup.unique("rwbench")
    kube.kubectl("create", "namespace", ns)
    region = rs.make_region(kube, remote, ns)
    log = tmp_path / "operator.log"
    try:
        with sup.running_operator(kube.kubeconfig, ns, log, drift_interval=600) as op:
            op.wait_live()
            sup.apply_yaml(kube, region.body)
            sup.wait_for(
                lambda: (sup.get(kube, "-n", ns, "checkoutregion", "ap-south-1").get("status")
                         or {}).get("phase") == "Ready",
                180, "remote region Ready", log,
            )  # fmt: skip
            seconds = []
            for i in range(EDITS):
                name = DEPLOYMENTS[i % len(DEPLOYMENTS)]
                edit = "delete" if i % 2 == 0 else "scale"
                if edit == "scale":
                    name = "checkout-cart"  # the one Deployment whose replicas the operator owns
                seconds.append(rs.restored_within(remote, region.remote_ns, name, edit))
            q = statistics.quantiles(seconds, n=100, method="inclusive")
            print(
                f"\nremote drift repair over {EDITS} edits: p50 {q[49]:.2f} s, "
                f"p95 {q[94]:.2f} s, p99 {q[98]:.2f} s, max {max(seconds):.2f} s"
            )
            assert q[94] < 5.0, seconds
    finally:
        rs.revoke(remote, region.user)
        sup.delete_namespace(kube, ns)
        sup.delete_namespace(remote, region.remote_ns)
