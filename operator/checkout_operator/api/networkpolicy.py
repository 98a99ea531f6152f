"""``spec.networkPolicy``: who may reach a region's services, and what they may reach.

Ingress: the gateway accepts anyone on its API port; the other services only the region's own
checkout pods; the scrapers' namespaces (``metricsNamespaces``) reach ``/metrics``, which every
service serves on its one HTTP port. Egress (``Restricted``, the default): the cluster DNS pods,
the region's checkout pods, and per service what it calls: the apiserver (lease keepers), the
PSP endpoints (payments), peer gateways and the JWKS (gateway), the OTLP collector (tracing):
by namespace and pods (or IP address) where a URL names an in-cluster Service (or an address),
by port alone otherwise. The dependencies' addresses live in Secrets the operator never reads,
so their rules name ports, not hosts.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

from checkout_operator.api.meta import DNS_LABEL, SET, ApiModel

Label = Annotated[
    str,
    Field(
        min_length=2,
        max_length=380,
        pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9][-A-Za-z0-9_.]*=([A-Za-z0-9][-A-Za-z0-9_.]*)?$",
    ),
]
"""``key=value``: one label of a pod selector."""

Port = Annotated[int, Field(ge=1, le=65535)]
DEPENDENCY_PORTS: Final = (5432, 6379, 7233, 9092)
"""PostgreSQL, Redis, Temporal frontend, Kafka: their default ports."""
API_SERVER_PORTS: Final = (443, 6443)


class NetworkPolicySpec(ApiModel):
    """The NetworkPolicies rendered for the region's services."""

    egress: Literal["Restricted", "Unrestricted"] = "Restricted"
    """``Restricted``: each service may open connections only to what it needs (see above).
    ``Unrestricted``: no egress rules (any destination)."""
    dependency_ports: tuple[Port, ...] = Field(
        default=DEPENDENCY_PORTS, min_length=1, max_length=16, json_schema_extra=SET
    )
    """TCP ports of the region's PostgreSQL, Redis, Temporal and Kafka (any host: the
    addresses are in Secrets)."""
    api_server_ports: tuple[Port, ...] = Field(
        default=API_SERVER_PORTS, min_length=1, max_length=4, json_schema_extra=SET
    )
    """TCP ports of the management cluster's kube-apiserver, for the services that keep or
    follow the market write Leases (gateway, inventory, orders, payments)."""
    metrics_namespaces: tuple[Annotated[str, Field(pattern=DNS_LABEL, max_length=63)], ...] = Field(
        default=("monitoring",), max_length=16, json_schema_extra=SET
    )
    """Namespaces whose pods (Prometheus) may scrape ``/metrics`` on the services' HTTP port.
    Empty: only the region's own checkout pods reach the internal services."""
    dns_namespace: str = Field(default="kube-system", pattern=DNS_LABEL, max_length=63)
    """Namespace of the cluster DNS pods: the only place the services may send DNS queries
    (UDP/TCP 53) to."""
    dns_pod_labels: tuple[Label, ...] = Field(
        default=("k8s-app=kube-dns",), max_length=8, json_schema_extra=SET
    )
    """Labels (``key=value``) of the cluster DNS pods in ``dnsNamespace`` (CoreDNS carries
    ``k8s-app=kube-dns`` in kubeadm, kind and most distributions). Empty: every pod of that
    namespace. A node-local DNS cache on the host network is not a pod a policy can name: use
    ``egress: Unrestricted`` or a policy of your own there."""

    def dns_selector(self) -> dict[str, str]:
        return dict(label.split("=", 1) for label in self.dns_pod_labels)
