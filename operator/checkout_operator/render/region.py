"""The whole desired state: every object of a region, and of a fleet.

:func:`render_region` is the one entry point the reconciler needs; :func:`render_fleet` is what
``checkout-operator render`` prints. Both are pure and deterministic: the same input gives the
same objects in the same order, whatever order the input came in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from checkout_contract import config as region_config
from checkout_contract import routing
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.api.status import MarketStatus
from checkout_operator.render import (
    configmaps,
    deployment,
    dnsendpoint,
    gatewayconfig,
    hashing,
    hpa,
    httproute,
    labels,
    leaseaccess,
    mirrormaker,
    networkpolicy,
    pdb,
    psp,
    service,
    serviceaccount,
)


class RenderError(ValueError):
    """The inputs are inconsistent (run :func:`checkout_operator.api.fleet.validate` first)."""


def sort_key(obj: Mapping[str, object]) -> tuple[str, str, str, str]:
    """Objects sort by region, kind, namespace, name."""
    meta = obj["metadata"]
    assert isinstance(meta, dict)
    return (
        meta.get("labels", {}).get(labels.REGION_LABEL, ""),
        str(obj["kind"]),
        str(meta.get("namespace", "")),
        str(meta["name"]),
    )


def effective_writers(fleet: Iterable[CheckoutRegion]) -> dict[str, MarketStatus]:
    """Market -> writer recorded in the home regions' status (absent: the home region writes)."""
    writers: dict[str, MarketStatus] = {}
    for region in fleet:
        if region.status is None:
            continue
        homes = {m.country for m in region.spec.home_markets}
        for market in region.status.markets:
            if market.market in homes:
                writers[market.market] = market
    return writers


def render_region(
    region: CheckoutRegion,
    fleet: Sequence[CheckoutRegion],
    psproutes: Sequence[PSPRoute],
    writers: Mapping[str, MarketStatus] | None = None,
    fleet_routing: routing.FleetRouting | None = None,
) -> list[hashing.KubeObject]:
    """Every object the operator creates for ``region``, sorted.

    ``fleet`` holds the regions of the region's fleet (it may include ``region`` itself),
    ``psproutes`` any PSPRoutes (those that apply to the region are picked and ordered here),
    ``writers`` the effective writer per market (default: from the fleet's status).
    ``fleet_routing`` may pass the fleet's routing when it was already built for another region.
    """
    spec = region.spec
    members = {r.spec.region: r for r in fleet if r.spec.fleet == spec.fleet}
    members[spec.region] = region
    for peer in spec.replication.peers:
        if peer.region not in members:
            raise RenderError(f"replication peer {peer.region} is not in fleet {spec.fleet}")
    fleet_regions = [members[name] for name in sorted(members)]
    if fleet_routing is None:
        if writers is None:
            writers = effective_writers(fleet_regions)
        fleet_routing = configmaps.fleet_routing_model(fleet_regions, writers)
    namespace = spec.namespace_for(region.metadata.namespace)
    routes = psp.routes_for(region, psproutes)

    region_cm = configmaps.region_configmap(region, namespace)
    fleet_cm = configmaps.fleet_configmap(region, namespace, fleet_routing)
    psp_cm = configmaps.psp_configmap(region, namespace, routes)
    # Not in the pods' config hash: the pricing service re-reads its file when the ConfigMap
    # changes, so a price or flag edit applies without a rollout.
    pricing_cm = configmaps.pricing_configmap(region, namespace)
    gateway_cm = gatewayconfig.configmap(region, namespace)
    # Not in the hash either: the fleet routing (market -> writer, epoch). The services re-read it
    # live (write guard, gateway table), and a failover must not roll every Deployment of every
    # region at the moment the fleet needs them most.
    base_hash = hashing.digest([region_cm["data"]])
    payments_hash = hashing.digest([region_cm["data"], psp_cm["data"]])
    gateway_hash = hashing.digest([region_cm["data"], gateway_cm["data"]])
    secrets = psp.credential_secrets(routes)
    lease_access = leaseaccess.for_region(region)

    objects: list[hashing.KubeObject] = [region_cm, fleet_cm, psp_cm, pricing_cm, gateway_cm]
    for name in region_config.SERVICE_NAMES:
        svc = spec.services.for_service(name)
        payments = name == "payments"
        objects += [
            serviceaccount.build(spec.region, namespace, name),
            service.build(spec.region, namespace, name),
            deployment.build(
                region,
                namespace,
                name,
                payments_hash
                if payments
                else gateway_hash
                if name == gatewayconfig.COMPONENT
                else base_hash,
                secrets if payments else (),
                lease_access,
            ),
            pdb.build(spec.region, namespace, name),
            networkpolicy.build(
                spec.region,
                namespace,
                name,
                metrics_namespaces=spec.network_policy.metrics_namespaces,
                egress=networkpolicy.egress_for(
                    region,
                    name,
                    lease_keeper=lease_access is not None and name in leaseaccess.COMPONENTS,
                    psp_endpoints=[p.endpoint for r in routes for p in r.spec.providers],
                    peer_gateways=[r for r in fleet_regions if r.spec.region != spec.region],
                ),
            ),
        ]
        if svc.autoscaling.enabled:
            objects.append(hpa.build(spec.region, namespace, name, svc.autoscaling))
    if lease_access is not None and lease_access.in_cluster:
        markets = [m.market for m in fleet_routing.markets]
        objects += [
            leaseaccess.role(spec.region, namespace, spec.fleet, markets),
            leaseaccess.role_binding(spec.region, namespace),
            leaseaccess.reader_role(spec.region, namespace),
            leaseaccess.reader_role_binding(spec.region, namespace),
        ]
    if spec.replication.peers:
        if spec.replication.mode == "Strimzi":
            objects.append(mirrormaker.strimzi(region, namespace, fleet_regions))
        else:
            props = mirrormaker.properties_configmap(region, namespace, fleet_regions)
            objects += [
                props,
                serviceaccount.build(spec.region, namespace, mirrormaker.COMPONENT),
                mirrormaker.standalone_deployment(region, namespace, hashing.digest(props["data"])),
            ]
    if spec.edge.http_route is not None:
        objects.append(httproute.build(spec.region, namespace, spec.edge.http_route))
    objects += dnsendpoint.for_region(region, namespace, fleet_regions, fleet_routing)
    return sorted(objects, key=sort_key)


def render_fleet(
    regions: Sequence[CheckoutRegion], psproutes: Sequence[PSPRoute]
) -> list[hashing.KubeObject]:
    """Every object of every region given, sorted by region, kind, namespace, name."""
    fleets: dict[str, list[CheckoutRegion]] = {}
    for region in regions:
        fleets.setdefault(region.spec.fleet, []).append(region)
    routings = {
        name: configmaps.fleet_routing_model(members, effective_writers(members))
        for name, members in fleets.items()
    }
    objects: list[hashing.KubeObject] = []
    for region in regions:
        fleet = fleets[region.spec.fleet]
        objects += render_region(
            region, fleet, psproutes, fleet_routing=routings[region.spec.fleet]
        )
    return sorted(objects, key=sort_key)
