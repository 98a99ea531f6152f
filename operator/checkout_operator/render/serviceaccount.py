"""ServiceAccount of a checkout service: no API token mounted (the services never call the API)."""

from __future__ import annotations

from checkout_operator.render import hashing, labels


def build(region: str, namespace: str, component: str) -> hashing.KubeObject:
    return hashing.with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": labels.metadata(labels.child_name(component), namespace, region, component),
            "automountServiceAccountToken": False,
        }
    )
