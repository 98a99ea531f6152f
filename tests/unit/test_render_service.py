"""Exact output of the Service builder."""

from __future__ import annotations

from render_expect import META, SELECTOR, hashed

from checkout_operator.render import service


def test_service() -> None:
    assert service.build("eu-west-1", "shop", "cart") == hashed(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": META,
            "spec": {
                "type": "ClusterIP",
                "selector": SELECTOR,
                "ports": [
                    {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
                ],
            },
        }
    )
