"""The reconciler's renderer: parse -> fleet rules -> render, on the example fleet."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml

from checkout_operator.api import load
from checkout_operator.reconcile import desired, errors, region
from checkout_operator.render import region as render_region

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def docs(sub: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((EXAMPLES / sub).glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


REGIONS = docs("regions")
ROUTES = docs("psproutes")


def by_name(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for r in REGIONS if r["metadata"]["name"] == name))


def test_renders_what_the_renderer_renders_with_placement() -> None:
    body = by_name("eu-west-1")
    out = desired.render(body, ROUTES, REGIONS)
    models = [load.parse(r) for r in REGIONS]
    me = next(m for m in models if m.metadata.name == "eu-west-1")
    expected = render_region.render_region(
        me,  # type: ignore[arg-type]
        [m for m in models if m.kind == "CheckoutRegion"],  # type: ignore[misc]
        [load.parse(r) for r in ROUTES],  # type: ignore[misc]
    )
    assert list(out.objects) == expected
    assert out.region == "eu-west-1"
    assert out.namespace == "checkout"
    assert out.remote == region.RemoteTarget("checkout", "eu-west-1-kubeconfig", "kubeconfig")


def test_local_region_has_no_remote_target() -> None:
    body = by_name("eu-west-1")
    del body["spec"]["remoteCluster"]
    body["metadata"]["namespace"] = "checkout"
    out = desired.render(body, ROUTES, REGIONS)
    assert out.remote is None
    assert {o["metadata"]["namespace"] for o in out.objects} == {"checkout"}


def test_residency_across_regions_names_the_field() -> None:
    body = by_name("ap-south-1")
    body["spec"]["failover"]["targets"] = ["eu-west-1"]
    with pytest.raises(errors.InvalidSpec) as exc:
        desired.render(body, ROUTES, REGIONS)
    assert exc.value.field == "spec.failover.targets[0]"
    assert str(exc.value) == (
        "spec.failover.targets[0]: region eu-west-1 (jurisdiction EU) may not hold data of "
        "market IN (allowed: IN)"
    )


def test_schema_error_names_the_field_without_the_value() -> None:
    body = by_name("eu-west-1")
    body["spec"]["services"]["cart"] = {"replicas": 0}
    body["spec"]["dependencies"]["postgres"]["name"] = "Not_A_Valid_Name_s3cr3t"
    with pytest.raises(errors.InvalidSpec) as exc:
        desired.render(body, ROUTES, REGIONS)
    assert exc.value.field.startswith("spec.")
    assert "spec.services.cart.replicas" in str(exc.value)
    assert "s3cr3t" not in str(exc.value)


def test_invalid_peers_and_routes_do_not_break_a_valid_region() -> None:
    bad_route = copy.deepcopy(ROUTES[0])
    bad_route["spec"]["providers"] = []
    out = desired.render(by_name("us-east-1"), [bad_route, *ROUTES[1:]], REGIONS)
    assert out.objects


def test_a_status_from_a_newer_operator_does_not_invalidate_the_spec() -> None:
    body = by_name("eu-west-1")
    body["status"] = {"somethingNew": 1}
    assert desired.render(body, ROUTES, REGIONS).objects
