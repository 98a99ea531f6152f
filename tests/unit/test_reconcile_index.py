"""Which regions a PSPRoute selects (pure), and which a change affects."""

from __future__ import annotations

from typing import Any

from checkout_operator.reconcile import index


def region(name: str, ns: str = "checkout", region_name: str | None = None) -> dict[str, Any]:
    return {
        "kind": "CheckoutRegion",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"region": region_name or name},
    }


def route(name: str, regions: list[str], ns: str = "checkout") -> dict[str, Any]:
    return {
        "kind": "PSPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"regions": regions},
    }


REGIONS = [
    region("eu-west-1"),
    region("us-east-1"),
    region("cr-name", region_name="ap-south-1"),
    region("eu-west-1", ns="other"),
]
R = index.Ref


def test_empty_regions_selects_every_region_of_the_namespace() -> None:
    assert index.regions_selected(route("all", []), REGIONS) == [
        R("checkout", "cr-name"),
        R("checkout", "eu-west-1"),
        R("checkout", "us-east-1"),
    ]


def test_listed_regions_match_spec_region_not_cr_name() -> None:
    assert index.regions_selected(route("r", ["ap-south-1", "eu-west-1"]), REGIONS) == [
        R("checkout", "cr-name"),
        R("checkout", "eu-west-1"),
    ]
    assert index.regions_selected(route("r", ["cr-name"]), REGIONS) == []


def test_other_namespaces_are_never_selected() -> None:
    assert index.regions_selected(route("r", ["eu-west-1"], ns="other"), REGIONS) == [
        R("other", "eu-west-1")
    ]


def test_affected_is_the_union_of_old_and_new_selection() -> None:
    old = route("r", ["eu-west-1"])
    new = route("r", ["us-east-1"])
    assert index.affected_regions(old, new, REGIONS) == [
        R("checkout", "eu-west-1"),
        R("checkout", "us-east-1"),
    ]
    assert index.affected_regions(None, new, REGIONS) == [R("checkout", "us-east-1")]
    assert index.affected_regions(old, None, REGIONS) == [R("checkout", "eu-west-1")]


def test_routes_for_a_region_sorted() -> None:
    routes = [route("z", []), route("a", ["us-east-1"]), route("b", ["eu-west-1"])]
    assert [r["metadata"]["name"] for r in index.routes_for(REGIONS[0], routes)] == ["b", "z"]


def test_route_index_remembers_previous_selection() -> None:
    idx = index.RouteIndex()
    assert idx.update(route("r", ["eu-west-1"]), REGIONS) == [R("checkout", "eu-west-1")]
    # moved to us-east-1: both are affected, even if the caller has no old body
    assert idx.update(route("r", ["us-east-1"]), REGIONS) == [
        R("checkout", "eu-west-1"),
        R("checkout", "us-east-1"),
    ]
    assert idx.selected(R("checkout", "r")) == frozenset({R("checkout", "us-east-1")})
    assert idx.remove(route("r", [])) == [R("checkout", "us-east-1")]
    assert idx.remove(route("r", [])) == []
