"""PodDisruptionBudget (policy/v1): voluntary disruptions take at most one pod at a time."""

from __future__ import annotations

from checkout_operator.render import hashing, labels


def build(region: str, namespace: str, component: str) -> hashing.KubeObject:
    return hashing.with_spec_hash(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": labels.metadata(labels.child_name(component), namespace, region, component),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": labels.selector(region, component)},
            },
        }
    )
