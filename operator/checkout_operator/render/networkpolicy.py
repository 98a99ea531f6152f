"""NetworkPolicy of a checkout service (``spec.networkPolicy``).

Ingress: the gateway is the region's entry point and accepts traffic from anywhere on its HTTP
port; the other services only from the region's own checkout pods. Every service serves
``/metrics`` on that same port (:data:`PORT`, the one the services listen on), reachable from
the pods of ``metricsNamespaces`` (Prometheus).

Egress (``Restricted``, the default): a peer (``to``) wherever the destination is known, a
port only where it is not.

* DNS: to the cluster DNS pods (``dnsNamespace``/``dnsPodLabels``, default ``kube-system`` pods
  labelled ``k8s-app: kube-dns``), UDP and TCP 53.
* The region's own checkout pods (the policy's namespace), on the services' port.
* A URL whose host is an in-cluster Service name (``<svc>.<namespace>.svc[...]``): that
  namespace's pods; a peer region's gateway reached by its default Service URL: exactly that
  region's gateway pods; a URL whose host is an IP address: that address (``ipBlock``). Ports
  as the URL says (the pods' ports: a Service in front must not remap them).
* Only a port, on any host, for what the operator cannot know: the dependencies (PostgreSQL,
  Redis, Temporal, Kafka: their addresses are in Secrets it never reads), the apiserver's ports
  (lease keepers: its address is the cluster's), external PSP endpoints, peer gateways, the
  JWKS and OTLP collectors named by DNS outside the cluster.

``Unrestricted`` renders no egress rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from checkout_contract import config as region_config
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import configmaps, hashing, labels

PUBLIC_COMPONENTS: Final = frozenset({"gateway"})
PORT: Final = region_config.SERVICE_PORT
"""The one port every service listens on: its API, health and ``/metrics``."""
DNS_PORT: Final = 53


IN_CLUSTER_HOST: Final = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\..+)?$"
)
"""``<service>.<namespace>.svc`` (optionally ``.cluster.local`` or another cluster domain)."""


@dataclass(frozen=True, order=True)
class Destination:
    """A destination a NetworkPolicy peer can name: the pods of a namespace (all, or those with
    ``pod_labels``), or one IP address."""

    namespace: str = ""
    pod_labels: tuple[tuple[str, str], ...] = ()
    cidr: str = ""

    def peer(self) -> dict[str, Any]:
        if self.cidr:
            return {"ipBlock": {"cidr": self.cidr}}
        peer: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: self.namespace}}
        }
        peer["podSelector"] = {"matchLabels": dict(self.pod_labels)} if self.pod_labels else {}
        return peer


NAMESPACE_LABEL: Final = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Egress:
    """What one service may open connections to; ``None`` in :func:`build`: unrestricted."""

    ports: tuple[int, ...] = ()
    """TCP ports reachable on any host (dependencies, apiserver, external URLs)."""
    known: tuple[tuple[Destination, int], ...] = ()
    """TCP ports reachable only at a known destination (in-cluster Services, IP addresses)."""
    dns: Destination = Destination("kube-system", (("k8s-app", "kube-dns"),))
    """Where the cluster DNS runs."""


def url_port(url: str) -> int:
    """The TCP port a URL connects to (its explicit port, else the scheme's default)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def destination_of(url: str) -> Destination | None:
    """Where ``url`` leads, when its host says so (an in-cluster Service name, an IP address);
    None for a DNS name outside the cluster (any host, by port)."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return Destination(cidr=f"{address}/{address.max_prefixlen}")
    match = IN_CLUSTER_HOST.match(host)
    return Destination(namespace=match["ns"]) if match else None


def _peer_gateway(peer: CheckoutRegion) -> tuple[Destination | None, int]:
    url = configmaps.gateway_url(peer)
    return destination_of(url), url_port(url)


def egress_for(
    region: CheckoutRegion,
    component: str,
    *,
    lease_keeper: bool,
    psp_endpoints: Iterable[str] = (),
    peer_gateways: Iterable[CheckoutRegion] = (),
) -> Egress | None:
    """The egress of ``component`` in ``region`` (None when the spec says Unrestricted)."""
    spec = region.spec
    policy = spec.network_policy
    if policy.egress == "Unrestricted":
        return None
    ports = set(policy.dependency_ports)
    if lease_keeper:
        ports.update(policy.api_server_ports)
    targets: list[tuple[Destination | None, int]] = []
    urls: list[str] = []
    if spec.tracing.otlp_endpoint:
        urls.append(spec.tracing.otlp_endpoint)
    if component == "payments":
        urls += psp_endpoints
    if component == "gateway":
        targets += [_peer_gateway(p) for p in peer_gateways]
        if spec.edge.gateway.jwks_url:
            urls.append(spec.edge.gateway.jwks_url)
    targets += [(destination_of(u), url_port(u)) for u in urls]
    known: set[tuple[Destination, int]] = set()
    for where, port in targets:
        if where is None:
            ports.add(port)
        else:
            known.add((where, port))
    dns = Destination(policy.dns_namespace, tuple(sorted(policy.dns_selector().items())))
    return Egress(ports=tuple(sorted(ports)), known=tuple(sorted(known)), dns=dns)


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
        {
            "to": [egress.dns.peer()],
            "ports": [{"protocol": p, "port": DNS_PORT} for p in ("UDP", "TCP")],
        },
        {"to": [_region_pods(region)], "ports": _tcp([PORT])},
    ]
    by_destination: dict[Destination, list[int]] = {}
    for where, port in egress.known:
        by_destination.setdefault(where, []).append(port)
    for where in sorted(by_destination):
        rules.append({"to": [where.peer()], "ports": _tcp(sorted(set(by_destination[where])))})
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
