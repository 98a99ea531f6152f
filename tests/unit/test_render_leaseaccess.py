"""Exact output of the lease-access builders (Role, RoleBinding, the lease env of a Deployment)
and which regions get which credential."""

from __future__ import annotations

from collections import Counter
from typing import Any

import example_data as helpers
from render_expect import hashed

from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import deployment, leaseaccess, region

LABELS = {
    "app.kubernetes.io/name": "checkout-leases",
    "app.kubernetes.io/instance": "checkout-leases-eu-west-1",
    "app.kubernetes.io/component": "leases",
    "app.kubernetes.io/part-of": "checkout",
    "app.kubernetes.io/managed-by": "checkout-operator",
    "checkout-operator.io/region": "eu-west-1",
}


def local(name: str) -> CheckoutRegion:
    """The example region with its children in the CheckoutRegion's own namespace."""
    doc = helpers.example_docs()[name]
    doc = {**doc, "spec": {k: v for k, v in doc["spec"].items() if k != "remoteCluster"}}
    return CheckoutRegion.model_validate(doc)


def test_role_grants_exactly_what_the_services_do() -> None:
    got = leaseaccess.role("eu-west-1", "checkout", "shop", ["NL", "FR", "IE", "NL"])
    assert got == hashed(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "checkout-leases", "namespace": "checkout", "labels": LABELS},
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "resourceNames": [
                        "checkout-shop-market-fr",
                        "checkout-shop-market-ie",
                        "checkout-shop-market-nl",
                    ],
                    "verbs": ["get", "patch"],
                },
            ],
        }
    )


def test_role_binding_binds_the_three_lease_writers_not_the_gateway() -> None:
    assert leaseaccess.role_binding("eu-west-1", "checkout") == hashed(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "checkout-leases", "namespace": "checkout", "labels": LABELS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "checkout-leases",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": f"checkout-{c}", "namespace": "checkout"}
                for c in ("inventory", "orders", "payments")
            ],
        }
    )


READER_LABELS = {
    **LABELS,
    "app.kubernetes.io/name": "checkout-leases-read",
    "app.kubernetes.io/instance": "checkout-leases-read-eu-west-1",
    "app.kubernetes.io/component": "leases-read",
}


def test_the_internet_facing_gateway_may_only_list_the_leases() -> None:
    assert leaseaccess.reader_role("eu-west-1", "checkout") == hashed(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {
                "name": "checkout-leases-read",
                "namespace": "checkout",
                "labels": READER_LABELS,
            },
            "rules": [
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["list", "watch"],
                }
            ],
        }
    )
    assert leaseaccess.reader_role_binding("eu-west-1", "checkout") == hashed(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": "checkout-leases-read",
                "namespace": "checkout",
                "labels": READER_LABELS,
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "checkout-leases-read",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "checkout-gateway", "namespace": "checkout"}
            ],
        }
    )


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


def _env(obj: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _pod(obj)["containers"][0]["env"]}


def test_a_region_in_the_management_cluster_uses_its_service_account() -> None:
    me = local("eu-west-1")
    access = leaseaccess.for_region(me)
    assert access == leaseaccess.Access(namespace="checkout")
    orders = deployment.build(me, "checkout", "orders", "cafe", (), access)
    assert _pod(orders)["automountServiceAccountToken"] is True
    assert _env(orders)["CHECKOUT_LEASE_NAMESPACE"] == "checkout"
    assert "CHECKOUT_LEASE_KUBECONFIG" not in _env(orders)
    assert [v["name"] for v in _pod(orders)["volumes"]] == [
        "region-config",
        "fleet-routing",
        "tmp",
    ]
    # the other services get neither a token nor the lease env
    cart = deployment.build(me, "checkout", "cart", "cafe", (), access)
    assert _pod(cart)["automountServiceAccountToken"] is False
    assert "CHECKOUT_LEASE_NAMESPACE" not in _env(cart)

    regions, routes = helpers.example_objects()
    objects = region.render_region(me, regions, routes)
    kinds = Counter(str(o["kind"]) for o in objects)
    assert (kinds["Role"], kinds["RoleBinding"]) == (2, 2)
    (role,) = [
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "checkout-leases"
    ]
    # no rendered Role lets the gateway write a Lease
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        granted = next(
            o
            for o in objects
            if o["kind"] == "Role" and o["metadata"]["name"] == binding["roleRef"]["name"]
        )
        verbs = {v for rule in granted["rules"] for v in rule["verbs"]}
        if any(s["name"] == "checkout-gateway" for s in binding["subjects"]):
            assert verbs == {"list", "watch"}, granted  # read-only
    # every market of the fleet: any of them may fail over to this region
    names = role["rules"][1]["resourceNames"]
    fleet_markets = {
        m.country for r in regions for m in r.spec.home_markets if r.spec.fleet == me.spec.fleet
    }
    assert names == sorted(f"checkout-{me.spec.fleet}-market-{m.lower()}" for m in fleet_markets)
    with_token = sorted(
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Deployment" and _pod(o)["automountServiceAccountToken"]
    )
    assert with_token == [f"checkout-{c}" for c in leaseaccess.COMPONENTS]


def test_a_remote_region_mounts_its_lease_kubeconfig_or_has_no_leases() -> None:
    me = helpers.example_region("eu-west-1")
    access = leaseaccess.for_region(me)
    assert access == leaseaccess.Access("checkout", "checkout-lease-store", "kubeconfig")
    payments = deployment.build(me, "checkout", "payments", "cafe", (), access)
    pod = _pod(payments)
    assert pod["automountServiceAccountToken"] is False
    assert _env(payments)["CHECKOUT_LEASE_NAMESPACE"] == "checkout"
    assert _env(payments)["CHECKOUT_LEASE_KUBECONFIG"] == "/etc/checkout/lease-store/kubeconfig"
    assert pod["volumes"][-1] == {
        "name": "lease-kubeconfig",
        "secret": {
            "secretName": "checkout-lease-store",
            "items": [{"key": "kubeconfig", "path": "kubeconfig"}],
        },
    }
    assert pod["containers"][0]["volumeMounts"][-1] == {
        "name": "lease-kubeconfig",
        "mountPath": "/etc/checkout/lease-store",
        "readOnly": True,
    }
    regions, routes = helpers.example_objects()
    assert not [o for o in region.render_region(me, regions, routes) if o["kind"] == "Role"]

    doc = helpers.example_docs()["eu-west-1"]
    remote = {
        k: v for k, v in doc["spec"]["remoteCluster"].items() if k != "leaseKubeconfigSecretRef"
    }
    bare = CheckoutRegion.model_validate({**doc, "spec": {**doc["spec"], "remoteCluster": remote}})
    assert leaseaccess.for_region(bare) is None
    orders = deployment.build(bare, "checkout", "orders", "cafe", (), None)
    assert "CHECKOUT_LEASE_NAMESPACE" not in _env(orders)
