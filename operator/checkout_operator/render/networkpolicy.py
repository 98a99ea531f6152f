"""NetworkPolicy of a checkout service (``spec.networkPolicy``).

Ingress: the gateway is the region's entry point and accepts traffic from anywhere on its HTTP
port; the other services only from the region's own checkout pods. Every service serves
``/metrics`` on that same port (:data:`PORT`, the one the services listen on), reachable from
the pods of ``metricsNamespaces`` (Prometheus).

Egress (``Restricted``, the default): DNS; the region's checkout services; the dependencies'
ports (PostgreSQL, Redis, Temporal, Kafka: their hosts are in Secrets the operator never
reads); the apiserver's ports for the services that keep or follow the market write Leases;
the PSP endpoints' ports (payments); the peer regions' gateways and the JWKS URL's port
(gateway); the OTLP collector's port when tracing is on. ``Unrestricted`` renders no egress
rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from checkout_contract import config as region_config
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import hashing, labels

PUBLIC_COMPONENTS: Final = frozenset({"gateway"})
PORT: Final = region_config.SERVICE_PORT
"""The one port every service listens on: its API, health and ``/metrics``."""
DNS_PORT: Final = 53


@dataclass(frozen=True)
class Egress:
    """What one service may open connections to; ``None`` in :func:`build`: unrestricted."""

    ports: tuple[int, ...] = ()
    """TCP ports reachable on any host (dependencies, apiserver, PSPs, peers, collector)."""


def url_port(url: str) -> int:
    """The TCP port a URL connects to (its explicit port, else the scheme's default)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def egress_for(
    region: CheckoutRegion,
    component: str,
    *,
    lease_keeper: bool,
    psp_endpoints: Iterable[str] = (),
    peer_gateway_urls: Iterable[str] = (),
) -> Egress | None:
    """The egress of ``component`` in ``region`` (None when the spec says Unrestricted)."""
    spec = region.spec
    policy = spec.network_policy
    if policy.egress == "Unrestricted":
        return None
    ports = set(policy.dependency_ports)
    if lease_keeper:
        ports.update(policy.api_server_ports)
    if spec.tracing.otlp_endpoint:
        ports.add(url_port(spec.tracing.otlp_endpoint))
    if component == "payments":
        ports.update(url_port(u) for u in psp_endpoints)
    if component == "gateway":
        ports.update(url_port(u) for u in peer_gateway_urls)
        if spec.edge.gateway.jwks_url:
            ports.add(url_port(spec.edge.gateway.jwks_url))
    return Egress(ports=tuple(sorted(ports)))


def _region_pods(region: str) -> dict[str, Any]:
    return {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/part-of": labels.PART_OF,
                labels.REGION_LABEL: region,
            }
        }
    }


def _tcp(ports: Iterable[int | str]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _egress_rules(region: str, egress: Egress) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"ports": [{"protocol": p, "port": DNS_PORT} for p in ("UDP", "TCP")]},
        {"to": [_region_pods(region)], "ports": _tcp([PORT])},
    ]
    if egress.ports:
        rules.append({"ports": _tcp(egress.ports)})
    return rules


def build(
    region: str,
    namespace: str,
    component: str,
    *,
    metrics_namespaces: Sequence[str] = (),
    egress: Egress | None = None,
) -> hashing.KubeObject:
    ingress: list[dict[str, Any]] = [{"ports": _tcp([PORT])}]
    if component not in PUBLIC_COMPONENTS:
        ingress = [{"from": [_region_pods(region)], "ports": _tcp([PORT])}]
        if metrics_namespaces:
            # NetworkPolicies see ports, not paths: the scrapers reach the HTTP port
            ingress.append(
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                        for ns in sorted(set(metrics_namespaces))
                    ],
                    "ports": _tcp([PORT]),
                }
            )
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": labels.selector(region, component)},
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    }
    if egress is not None:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = _egress_rules(region, egress)
    return hashing.with_spec_hash(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": labels.metadata(labels.child_name(component), namespace, region, component),
            "spec": spec,
        }
    )
