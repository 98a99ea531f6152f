"""The ConfigMaps of a region, each serialized from the services' own config model.

* ``checkout-region``: :class:`checkout_contract.config.RegionConfig`
* ``checkout-psp-routing``: :class:`checkout_contract.payments.PaymentRoutingConfig`
* ``checkout-fleet-routing``: :class:`checkout_contract.routing.FleetRouting`
* ``checkout-pricing``: :class:`checkout_contract.pricing.PricingConfig`
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from checkout_contract import config as region_config
from checkout_contract import payments as payments_config
from checkout_contract import pricing as pricing_config
from checkout_contract import routing
from checkout_operator.api import pricing as pricing_api
from checkout_operator.api import residency
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.api.status import MarketStatus
from checkout_operator.render import hashing, labels, psp

REGION_COMPONENT = "region-config"
PSP_COMPONENT = "psp-routing"
FLEET_COMPONENT = "fleet-routing"
PRICING_COMPONENT = "pricing-config"


def configmap(
    name: str, namespace: str, region: str, component: str, data: Mapping[str, str]
) -> hashing.KubeObject:
    return hashing.with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels.labels(region, component),
            },
            "data": dict(data),
        }
    )


def service_url(component: str, namespace: str | None = None) -> str:
    host = labels.child_name(component) + (f".{namespace}.svc" if namespace else "")
    return f"http://{host}:{region_config.SERVICE_PORT}"


def region_config_model(region: CheckoutRegion) -> region_config.RegionConfig:
    spec = region.spec
    return region_config.RegionConfig(
        region=spec.region,
        fleet=spec.fleet,
        jurisdiction=spec.jurisdiction,
        home_markets=tuple(m.country for m in spec.home_markets),
        endpoints={name: service_url(name) for name in region_config.SERVICE_NAMES},
        kafka_replication_factor=spec.replication.replication_factor,
    )


def region_configmap(region: CheckoutRegion, namespace: str) -> hashing.KubeObject:
    return configmap(
        region_config.CONFIGMAP_NAME,
        namespace,
        region.spec.region,
        REGION_COMPONENT,
        {region_config.CONFIG_KEY: region_config_model(region).to_json()},
    )


def psp_route(route: PSPRoute) -> payments_config.Route:
    spec = route.spec
    return payments_config.Route(
        name=psp.route_id(route),
        match=payments_config.Match(
            countries=spec.match.countries,
            currencies=spec.match.currencies,
            payment_methods=spec.match.payment_methods,
        ),
        strategy=spec.strategy,
        providers=tuple(
            payments_config.Provider(
                name=p.name,
                type=p.type,
                endpoint=p.endpoint,
                account=p.account,
                credentials_dir=psp.credentials_dir(p.credentials_secret_ref.name),
                weight=p.weight,
                timeout_ms=p.timeout_ms,
                api=p.api,
            )
            for p in spec.providers
        ),
        retry=tuple(
            payments_config.RetryRule(on=r.failure, action=r.action, max_attempts=r.max_attempts)
            for r in spec.retry
        ),
        circuit_breaker=payments_config.CircuitBreaker(
            **spec.circuit_breaker.model_dump(by_alias=False)
        ),
        success_rate_ordering=spec.success_rate_ordering,
    )


def psp_routing_model(
    region: CheckoutRegion, routes: Sequence[PSPRoute]
) -> payments_config.PaymentRoutingConfig:
    """``routes`` must already be the region's routes, in evaluation order (see :mod:`psp`)."""
    return payments_config.PaymentRoutingConfig(
        region=region.spec.region, routes=tuple(psp_route(r) for r in routes)
    )


def psp_configmap(
    region: CheckoutRegion, namespace: str, routes: Sequence[PSPRoute]
) -> hashing.KubeObject:
    return configmap(
        payments_config.CONFIGMAP_NAME,
        namespace,
        region.spec.region,
        PSP_COMPONENT,
        {payments_config.CONFIG_KEY: psp_routing_model(region, routes).to_json()},
    )


