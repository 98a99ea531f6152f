"""Generate synthetic, valid fleets of CheckoutRegions and PSPRoutes (tests and benchmarks).

Regions come in jurisdictions of three (each the others' failover target and replication
peer); markets are synthetic two-letter codes, homed in exactly one region.
"""

from __future__ import annotations

import itertools
import string
from typing import Any

_CODES = ["".join(p) for p in itertools.product(string.ascii_uppercase, repeat=2)]


def jurisdiction(group: int) -> str:
    """JAA, JAB, ...: one synthetic jurisdiction per group of regions."""
    return f"J{chr(65 + group // 26 % 26)}{chr(65 + group % 26)}"


def region_doc(
    index: int,
    total: int,
    group_size: int = 3,
    namespace: str = "fleet",
    markets_per_region: int = 3,
    local: bool = False,
) -> dict[str, Any]:
    """The ``index``-th of ``total`` regions: jurisdiction group ``index // group_size``."""
    group = index // group_size
    name = f"r{index:03d}"
    members = range(group * group_size, min(total, (group + 1) * group_size))
    peers = [f"r{k:03d}" for k in members if k != index]
    markets = _CODES[index * markets_per_region : (index + 1) * markets_per_region]
    placement: dict[str, Any] = {
        "remoteCluster": {
            "kubeconfigSecretRef": {"name": f"{name}-kubeconfig", "key": "kubeconfig"},
            "namespace": "checkout",
        }
    }
    if local:  # every region in its own namespace of one cluster (e.g. a test apiserver)
        namespace, placement = f"ns-{name}", {}
    return {
        "apiVersion": "checkout-operator.io/v1alpha1",
        "kind": "CheckoutRegion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "region": name,
            "fleet": "bench",
            "jurisdiction": jurisdiction(group),
            "gatewayUrl": f"https://checkout.{name}.bench.example",
            **placement,
            "homeMarkets": [{"country": m} for m in markets],
            "services": {"image": "checkout-services:bench"},
            "dependencies": {
                dep: {"name": f"{name}-{dep}", "key": "url"}
                for dep in ("postgres", "redis", "kafka", "temporal")
            },
            "replication": {
                "mode": "Strimzi" if index % 2 else "Standalone",
                "peers": [
                    {"region": p, "bootstrapSecretRef": {"name": f"{p}-kafka", "key": "bootstrap"}}
                    for p in peers
                ],
            },
            "failover": {"targets": peers},
            "edge": {"gateway": {"issuer": "https://issuer.bench.example", "audience": "checkout"}},
        },
    }


def route_doc(
    index: int, regions: int, namespace: str = "fleet", local: bool = False
) -> dict[str, Any]:
    """A PSPRoute for one region (round robin), priority varying."""
    region = f"r{index % regions:03d}"
    if local:
        namespace = f"ns-{region}"
    return {
        "apiVersion": "checkout-operator.io/v1alpha1",
        "kind": "PSPRoute",
        "metadata": {"name": f"route-{index:04d}", "namespace": namespace},
        "spec": {
            "match": {"countries": [_CODES[index % len(_CODES)]], "paymentMethods": ["card"]},
            "strategy": "weighted" if index % 3 == 0 else "priority",
            "providers": [
                {
                    "name": f"p{k}",
                    "type": ("stripe", "adyen")[k % 2],
                    "endpoint": f"https://psp{k}.example.com",
                    "account": f"acct-{index}-{k}",
                    "credentialsSecretRef": {"name": f"psp-{index % 7}-{k}"},
                    "weight": k + 1,
                }
                for k in range(2)
            ],
            "retry": [{"failure": "hard_decline", "action": "stop"}],
            "regions": [region],
            "priority": index % 5,
        },
    }


def fleet_docs(regions: int, routes: int, local: bool = False) -> list[dict[str, Any]]:
    """``regions`` regions and ``routes`` PSPRoutes (``local``: one namespace per region)."""
    return [region_doc(i, regions, local=local) for i in range(regions)] + [
        route_doc(i, regions, local=local) for i in range(routes)
    ]
