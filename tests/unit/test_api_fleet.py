"""Cross-object rules: residency, fleet membership, placement, Identity replication."""

from __future__ import annotations

import copy
from typing import Any

import example_data as helpers

from checkout_operator.api import fleet, load, residency


def _located(docs: list[dict[str, Any]]) -> list[fleet.Located]:
    return [fleet.Located(f"doc{i}", load.parse(d)) for i, d in enumerate(docs)]


def _messages(docs: list[dict[str, Any]]) -> list[str]:
    return [str(e) for e in fleet.validate(_located(docs))]


def _examples() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(helpers.example_docs())


def test_the_example_fleet_is_valid() -> None:
    assert _messages(list(_examples().values())) == []


def test_residency_rule() -> None:
    br = residency.market_residency("BR", "us-east-1", "US", [])
    assert br.allows("US")
    assert not br.allows("EU")
    nl = residency.market_residency("NL", "eu-west-1", "EU", ["UK"])
    assert nl.allowed == frozenset({"EU", "UK"})
    assert residency.violation_message(
        "ap-x", "EU", residency.market_residency("IN", "a", "IN", [])
    ) == ("region ap-x (jurisdiction EU) may not hold data of market IN (allowed: IN)")


def test_failover_target_breaking_residency_is_an_error() -> None:
    docs = _examples()
    docs["ap-south-1"]["spec"]["failover"]["targets"] = ["eu-central-1", "eu-west-1"]
    assert _messages(list(docs.values())) == [
        "doc5: spec.failover.targets[0]: region eu-central-1 (jurisdiction EU) "
        "may not hold data of market IN (allowed: IN)",
        "doc5: spec.failover.targets[1]: region eu-west-1 (jurisdiction EU) "
        "may not hold data of market IN (allowed: IN)",
    ]


def test_allowed_jurisdictions_make_a_target_legal() -> None:
    docs = _examples()
    docs["us-east-1"]["spec"]["homeMarkets"] = [
        {"country": "US", "allowedJurisdictions": ["EU"]},
        {"country": "BR", "allowedJurisdictions": ["EU"]},
    ]
    docs["us-east-1"]["spec"]["failover"]["targets"] = ["eu-west-1"]
    assert _messages(list(docs.values())) == []
    docs["us-east-1"]["spec"]["homeMarkets"][1] = {"country": "BR"}
    assert _messages(list(docs.values())) == [
        "doc8: spec.failover.targets[0]: region eu-west-1 (jurisdiction EU) "
        "may not hold data of market BR (allowed: US)"
    ]


def test_replication_peer_in_another_jurisdiction_is_legal_the_filters_restrict_it() -> None:
    # us-east-1 pulling from eu-west-1 gets only aggregates: the rendered MM2 filters exclude
    # NL/IE/FR personal and payment topics (tests/unit/test_render_residency.py)
    docs = _examples()
    docs["us-east-1"]["spec"]["replication"] = {
        "peers": [{"region": "eu-west-1", "bootstrapSecretRef": {"name": "k", "key": "b"}}]
    }
    assert _messages(list(docs.values())) == []


def test_a_market_homed_in_two_regions_is_an_error() -> None:
    docs = _examples()
    docs["us-east-1"]["spec"]["homeMarkets"].append({"country": "NL"})
    assert _messages(list(docs.values())) == [
        "doc7: spec.homeMarkets[0].country: market NL is also a home market of us-east-1 in "
        "fleet global: a market has one home region (its residency and its writer)",
        "doc8: spec.homeMarkets[2].country: market NL is also a home market of eu-west-1 in "
        "fleet global: a market has one home region (its residency and its writer)",
    ]


def test_india_has_no_legal_failover_target_outside_india() -> None:
    docs = _examples()
    docs["ap-south-1"]["spec"]["failover"]["targets"] = ["us-east-1"]
    assert _messages(list(docs.values())) == [
        "doc5: spec.failover.targets[0]: region us-east-1 (jurisdiction US) "
        "may not hold data of market IN (allowed: IN)"
    ]


def test_unknown_target_and_peer_and_route_region() -> None:
    docs = _examples()
    docs["eu-west-1"]["spec"]["failover"]["targets"] = ["eu-north-1"]
    docs["eu-west-1"]["spec"]["replication"]["peers"][0]["region"] = "eu-south-1"
    docs["in-upi"]["spec"]["regions"] = ["ap-south-2"]
    assert _messages(list(docs.values())) == [
        "doc2: spec.regions[0]: no CheckoutRegion ap-south-2 in namespace checkout",
        "doc7: spec.failover.targets[0]: region eu-north-1 is not in fleet global",
        "doc7: spec.replication.peers[0].region: region eu-south-1 is not in fleet global",
    ]


def test_identity_replication_both_ways_is_an_error() -> None:
    docs = _examples()
    docs["eu-west-1"]["spec"]["replication"]["policy"] = "Identity"
    assert _messages(list(docs.values())) == [
        "doc7: spec.replication.policy: Identity replication keeps topic names and works in one "
        "direction only, but eu-central-1 also pulls from eu-west-1: use Default"
    ]


def test_two_regions_in_one_namespace_of_one_cluster_collide() -> None:
    docs = _examples()
    for name in ("eu-west-1", "eu-central-1"):
        del docs[name]["spec"]["remoteCluster"]
    assert _messages(list(docs.values())) == [
        "doc7: metadata.namespace: regions eu-central-1 and eu-west-1 would both deploy into "
        "namespace checkout of the operator's cluster: give each region its own namespace or "
        "cluster (spec.remoteCluster)"
    ]


def test_duplicate_names_and_regions() -> None:
    docs = _examples()
    twin = copy.deepcopy(docs["eu-west-1"])
    twin["spec"]["remoteCluster"]["kubeconfigSecretRef"]["name"] = "other"
    messages = _messages([*docs.values(), twin])
    assert "doc9: metadata.name: CheckoutRegion checkout/eu-west-1 is also in doc7" in messages
    assert "doc9: spec.region: region eu-west-1 appears twice in fleet global" in messages
