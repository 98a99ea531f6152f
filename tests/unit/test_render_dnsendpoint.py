"""Exact output of the external-dns DNSEndpoint builder; the write record follows the writer."""

from __future__ import annotations

import example_data as helpers
from render_expect import hashed

from checkout_operator.api.status import CheckoutRegionStatus, MarketStatus
from checkout_operator.render import dnsendpoint, region

LABELS = {
    "app.kubernetes.io/name": "checkout-dns",
    "app.kubernetes.io/instance": "checkout-dns-eu-west-1",
    "app.kubernetes.io/component": "dns",
    "app.kubernetes.io/part-of": "checkout",
    "app.kubernetes.io/managed-by": "checkout-operator",
    "checkout-operator.io/region": "eu-west-1",
    "checkout-operator.io/market": "NL",
}


def test_dnsendpoint() -> None:
    write = dnsendpoint.Target("eu-west-1", "lb.eu-west-1.example.com", 100)
    reads = [
        dnsendpoint.Target("eu-west-1", "lb.eu-west-1.example.com", 100),
        dnsendpoint.Target("eu-central-1", "lb.eu-central-1.example.com", 25),
    ]
    obj = dnsendpoint.build(
        "eu-west-1", "shop", "NL", "checkout.example.com", 30, write, reads, "aws/weight"
    )
    assert obj == hashed(
        {
            "apiVersion": "externaldns.k8s.io/v1alpha1",
            "kind": "DNSEndpoint",
            "metadata": {"name": "checkout-dns-nl", "namespace": "shop", "labels": LABELS},
            "spec": {
                "endpoints": [
                    {
                        "dnsName": "write.nl.checkout.example.com",
                        "recordType": "CNAME",
                        "targets": ["lb.eu-west-1.example.com"],
                        "recordTTL": 30,
                    },
                    {
                        "dnsName": "read.nl.checkout.example.com",
                        "recordType": "CNAME",
                        "targets": ["lb.eu-central-1.example.com"],
                        "recordTTL": 30,
                        "setIdentifier": "eu-central-1",
                        "providerSpecific": [{"name": "aws/weight", "value": "25"}],
                    },
                    {
                        "dnsName": "read.nl.checkout.example.com",
                        "recordType": "CNAME",
                        "targets": ["lb.eu-west-1.example.com"],
                        "recordTTL": 30,
                        "setIdentifier": "eu-west-1",
                        "providerSpecific": [{"name": "aws/weight", "value": "100"}],
                    },
                ]
            },
        }
    )


def test_ipv4_addresses_are_a_records_and_no_writer_means_no_write_record() -> None:
    reads = [dnsendpoint.Target("eu-west-1", "203.0.113.7", 1)]
    obj = dnsendpoint.build("eu-west-1", "shop", "NL", "example.com", 5, None, reads, "w")
    assert [(e["dnsName"], e["recordType"]) for e in obj["spec"]["endpoints"]] == [
        ("read.nl.example.com", "A")
    ]


def _write_target(objects: list[dict[str, object]], market: str) -> list[str]:
    dns = next(
        o
        for o in objects
        if o["kind"] == "DNSEndpoint"
        and o["metadata"]["labels"]["checkout-operator.io/market"] == market  # type: ignore[index]
    )
    endpoints = dns["spec"]["endpoints"]  # type: ignore[index]
    return next(e["targets"] for e in endpoints if e["dnsName"].startswith("write."))


def test_the_write_record_follows_a_failover() -> None:
    regions, routes = helpers.example_objects()
    before = region.render_fleet(regions, routes)
    assert _write_target(before, "NL") == ["lb.eu-west-1.example.com"]
    failed_over = [
        r.model_copy(
            update={
                "status": CheckoutRegionStatus(
                    markets=(MarketStatus(market="NL", writer="eu-central-1", epoch=7),)
                )
            }
        )
        if r.spec.region == "eu-west-1"
        else r
        for r in regions
    ]
    after = region.render_fleet(failed_over, routes)
    assert _write_target(after, "NL") == ["lb.eu-central-1.example.com"]
    # the other markets' records stay as they were
    assert _write_target(after, "FR") == ["lb.eu-west-1.example.com"]


def test_only_regions_that_opt_in_get_records() -> None:
    regions, routes = helpers.example_objects()
    objects = region.render_fleet(regions, routes)
    owners = {
        o["metadata"]["labels"]["checkout-operator.io/region"]  # type: ignore[index]
        for o in objects
        if o["kind"] == "DNSEndpoint"
    }
    assert owners == {"eu-west-1", "eu-central-1"}
