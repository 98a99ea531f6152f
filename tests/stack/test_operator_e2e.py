"""End to end: the real operator (`checkout-operator run`, kopf) against a real control plane.

A CheckoutRegion applied with kubectl becomes Ready (Deployments Available on kwok nodes);
hand-made drift is corrected by the child watches; a spec edit prunes what the render drops;
metrics and liveness answer; SIGTERM stops the operator cleanly.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from . import operator_support as sup

pytestmark = pytest.mark.stack


@pytest.fixture
def namespace(kube: Any) -> Iterator[str]:
    sup.install_crds(kube)
    ns = sup.unique("e2e")
    kube.kubectl("create", "namespace", ns)
    yield ns
    sup.delete_namespace(kube, ns)


@pytest.fixture
def operator(kube: Any, namespace: str, tmp_path: pathlib.Path) -> Iterator[sup.Operator]:
    with sup.running_operator(kube.kubeconfig, namespace, tmp_path / "operator.log") as op:
        yield op


def region_status(kube: Any, ns: str, name: str) -> dict[str, Any]:
    cr = sup.get(kube, "-n", ns, "checkoutregion", name)
    st: dict[str, Any] = cr.get("status") or {}
    st["_generation"] = cr["metadata"]["generation"]
    return st


def test_operator_end_to_end(kube: Any, namespace: str, operator: sup.Operator) -> None:
    log = operator.log
    sup.wait_for(
        lambda: sup.http_get(operator.health_url) is not None, 60, "liveness endpoint", log
    )

    body = sup.local_region(namespace)
    sup.apply_yaml(kube, body)

    def ready(generation: int) -> dict[str, Any] | None:
        st = region_status(kube, namespace, "ap-south-1")
        ok = st.get("phase") == "Ready" and st.get("observedGeneration") == generation
        return st if ok and st["_generation"] == generation else None

    st = sup.wait_for(lambda: ready(1), 180, "CheckoutRegion Ready at generation 1", log)
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    deps = sup.get(
        kube, "-n", namespace, "deployments", "-l", "checkout-operator.io/region=ap-south-1"
    )
    assert len(deps["items"]) == 6
    assert all(
        d["status"].get("availableReplicas", 0) >= d["spec"]["replicas"] for d in deps["items"]
    )

    # drift: a deleted Deployment comes back (watch-driven), a hand-edited replica count too
    old_uid = sup.get(kube, "-n", namespace, "deployment", "checkout-orders")["metadata"]["uid"]
    kube.kubectl("-n", namespace, "delete", "deployment", "checkout-orders", "--wait=false")
    kube.kubectl("-n", namespace, "scale", "deployment", "checkout-cart", "--replicas=5")

    def restored() -> bool:
        orders = sup.get(kube, "-n", namespace, "deployment", "checkout-orders")
        cart = sup.get(kube, "-n", namespace, "deployment", "checkout-cart")
        return orders["metadata"]["uid"] != old_uid and cart["spec"]["replicas"] == 2

    sup.wait_for(restored, 60, "deleted Deployment re-created and replicas restored", log)

    # drift in a kind no watch covers (NetworkPolicy): the periodic resync (5 s here) fixes it
    kube.kubectl(
        "-n", namespace, "patch", "networkpolicy", "checkout-cart", "--type=merge",
        "-p", json.dumps({"spec": {"policyTypes": ["Ingress", "Egress"], "egress": []}}),
    )  # fmt: skip

    def netpol_restored() -> bool:
        netpol = sup.get(kube, "-n", namespace, "networkpolicy", "checkout-cart")
        # the rendered egress rules (DNS, the region's services, the dependencies) are back
        return len(netpol["spec"].get("egress") or ()) == 3

    sup.wait_for(netpol_restored, 60, "NetworkPolicy restored by the periodic resync", log)

    # a PSPRoute for this region: its payment routing is re-rendered, the route says who uses it
    route = sup.yaml.safe_load((sup.ROOT / "examples/psproutes/in-upi.yaml").read_text())
    route["metadata"]["namespace"] = namespace
    sup.apply_yaml(kube, route)
    route_id = f"{namespace}/in-upi"

    def routed() -> bool:
        cm = sup.get(kube, "-n", namespace, "configmap", "checkout-psp-routing")
        st = sup.get(kube, "-n", namespace, "psproute", "in-upi").get("status") or {}
        return route_id in cm["data"]["routing.json"] and st.get("regions") == ["ap-south-1"]

    sup.wait_for(routed, 60, "PSP routing ConfigMap and PSPRoute status updated", log)
    kube.kubectl("-n", namespace, "delete", "psproute", "in-upi")

    def unrouted() -> bool:
        cm = sup.get(kube, "-n", namespace, "configmap", "checkout-psp-routing")
        return route_id not in cm["data"]["routing.json"]

    sup.wait_for(unrouted, 60, "PSP routing ConfigMap without the deleted route", log)

    # a spec edit: payments drops its HPA -> pruned; Ready again at generation 2
    edit = {"spec": {"services": {"payments": {"replicas": 3, "autoscaling": {"enabled": False}}}}}
    kube.kubectl(
        "-n", namespace, "patch", "checkoutregion", "ap-south-1", "--type=merge",
        "-p", json.dumps(edit),
    )  # fmt: skip

    def pruned() -> bool:
        hpas = sup.get(kube, "-n", namespace, "hpa", "-l", "checkout-operator.io/region=ap-south-1")
        names = {h["metadata"]["name"] for h in hpas["items"]}
        return "checkout-payments" not in names and len(names) == 4

    sup.wait_for(pruned, 60, "the payments HPA pruned", log)
    sup.wait_for(lambda: ready(2), 120, "CheckoutRegion Ready at generation 2", log)
    payments = sup.get(kube, "-n", namespace, "deployment", "checkout-payments")
    assert payments["spec"]["replicas"] == 3

    metrics = sup.http_get(operator.metrics_url)
    for name in (
        "checkout_operator_reconcile_duration_seconds_count",
        "checkout_operator_objects_applied_total",
        "checkout_operator_objects_pruned_total",
        "checkout_operator_drift_corrections_total",
        "checkout_operator_api_writes_total",
    ):
        assert name in metrics, name
    assert (
        f'checkout_operator_region_ready{{name="ap-south-1",namespace="{namespace}"}} 1.0'
        in metrics
    )

    assert operator.stop() == 0
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
