"""external-dns ``DNSEndpoint`` (externaldns.k8s.io/v1alpha1), one per home market of a region
that opts in: ``write.<market>.<zone>`` -> the market's current writer region (from the fleet
routing, so it follows every move), ``read.<market>.<zone>`` -> one weighted record per region
serving the market's reads. Short TTLs, so clients follow a moved writer quickly.

DNS allows no other record beside a CNAME: give every region of a market the same kind of
address (all host names, or all IPv4 addresses), or the weighted read records conflict."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from checkout_contract import routing
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import hashing, labels

API_VERSION: Final = "externaldns.k8s.io/v1alpha1"
KIND: Final = "DNSEndpoint"
COMPONENT: Final = "dns"
MARKET_LABEL: Final = "checkout-operator.io/market"
_IPV4 = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")


@dataclass(frozen=True)
class Target:
    region: str
    address: str
    """IPv4 address (``A`` record) or host name (``CNAME``)."""
    weight: int = 100


def record_type(address: str) -> str:
    return "A" if _IPV4.match(address) else "CNAME"


def build(
    region: str,
    namespace: str,
    market: str,
    zone: str,
    ttl_seconds: int,
    write: Target | None,
    reads: Sequence[Target],
    weight_property: str,
) -> hashing.KubeObject:
    """The records of one market. ``write`` None: no region with an address writes for the
    market now, so there is no write record (clients get NXDOMAIN rather than a wrong writer)."""
    m = market.lower()
    endpoints: list[dict[str, Any]] = []
    if write is not None:
        endpoints.append(
            {
                "dnsName": f"write.{m}.{zone}",
                "recordType": record_type(write.address),
                "targets": [write.address],
                "recordTTL": ttl_seconds,
            }
        )
    for read in sorted(reads, key=lambda t: t.region):
        endpoints.append(
            {
                "dnsName": f"read.{m}.{zone}",
                "recordType": record_type(read.address),
                "targets": [read.address],
                "recordTTL": ttl_seconds,
                "setIdentifier": read.region,
                "providerSpecific": [{"name": weight_property, "value": str(read.weight)}],
            }
        )
    meta = labels.metadata(f"{labels.child_name(COMPONENT)}-{m}", namespace, region, COMPONENT)
    meta_labels = meta["labels"]
    assert isinstance(meta_labels, dict)
    meta_labels[MARKET_LABEL] = market
    return hashing.with_spec_hash(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": meta,
            "spec": {"endpoints": endpoints},
        }
    )


def for_region(
    region: CheckoutRegion,
    namespace: str,
    fleet: Sequence[CheckoutRegion],
    fleet_routing: routing.FleetRouting,
) -> list[hashing.KubeObject]:
    """The DNSEndpoints of ``region``'s home markets (none unless ``spec.edge.dns`` is set).

    Each market's records are owned by its home region only, so no two regions' external-dns
    instances ever fight over a name; the write record follows the fleet routing's writer."""
    dns = region.spec.edge.dns
    if dns is None:
        return []
    targets = {
        r.spec.region: Target(r.spec.region, r.spec.edge.dns.address, r.spec.edge.dns.read_weight)
        for r in fleet
        if r.spec.edge.dns is not None
    }
    targets[region.spec.region] = Target(region.spec.region, dns.address, dns.read_weight)
    out: list[hashing.KubeObject] = []
    for home in region.spec.home_markets:
        route = fleet_routing.route_for(home.country)
        if route is None:
            continue
        out.append(
            build(
                region.spec.region,
                namespace,
                home.country,
                dns.zone,
                dns.ttl_seconds,
                targets.get(route.writer),
                [targets[r] for r in route.read_regions if r in targets],
                dns.weight_property,
            )
        )
    return out
