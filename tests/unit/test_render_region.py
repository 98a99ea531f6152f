"""render_region / render_fleet: the set of objects, their order, status-driven routing."""

from __future__ import annotations

import json
from collections import Counter

import example_data as helpers
import pytest

from checkout_operator.api.status import CheckoutRegionStatus, MarketStatus
from checkout_operator.render import region


def _kinds(objects: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(o["kind"]) for o in objects)


def test_objects_of_a_standalone_region() -> None:
    regions, routes = helpers.example_objects()
    objects = region.render_region(helpers.example_region("eu-west-1"), regions, routes)
    assert _kinds(objects) == {
        "ConfigMap": 6,  # region, psp routing, fleet routing, pricing, gateway, mm2.properties
        "Deployment": 7,  # six services + MirrorMaker 2
        "HorizontalPodAutoscaler": 6,
        "NetworkPolicy": 6,
        "PodDisruptionBudget": 6,
        "Service": 6,
        "ServiceAccount": 7,
        "HTTPRoute": 1,  # spec.edge.httpRoute
        "DNSEndpoint": 3,  # spec.edge.dns: one per home market (NL, IE, FR)
    }
    assert objects == sorted(objects, key=region.sort_key)
    assert {o["metadata"]["namespace"] for o in objects} == {"checkout"}  # remoteCluster's


def test_objects_of_a_strimzi_region_with_a_fixed_size_service() -> None:
    regions, routes = helpers.example_objects()
    objects = region.render_region(helpers.example_region("eu-central-1"), regions, routes)
    kinds = _kinds(objects)
    assert kinds["KafkaMirrorMaker2"] == 1
    assert kinds["HorizontalPodAutoscaler"] == 5  # pricing has autoscaling off
    assert kinds["ConfigMap"] == 5  # region, psp routing, fleet routing, pricing, gateway


def test_region_without_peers_renders_no_mirrormaker() -> None:
    regions, routes = helpers.example_objects()
    objects = region.render_region(helpers.example_region("ap-south-1"), regions, routes)
    assert not any("mirrormaker" in o["metadata"]["name"] for o in objects)


def test_effective_writer_comes_from_the_home_regions_status() -> None:
    regions, routes = helpers.example_objects()
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
    objects = region.render_fleet(failed_over, routes)
    routing = next(
        o
        for o in objects
        if o["metadata"]["name"] == "checkout-fleet-routing"
        and o["metadata"]["labels"]["checkout-operator.io/region"] == "us-east-1"
    )
    nl = next(
        m for m in json.loads(routing["data"]["routing.json"])["markets"] if m["market"] == "NL"
    )
    assert (nl["writer"], nl["epoch"]) == ("eu-central-1", 7)


def test_missing_peer_is_a_render_error() -> None:
    _, routes = helpers.example_objects()
    alone = helpers.example_region("eu-west-1")
    with pytest.raises(region.RenderError, match="replication peer eu-central-1 is not in fleet"):
        region.render_region(alone, [alone], routes)


def test_a_route_change_rolls_only_the_payments_pods() -> None:
    regions, routes = helpers.example_objects()
    eu_west = helpers.example_region("eu-west-1")
    before = {
        o["metadata"]["name"]: o
        for o in region.render_region(eu_west, regions, routes)
        if o["kind"] == "Deployment"
    }
    fewer = [r for r in routes if r.metadata.name != "nl-ideal"]
    after = {
        o["metadata"]["name"]: o
        for o in region.render_region(eu_west, regions, fewer)
        if o["kind"] == "Deployment"
    }
    changed = sorted(n for n in before if before[n] != after[n])
    assert changed == ["checkout-payments"]


def test_a_failover_changes_the_routing_configmap_and_rolls_no_pods() -> None:
    """The services re-read the fleet routing live: a writer move must not restart them."""
    regions, routes = helpers.example_objects()
    moved = {"NL": MarketStatus(market="NL", writer="eu-central-1", epoch=7)}

    def render(writers: dict[str, MarketStatus] | None) -> dict[tuple[str, str], object]:
        objects = region.render_region(
            helpers.example_region("us-east-1"), regions, routes, writers=writers
        )
        return {(str(o["kind"]), o["metadata"]["name"]): o for o in objects}

    before, after = render(None), render(moved)
    changed = sorted(k for k in before if before[k] != after[k])
    assert changed == [("ConfigMap", "checkout-fleet-routing")]
