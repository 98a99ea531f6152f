"""The diff between desired and live children (pure): exact plans for each case."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from checkout_operator.reconcile import plan

HASH = plan.SPEC_HASH_ANNOTATION


def deployment(name: str = "checkout-cart", replicas: int = 2, h: str = "h1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "checkout",
            "labels": {"checkout-operator.io/region": "eu-west-1"},
            "annotations": {HASH: h},
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "img:1",
                            "resources": {"requests": {"cpu": "0.5", "memory": "128Mi"}},
                        }
                    ]
                }
            },
        },
    }


def configmap(name: str, h: str = "c1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "checkout", "annotations": {HASH: h}},
        "data": {"a": "1"},
    }


def as_live(obj: dict[str, Any], **extra_status: Any) -> dict[str, Any]:
    """What the apiserver returns: defaults added, server metadata, quantities normalised."""
    live = copy.deepcopy(obj)
    live["metadata"].update(
        {"uid": "u-" + obj["metadata"]["name"], "resourceVersion": "7", "generation": 1}
    )
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    if obj["kind"] == "Deployment":
        live["spec"]["strategy"] = {"type": "RollingUpdate"}
        c = live["spec"]["template"]["spec"]["containers"][0]
        c["terminationMessagePath"] = "/dev/termination-log"
        c["resources"]["requests"]["cpu"] = "500m"
        live["status"] = {"replicas": obj["spec"]["replicas"], **extra_status}
    return live


def test_missing_children_are_applied_config_before_workloads() -> None:
    crd = {
        "apiVersion": "x.io/v1",
        "kind": "Thing",
        "metadata": {"name": "t", "namespace": "checkout"},
    }
    desired = [crd, deployment(), configmap("b"), configmap("a")]
    result = plan.plan(desired, [])
    assert [(a.reason, a.obj["kind"], a.obj["metadata"]["name"]) for a in result.apply] == [
        ("missing", "ConfigMap", "b"),
        ("missing", "ConfigMap", "a"),
        ("missing", "Deployment", "checkout-cart"),
        ("missing", "Thing", "t"),
    ]
    assert result.prune == ()
    assert result.in_sync == ()


def test_live_in_sync_with_server_defaults_is_not_applied() -> None:
    desired = [configmap("b"), deployment()]
    live = [as_live(o) for o in desired]
    result = plan.plan(desired, live)
    assert result.empty
    assert [o["metadata"]["name"] for o in result.in_sync] == ["b", "checkout-cart"]


def test_changed_spec_hash_is_applied() -> None:
    live = [as_live(deployment(h="old"))]
    result = plan.plan([deployment(h="new")], live)
    assert [(a.reason, a.detail) for a in result.apply] == [("spec-hash", "")]


def test_hand_edited_replicas_is_drift_naming_the_field() -> None:
    live = as_live(deployment())
    live["spec"]["replicas"] = 5
    result = plan.plan([deployment()], [live])
    assert [(a.reason, a.detail) for a in result.apply] == [("drift", "spec.replicas")]


def test_hand_edited_container_image_is_drift() -> None:
    live = as_live(deployment())
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    result = plan.plan([deployment()], [live])
    assert [(a.reason, a.detail) for a in result.apply] == [
        ("drift", "spec.template.spec.containers[0].image")
    ]


def test_added_container_is_drift() -> None:
    live = as_live(deployment())
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    result = plan.plan([deployment()], [live])
    assert [(a.reason, a.detail) for a in result.apply] == [
        ("drift", "spec.template.spec.containers")
    ]


def test_removed_label_is_drift() -> None:
    live = as_live(deployment())
    del live["metadata"]["labels"]["checkout-operator.io/region"]
    result = plan.plan([deployment()], [live])
    assert [(a.reason, a.detail) for a in result.apply] == [
        ("drift", "metadata.labels.checkout-operator.io/region")
    ]


def test_children_no_longer_rendered_are_pruned_sorted() -> None:
    live = [as_live(deployment("checkout-x")), as_live(configmap("old")), as_live(deployment())]
    result = plan.plan([deployment()], live)
    assert result.apply == ()
    # workloads go first, the config they mount last
    assert [str(plan.key_of(o)) for o in result.prune] == ["Deployment/checkout-x", "ConfigMap/old"]


def test_a_child_being_deleted_counts_as_missing() -> None:
    live = as_live(deployment())
    live["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    result = plan.plan([deployment()], [live])
    assert [a.reason for a in result.apply] == ["missing"]
    assert result.prune == ()


def test_same_kind_and_name_in_another_group_is_another_object() -> None:
    other = {
        "apiVersion": "example.com/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout-cart", "namespace": "checkout"},
    }
    result = plan.plan([deployment()], [other])
    assert [a.reason for a in result.apply] == ["missing"]
    assert result.prune == (other,)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        ("1", Decimal(1)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        ("100k", Decimal(100_000)),
        ("abc", None),
        ("1.2.3", None),
        ("", None),
    ],
)
def test_parse_quantity(text: str, value: Decimal | None) -> None:
    assert plan.parse_quantity(text) == value


@pytest.mark.parametrize(
    ("live", "desired", "diff"),
    [
        ({"a": 1, "b": 2}, {"a": 1}, None),
        ({"a": 1}, {"a": 2}, "a"),
        ({}, {"a": None}, None),
        ({}, {"a": {}}, None),
        ({}, {"a": []}, None),
        ({"a": True}, {"a": 1}, "a"),
        ({"a": 1}, {"a": 1.0}, None),
        ({"a": "1000m"}, {"a": "1"}, None),
        ({"a": "x"}, {"a": "y"}, "a"),
        ({"a": [1, 2]}, {"a": [1]}, "a"),
        ({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]}, None),
        ({"a": [{"x": 1}]}, {"a": [{"x": 3}]}, "a[0].x"),
        ({"a": "s"}, {"a": {"k": 1}}, "a"),
    ],
)
def test_first_difference(live: Any, desired: Any, diff: str | None) -> None:
    assert plan.first_difference(live, desired) == diff


def test_with_owner_same_namespace_only() -> None:
    owner = plan.Owner("checkout-operator.io/v1alpha1", "CheckoutRegion", "eu", "uid-1", "checkout")
    owned = plan.with_owner(deployment(), owner)
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "checkout-operator.io/v1alpha1",
            "kind": "CheckoutRegion",
            "name": "eu",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    # the input is not changed, and re-owning does not duplicate the reference
    assert "ownerReferences" not in deployment()["metadata"]
    assert (
        plan.with_owner(owned, owner)["metadata"]["ownerReferences"]
        == owned["metadata"]["ownerReferences"]
    )
    elsewhere = deployment()
    elsewhere["metadata"]["namespace"] = "other"
    assert "ownerReferences" not in plan.with_owner(elsewhere, owner)["metadata"]
    assert plan.with_owner(deployment(), None) == deployment()


def test_child_kinds_union_desired_version_wins() -> None:
    known = [("v1", "ConfigMap"), ("autoscaling/v1", "HorizontalPodAutoscaler")]
    desired = [
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}},
    ]
    assert plan.child_kinds(desired, known) == (
        ("apps/v1", "Deployment"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("v1", "ConfigMap"),
    )
