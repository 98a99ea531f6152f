"""Service of a checkout service: ClusterIP on the HTTP and metrics ports."""

from __future__ import annotations

from checkout_contract import config as region_config
from checkout_operator.render import hashing, labels


def build(region: str, namespace: str, component: str) -> hashing.KubeObject:
    return hashing.with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": labels.metadata(labels.child_name(component), namespace, region, component),
            "spec": {
                "type": "ClusterIP",
                "selector": labels.selector(region, component),
                "ports": [
                    {
                        "name": "http",
                        "port": region_config.SERVICE_PORT,
                        "targetPort": "http",
                        "protocol": "TCP",
                    },
                ],
            },
        }
    )
