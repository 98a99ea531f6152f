"""The demo fleet prices what the demo sells: the operator renders each region's spec.pricing into
the pricing service's config, and the demo runs the services from that (no catalog of its own).
A region must quote every SKU the demo stocks, in the currency, tax and shipping of every market
it may write for: its home markets and those of the regions that fail over to it."""

from __future__ import annotations

from checkout_demo import cluster
from checkout_demo.load import MARKETS
from checkout_demo.stack import STOCK
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import configmaps


def test_every_region_prices_every_market_it_may_write_for() -> None:
    fleet = cluster.load_fleet()
    regions = {}
    for doc in fleet.regions:
        parsed = load.parse(doc)
        assert isinstance(parsed, CheckoutRegion)
        regions[parsed.spec.region] = parsed
    writes: dict[str, set[str]] = {name: set(fleet.home_markets(name)) for name in regions}
    for name, region in regions.items():
        for target in region.spec.failover.targets:
            writes[target] |= set(fleet.home_markets(name))
    assert writes["eu-west-1"] == {"NL", "DE", "US", "BR"}
    assert writes["ap-south-1"] == {"IN"}
    for name, markets in writes.items():
        config = configmaps.pricing_model(regions[name])
        for market in sorted(markets):
            currency = MARKETS[market][0]
            for sku in STOCK:
                assert currency in config.catalog.get(sku, {}), (name, market, sku)
            assert market in config.tax, (name, market)
            assert any(currency in o.amounts for o in config.shipping[market]), (name, market)
    # the demo sells every market it loads
    assert set().union(*writes.values()) == set(MARKETS)


def test_failover_floor_is_the_probes_or_the_old_lease_whichever_is_later() -> None:
    fleet = cluster.load_fleet()
    spec = fleet.region("us-east-1")["spec"]
    probe, lease = spec["healthProbe"], spec["failover"]["writeLeaseSeconds"]
    assert fleet.failover_floor_seconds("us-east-1") == max(
        probe["periodSeconds"] * probe["failureThreshold"], lease
    )
    slow = cluster.Fleet(
        [{"spec": {"region": "x", "healthProbe": {"periodSeconds": 1}, "failover": {}}}], []
    )
    assert slow.failover_floor_seconds("x") == 15.0  # the API's default lease outlasts 3 probes


def test_every_demo_region_keeps_its_leases_through_the_rendered_credential() -> None:
    for doc in cluster.load_fleet().regions:
        ref = doc["spec"]["remoteCluster"]["leaseKubeconfigSecretRef"]
        assert ref == {"name": cluster.LEASE_KUBECONFIG_SECRET, "key": "kubeconfig"}
