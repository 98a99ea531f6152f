"""NetworkPolicy of a checkout service: only the region's own checkout pods may call it.

The gateway is the region's entry point and accepts traffic from anywhere; the metrics port is
open to every namespace (Prometheus). Egress is not restricted.
"""

from __future__ import annotations

from typing import Any, Final

from checkout_operator.render import hashing, labels

PUBLIC_COMPONENTS: Final = frozenset({"gateway"})


def build(region: str, namespace: str, component: str) -> hashing.KubeObject:
    http_rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": "http"}]}
    if component not in PUBLIC_COMPONENTS:
        http_rule = {
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/part-of": labels.PART_OF,
                            labels.REGION_LABEL: region,
                        }
                    }
                }
            ],
            **http_rule,
        }
    metrics_rule = {
        "from": [{"namespaceSelector": {}}],
        "ports": [{"protocol": "TCP", "port": "metrics"}],
    }
    return hashing.with_spec_hash(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": labels.metadata(labels.child_name(component), namespace, region, component),
            "spec": {
                "podSelector": {"matchLabels": labels.selector(region, component)},
                "policyTypes": ["Ingress"],
                "ingress": [http_rule, metrics_rule],
            },
        }
    )
