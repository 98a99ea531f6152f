"""Gateway API ``HTTPRoute`` (gateway.networking.k8s.io/v1): the region's public API (``/v1``)
to the checkout gateway Service, attached to the user's Gateways."""

from __future__ import annotations

from typing import Any, Final

from checkout_contract import config as region_config
from checkout_operator.api.edge import HTTPRouteSpec
from checkout_operator.render import hashing, labels

API_VERSION: Final = "gateway.networking.k8s.io/v1"
KIND: Final = "HTTPRoute"
COMPONENT: Final = "gateway"
PATH_PREFIX: Final = "/v1"


def parent_ref(name: str, namespace: str | None, section_name: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": name}
    if namespace:
        ref["namespace"] = namespace
    if section_name:
        ref["sectionName"] = section_name
    return ref


def build(region: str, namespace: str, route: HTTPRouteSpec) -> hashing.KubeObject:
    """Defaults the apiserver would fill in (group, kind, weight) are written out, so a
    server-side apply never sees a difference."""
    spec: dict[str, Any] = {
        "parentRefs": [parent_ref(p.name, p.namespace, p.section_name) for p in route.parent_refs]
    }
    if route.hostnames:
        spec["hostnames"] = sorted(route.hostnames)
    spec["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": PATH_PREFIX}}],
            "backendRefs": [
                {
                    "group": "",
                    "kind": "Service",
                    "name": labels.child_name(COMPONENT),
                    "port": region_config.SERVICE_PORT,
                    "weight": 1,
                }
            ],
            "timeouts": {"request": route.request_timeout},
        }
    ]
    return hashing.with_spec_hash(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": labels.metadata(labels.child_name(COMPONENT), namespace, region, COMPONENT),
            "spec": spec,
        }
    )
