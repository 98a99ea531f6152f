"""Names and labels of the rendered objects: deterministic, owner-independent."""

from __future__ import annotations

from typing import Final

NAME_PREFIX: Final = "checkout"
PART_OF: Final = "checkout"
MANAGED_BY: Final = "checkout-operator"
REGION_LABEL: Final = "checkout-operator.io/region"
"""Every child carries it, so the reconciler can prune what a render no longer produces."""
SPEC_HASH_ANNOTATION: Final = "checkout-operator.io/spec-hash"
CONFIG_HASH_ANNOTATION: Final = "checkout-operator.io/config-hash"
"""On pod templates: a hash of the ConfigMaps the pods mount, so a config change rolls them."""

MIRRORMAKER: Final = "mirrormaker2"


def child_name(component: str) -> str:
    """``checkout-<component>``: the name of every object of one component of a region."""
    return f"{NAME_PREFIX}-{component}"


def selector(region: str, component: str) -> dict[str, str]:
    """The immutable labels a workload selects its pods by."""
    return {
        "app.kubernetes.io/name": child_name(component),
        "app.kubernetes.io/instance": f"{child_name(component)}-{region}",
    }


def labels(region: str, component: str) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels plus the region label."""
    return {
        **selector(region, component),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        REGION_LABEL: region,
    }


def metadata(name: str, namespace: str, region: str, component: str) -> dict[str, object]:
    """``metadata`` of a child object (the spec-hash annotation is added by :mod:`hashing`)."""
    return {"name": name, "namespace": namespace, "labels": labels(region, component)}
