"""The three ConfigMaps, each built from the services' own config model."""

from __future__ import annotations

import json

import example_data as helpers

from checkout_contract.config import RegionConfig
from checkout_contract.payments import PaymentRoutingConfig
from checkout_contract.pricing import PricingConfig
from checkout_contract.routing import FleetRouting
from checkout_operator.api.status import MarketStatus
from checkout_operator.render import configmaps, hashing


def test_region_configmap_exact() -> None:
    region = helpers.example_region("ap-south-1")
    got = configmaps.region_configmap(region, "shop")
    expected_json = {
        "region": "ap-south-1",
        "fleet": "global",
        "jurisdiction": "IN",
        "homeMarkets": ["IN"],
        "endpoints": {
            name: f"http://checkout-{name}:8080"
            for name in ("cart", "pricing", "inventory", "payments", "orders", "gateway")
        },
        "topics": {
            "orderPlaced": "checkout.order-placed",
            "paymentCaptured": "checkout.payment-captured",
            "fulfillmentRequested": "checkout.fulfillment-requested",
            "paymentCaptureFailedDlq": "checkout.dlq.payment-capture-failed",
            "reservationExpiredDlq": "checkout.dlq.reservation-expired",
            "customers": "checkout.customers",
            "stockDeltas": "checkout.stock-deltas",
            "inventoryDivergence": "checkout.inventory-divergence",
        },
        "kafkaReplicationFactor": 3,
        "temporalNamespace": "default",
        "temporalTaskQueue": "checkout",
    }
    assert got == hashing.with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "checkout-region",
                "namespace": "shop",
                "labels": {
                    "app.kubernetes.io/name": "checkout-region-config",
                    "app.kubernetes.io/instance": "checkout-region-config-ap-south-1",
                    "app.kubernetes.io/component": "region-config",
                    "app.kubernetes.io/part-of": "checkout",
                    "app.kubernetes.io/managed-by": "checkout-operator",
                    "checkout-operator.io/region": "ap-south-1",
                },
            },
            "data": {"region.json": json.dumps(expected_json, indent=2) + "\n"},
        }
    )
    # the service reads it back with its own model
    RegionConfig.model_validate_json(got["data"]["region.json"])


def test_psp_routing_exact_for_india() -> None:
    region = helpers.example_region("ap-south-1")
    got = configmaps.psp_configmap(region, "shop", [helpers.example_route("in-upi")])
    config = json.loads(got["data"]["routing.json"])
    assert config == {
        "region": "ap-south-1",
        "routes": [
            {
                "name": "checkout/in-upi",
                "match": {"countries": ["IN"], "currencies": ["INR"], "paymentMethods": ["upi"]},
                "strategy": "priority",
                "providers": [
                    {
                        "name": "upi-in",
                        "type": "upi",
                        "endpoint": "https://upi.example-psp.in",
                        "account": "checkout-in",
                        "credentialsDir": "/etc/checkout/psp-credentials/psp-upi-in",
                        "weight": 1,
                        "timeoutMs": 10000,
                    }
                ],
                "retry": [
                    {"on": "hard_decline", "action": "stop", "maxAttempts": 1},
                    {"on": "fraud", "action": "stop", "maxAttempts": 1},
                    {"on": "network_error", "action": "retry_same", "maxAttempts": 2},
                ],
                "circuitBreaker": {
                    "failureRatePercent": 50,
                    "minimumRequests": 20,
                    "windowSeconds": 30,
                    "openSeconds": 15,
                    "halfOpenRequests": 3,
                },
                "successRateOrdering": False,
            },
        ],
    }
    assert (
        PaymentRoutingConfig.model_validate_json(got["data"]["routing.json"]).region == "ap-south-1"
    )
    assert "api-key" not in got["data"]["routing.json"]


