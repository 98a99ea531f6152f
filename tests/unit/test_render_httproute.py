"""Exact output of the Gateway API HTTPRoute builder."""

from __future__ import annotations

from render_expect import hashed

from checkout_operator.api.edge import HTTPRouteSpec, ParentRef
from checkout_operator.render import httproute

LABELS = {
    "app.kubernetes.io/name": "checkout-gateway",
    "app.kubernetes.io/instance": "checkout-gateway-eu-west-1",
    "app.kubernetes.io/component": "gateway",
    "app.kubernetes.io/part-of": "checkout",
    "app.kubernetes.io/managed-by": "checkout-operator",
    "checkout-operator.io/region": "eu-west-1",
}


def test_httproute() -> None:
    spec = HTTPRouteSpec(
        parent_refs=(
            ParentRef(name="public", namespace="gateways", section_name="https"),
            ParentRef(name="internal"),
        ),
        hostnames=("shop.example.com", "checkout.example.com"),
    )
    assert httproute.build("eu-west-1", "shop", spec) == hashed(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "checkout-gateway", "namespace": "shop", "labels": LABELS},
            "spec": {
                "parentRefs": [
                    {
                        "group": "gateway.networking.k8s.io",
                        "kind": "Gateway",
                        "name": "public",
                        "namespace": "gateways",
                        "sectionName": "https",
                    },
                    {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "internal"},
                ],
                "hostnames": ["checkout.example.com", "shop.example.com"],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                        "backendRefs": [
                            {
                                "group": "",
                                "kind": "Service",
                                "name": "checkout-gateway",
                                "port": 8080,
                                "weight": 1,
                            }
                        ],
                        "timeouts": {"request": "30s"},
                    }
                ],
            },
        }
    )


def test_httproute_without_hostnames_serves_every_listener_host() -> None:
    obj = httproute.build("eu-west-1", "shop", HTTPRouteSpec(parent_refs=(ParentRef(name="gw"),)))
    assert "hostnames" not in obj["spec"]