def gateway_url(region: CheckoutRegion) -> str:
    """Where peers reach the region's gateway (``spec.gatewayUrl``: required, https)."""
    return region.spec.gateway_url


def fleet_routing_model(
    fleet: Sequence[CheckoutRegion], writers: Mapping[str, MarketStatus]
) -> routing.FleetRouting:
    """Every market of the fleet: its writer (home region unless ``writers`` says otherwise),
    epoch, and the regions whose jurisdiction may hold its data (they serve its reads)."""
    regions = sorted(fleet, key=lambda r: r.spec.region)
    by_jurisdiction: dict[str, list[str]] = {}
    for r in regions:
        by_jurisdiction.setdefault(r.spec.jurisdiction, []).append(r.spec.region)
    markets: list[routing.MarketRoute] = []
    for home in regions:
        for market in home.spec.home_markets:
            rule = residency.market_residency(
                market.country,
                home.spec.region,
                home.spec.jurisdiction,
                market.allowed_jurisdictions,
            )
            readers = sorted(r for j in rule.allowed for r in by_jurisdiction.get(j, ()))
            effective = writers.get(market.country)
            markets.append(
                routing.MarketRoute(
                    market=market.country,
                    writer=effective.writer if effective else home.spec.region,
                    epoch=effective.epoch if effective else 1,
                    state=effective.state if effective else "Serving",
                    read_regions=tuple(readers),
                )
            )
    return routing.FleetRouting(
        fleet=regions[0].spec.fleet,
        regions=tuple(
            routing.RegionEntry(
                name=r.spec.region, jurisdiction=r.spec.jurisdiction, gateway_url=gateway_url(r)
            )
            for r in regions
        ),
        markets=tuple(sorted(markets, key=lambda m: m.market)),
    )


def fleet_configmap(
    region: CheckoutRegion, namespace: str, fleet_routing: routing.FleetRouting
) -> hashing.KubeObject:
    """The same in every region of the fleet (build it once: :func:`fleet_routing_model`)."""
    return configmap(
        routing.CONFIGMAP_NAME,
        namespace,
        region.spec.region,
        FLEET_COMPONENT,
        {routing.CONFIG_KEY: fleet_routing.to_json()},
    )


def _amounts(prices: Sequence[pricing_api.Price]) -> dict[str, int]:
    return {p.currency: p.amount for p in prices}


def pricing_model(region: CheckoutRegion) -> pricing_config.PricingConfig:
    """``spec.pricing`` in the service's own model: the API's lists of named entries become the
    file's maps (SKU -> currency -> amount, country -> rule, ...), in the spec's order."""
    spec = region.spec.pricing
    return pricing_config.PricingConfig(
        catalog={item.sku: _amounts(item.prices) for item in spec.catalog},
        tax={
            t.country: pricing_config.TaxRule(kind=t.kind, rate_bp=t.rate_bp, inclusive=t.inclusive)
            for t in spec.tax
        },
        shipping={
            s.country: tuple(
                pricing_config.ShippingOption(
                    id=o.id, name=o.name, amounts=_amounts(o.prices), days=o.days
                )
                for o in s.options
            )
            for s in spec.shipping
        },
        promotions=tuple(
            pricing_config.Promotion(
                code=p.code,
                flag=p.flag,
                percent_off_bp=p.percent_off_bp,
                amount_off=_amounts(p.amount_off),
                min_subtotal=_amounts(p.min_subtotal),
            )
            for p in spec.promotions
        ),
        flags={f.name: f.enabled for f in spec.flags},
        snapshot_ttl_seconds=spec.snapshot_ttl_seconds,
    )


def pricing_configmap(region: CheckoutRegion, namespace: str) -> hashing.KubeObject:
    return configmap(
        pricing_config.CONFIGMAP_NAME,
        namespace,
        region.spec.region,
        PRICING_COMPONENT,
        {pricing_config.CONFIG_KEY: pricing_model(region).to_json()},
    )