def test_fleet_routing_homes_reads_and_residency() -> None:
    regions, _ = helpers.example_objects()
    routing = configmaps.fleet_routing_model(regions, {})
    by_market = {m.market: m for m in routing.markets}
    assert sorted(by_market) == ["AT", "BR", "DE", "FR", "IE", "IN", "NL", "PL", "US"]
    assert by_market["NL"].writer == "eu-west-1"
    assert by_market["NL"].epoch == 1
    assert by_market["NL"].read_regions == ("eu-central-1", "eu-west-1")
    assert by_market["IN"].read_regions == ("ap-south-1",)
    assert by_market["BR"].read_regions == ("us-east-1",)
    assert [r.name for r in routing.regions] == [
        "ap-south-1",
        "eu-central-1",
        "eu-west-1",
        "us-east-1",
    ]
    assert routing.regions[2].gateway_url == "https://checkout.eu-west-1.example.com"


def test_fleet_routing_uses_the_effective_writer_from_status() -> None:
    regions, _ = helpers.example_objects()
    moved = {"NL": MarketStatus(market="NL", writer="eu-central-1", epoch=4, state="Serving")}
    routing = configmaps.fleet_routing_model(regions, moved)
    nl = routing.route_for("NL")
    assert nl is not None
    assert (nl.writer, nl.epoch) == ("eu-central-1", 4)
    region = helpers.example_region("eu-west-1")
    cm = configmaps.fleet_configmap(region, "shop", routing)
    assert FleetRouting.model_validate_json(cm["data"]["routing.json"]) == routing


def test_pricing_configmap_exact() -> None:
    """``spec.pricing`` (lists of named entries) becomes the pricing service's file (maps)."""
    region = helpers.example_region("eu-west-1")
    got = configmaps.pricing_configmap(region, "shop")
    expected_json = {
        "catalog": {"tee": {"EUR": 1999}, "mug": {"EUR": 1250}},
        "tax": {
            "NL": {"kind": "VAT", "rateBp": 2100, "inclusive": True},
            "IE": {"kind": "VAT", "rateBp": 2300, "inclusive": True},
            "FR": {"kind": "VAT", "rateBp": 2000, "inclusive": True},
        },
        "shipping": {
            "NL": [
                {"id": "standard", "name": "Standard", "amounts": {"EUR": 495}, "days": 2},
                {"id": "express", "name": "Express", "amounts": {"EUR": 1295}, "days": 1},
            ],
            "IE": [{"id": "standard", "name": "Standard", "amounts": {"EUR": 795}, "days": 4}],
            "FR": [{"id": "standard", "name": "Standard", "amounts": {"EUR": 595}, "days": 3}],
        },
        "promotions": [
            {
                "code": "WELCOME10",
                "flag": "promo.welcome10",
                "percentOffBp": 1000,
                "amountOff": {},
                "minSubtotal": {},
            },
            {
                "code": "FIVEOFF",
                "flag": "promo.fiveoff",
                "percentOffBp": 0,
                "amountOff": {"EUR": 500},
                "minSubtotal": {"EUR": 3000},
            },
        ],
        "flags": {"promo.welcome10": True, "promo.fiveoff": False},
        "snapshotTtlSeconds": 900,
    }
    assert got == hashing.with_spec_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "checkout-pricing",
                "namespace": "shop",
                "labels": {
                    "app.kubernetes.io/name": "checkout-pricing-config",
                    "app.kubernetes.io/instance": "checkout-pricing-config-eu-west-1",
                    "app.kubernetes.io/component": "pricing-config",
                    "app.kubernetes.io/part-of": "checkout",
                    "app.kubernetes.io/managed-by": "checkout-operator",
                    "checkout-operator.io/region": "eu-west-1",
                },
            },
            "data": {"pricing.json": json.dumps(expected_json, indent=2) + "\n"},
        }
    )
    # the service's own loader reads it back unchanged
    loaded = PricingConfig.model_validate_json(got["data"]["pricing.json"])
    assert loaded.catalog["tee"] == {"EUR": 1999}
    assert loaded.promotions[1].min_subtotal == {"EUR": 3000}


def test_pricing_configmap_of_a_region_without_pricing_is_empty_but_valid() -> None:
    got = configmaps.pricing_configmap(helpers.example_region("ap-south-1"), "shop")
    loaded = PricingConfig.model_validate_json(got["data"]["pricing.json"])
    assert loaded == PricingConfig(catalog={}, tax={}, shipping={})
