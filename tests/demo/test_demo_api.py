"""The demo's view of the management apiserver (``checkout_demo.cluster.Api``) goes through the
project's one client (checkout_kube) on a real kube-apiserver: what the kubelet stand-in and
the GameDay report read."""

from __future__ import annotations

import json
import time

import pytest

from checkout_contract import lease as contract
from checkout_demo import cluster
from checkout_stack.components.kube import ControlPlane

pytestmark = pytest.mark.stack


def test_api_reads_configmaps_secrets_deployments_and_leases(kube: ControlPlane) -> None:
    ns = cluster.NAMESPACE
    renewed = time.time() - 3
    lease = contract.build("demo", ns, "NL", "eu-west-1", 4, 10, renewed)
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": ns},
            "data": {"k": "v"},
        },
        cluster.secret_doc(ns, "s", {"kubeconfig": "apiVersion: v1"}),
        lease,
    ]
    kube.kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": docs}),
    )
    api = cluster.Api(kube)
    try:
        assert api.configmap(ns, "a") == {"k": "v"}
        assert api.configmap(ns, "missing") is None
        assert api.configmaps(ns)["a"] == {"k": "v"}
        assert api.secret(ns, "s") == {"kubeconfig": "apiVersion: v1"}
        assert api.deployments(ns) == []
        holder, acquired = api.lease_acquired_at("demo", "NL") or ("", 0.0)
        assert holder == "eu-west-1"
        assert abs(acquired - renewed) < 0.01
        assert api.lease_acquired_at("demo", "DE") is None
        with pytest.raises(cluster.StackError, match="Secret checkout-demo/nope is missing"):
            api.secret(ns, "nope")
    finally:
        api.close()
