"""Exact output of the small per-service builders: ServiceAccount, Service, HPA, PDB,
NetworkPolicy (one test each)."""

from __future__ import annotations

from typing import Any

from checkout_operator.api.checkoutregion import Autoscaling
from checkout_operator.render import hashing, hpa, networkpolicy, pdb, service, serviceaccount

LABELS = {
    "app.kubernetes.io/name": "checkout-cart",
    "app.kubernetes.io/instance": "checkout-cart-eu-west-1",
    "app.kubernetes.io/component": "cart",
    "app.kubernetes.io/part-of": "checkout",
    "app.kubernetes.io/managed-by": "checkout-operator",
    "checkout-operator.io/region": "eu-west-1",
}
SELECTOR = {
    "app.kubernetes.io/name": "checkout-cart",
    "app.kubernetes.io/instance": "checkout-cart-eu-west-1",
}
META = {"name": "checkout-cart", "namespace": "shop", "labels": LABELS}


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    return hashing.with_spec_hash(obj)


def test_serviceaccount() -> None:
    assert serviceaccount.build("eu-west-1", "shop", "cart") == _hashed(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": META,
            "automountServiceAccountToken": False,
        }
    )


def test_service() -> None:
    assert service.build("eu-west-1", "shop", "cart") == _hashed(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": META,
            "spec": {
                "type": "ClusterIP",
                "selector": SELECTOR,
                "ports": [
                    {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
                    {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
                ],
            },
        }
    )


def test_hpa() -> None:
    scaling = Autoscaling(min_replicas=3, max_replicas=9, target_cpu_percent=55)
    assert hpa.build("eu-west-1", "shop", "cart", scaling) == _hashed(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": META,
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "checkout-cart",
                },
                "minReplicas": 3,
                "maxReplicas": 9,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 55},
                        },
                    }
                ],
            },
        }
    )


def test_pdb() -> None:
    assert pdb.build("eu-west-1", "shop", "cart") == _hashed(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": META,
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}},
        }
    )


def test_networkpolicy_internal_service_admits_only_its_regions_checkout_pods() -> None:
    assert networkpolicy.build("eu-west-1", "shop", "cart") == _hashed(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": META,
            "spec": {
                "podSelector": {"matchLabels": SELECTOR},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "podSelector": {
                                    "matchLabels": {
                                        "app.kubernetes.io/part-of": "checkout",
                                        "checkout-operator.io/region": "eu-west-1",
                                    }
                                }
                            }
                        ],
                        "ports": [{"protocol": "TCP", "port": "http"}],
                    },
                    {
                        "from": [{"namespaceSelector": {}}],
                        "ports": [{"protocol": "TCP", "port": "metrics"}],
                    },
                ],
            },
        }
    )


def test_networkpolicy_gateway_is_open_on_http() -> None:
    policy = networkpolicy.build("eu-west-1", "shop", "gateway")
    assert policy["spec"]["ingress"][0] == {"ports": [{"protocol": "TCP", "port": "http"}]}
