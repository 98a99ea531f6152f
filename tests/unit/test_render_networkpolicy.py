"""Exact output of the NetworkPolicy builder."""

from __future__ import annotations

from render_expect import META, SELECTOR, hashed

from checkout_operator.render import networkpolicy


def test_networkpolicy_internal_service_admits_only_its_regions_checkout_pods() -> None:
    assert networkpolicy.build("eu-west-1", "shop", "cart") == hashed(
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
