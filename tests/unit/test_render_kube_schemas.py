"""Every rendered built-in object validates against the official Kubernetes JSON schemas in
strict mode (kubernetes-validate, offline, Kubernetes 1.34); the Strimzi resource against a
schema of the fields we use."""

from __future__ import annotations

import json
from typing import Any

import example_data as helpers
import jsonschema
import kubernetes_validate
import pytest

import crd_schemas
from checkout_operator.render import region

KUBE_VERSION = "1.34.0"
STRIMZI_SCHEMA = json.loads(
    (helpers.ROOT / "tests" / "data" / "schemas" / "kafkamirrormaker2-v1.json").read_text()
)


def _objects() -> list[dict[str, Any]]:
    regions, routes = helpers.example_objects()
    return region.render_fleet(regions, routes)


OBJECTS = _objects()
THIRD_PARTY = {
    "kafka.strimzi.io/v1",
    "gateway.networking.k8s.io/v1",
    "externaldns.k8s.io/v1alpha1",
}
BUILTIN = [o for o in OBJECTS if o["apiVersion"] not in THIRD_PARTY]


def _id(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['labels']['checkout-operator.io/region']}/{obj['kind']}/{meta['name']}"


def test_every_kind_is_covered() -> None:
    kinds = {o["kind"] for o in OBJECTS}
    assert kinds == {
        "ConfigMap",
        "DNSEndpoint",
        "Deployment",
        "HTTPRoute",
        "HorizontalPodAutoscaler",
        "KafkaMirrorMaker2",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    }


@pytest.mark.parametrize("obj", BUILTIN, ids=_id)
def test_builtin_object_is_valid_kubernetes(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_strict_validation_would_catch_a_typo() -> None:
    deployment = next(o for o in BUILTIN if o["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


def test_strimzi_mirrormaker_matches_the_v1_schema() -> None:
    strimzi = [o for o in OBJECTS if o["kind"] == "KafkaMirrorMaker2"]
    assert strimzi, "the examples render one KafkaMirrorMaker2"
    for obj in strimzi:
        jsonschema.validate(obj, STRIMZI_SCHEMA)
    legacy = json.loads(json.dumps(strimzi[0]))
    legacy["spec"]["connectCluster"] = "eu-central-1"  # a v1beta2 field, gone in v1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(legacy, STRIMZI_SCHEMA)


CRDS = helpers.ROOT / "tests" / "data" / "crds"


@pytest.mark.parametrize(
    ("kind", "file", "version"),
    [
        ("HTTPRoute", "httproutes.gateway.networking.k8s.io.yaml", "v1"),
        ("DNSEndpoint", "dnsendpoints.externaldns.k8s.io.yaml", "v1alpha1"),
    ],
)
def test_edge_routing_matches_the_upstream_crd(kind: str, file: str, version: str) -> None:
    schema = crd_schemas.crd_schema(CRDS / file, version)
    objects = [o for o in OBJECTS if o["kind"] == kind]
    assert objects, f"the examples render a {kind}"
    for obj in objects:
        jsonschema.validate(obj, schema)
    typo = json.loads(json.dumps(objects[0]))
    first = typo["spec"]["rules"][0] if kind == "HTTPRoute" else typo["spec"]["endpoints"][0]
    first["weigth" if kind == "HTTPRoute" else "recordTtl"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(typo, schema)
