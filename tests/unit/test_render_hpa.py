"""Exact output of the HorizontalPodAutoscaler builder."""

from __future__ import annotations

from render_expect import META, hashed

from checkout_operator.api.checkoutregion import Autoscaling
from checkout_operator.render import hpa


def test_hpa() -> None:
    scaling = Autoscaling(min_replicas=3, max_replicas=9, target_cpu_percent=55)
    assert hpa.build("eu-west-1", "shop", "cart", scaling) == hashed(
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
