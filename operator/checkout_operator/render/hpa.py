"""HorizontalPodAutoscaler (autoscaling/v2) of a checkout service, on average CPU."""

from __future__ import annotations

from checkout_operator.api.checkoutregion import Autoscaling
from checkout_operator.render import hashing, labels


def build(
    region: str, namespace: str, component: str, autoscaling: Autoscaling
) -> hashing.KubeObject:
    name = labels.child_name(component)
    return hashing.with_spec_hash(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": labels.metadata(name, namespace, region, component),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": autoscaling.min_replicas,
                "maxReplicas": autoscaling.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "averageUtilization": autoscaling.target_cpu_percent,
                            },
                        },
                    }
                ],
            },
        }
    )
