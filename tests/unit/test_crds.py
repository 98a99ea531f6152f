"""The CRDs: generated from the models, checked in up to date, structural, self-describing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import example_data as helpers
import kubernetes_validate
import pytest
import yaml

from checkout_contract import config as region_config
from checkout_operator.api import checkoutregion, crd, meta
from checkout_operator.cli import main as cli_main

CRD_DIR = helpers.ROOT / "crds"
ALLOWED_KEYS = {
    "type", "description", "properties", "items", "required", "enum", "pattern", "minLength",
    "maxLength", "minimum", "maximum", "minItems", "maxItems", "default", "format",
    "additionalProperties", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
}  # fmt: skip


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


def _schema(info: crd.KindInfo) -> dict[str, Any]:
    return crd.crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_checked_in_crds_are_up_to_date(tmp_path: Path) -> None:
    assert cli_main.main(["crds", "--output-dir", str(tmp_path)]) == 0
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in CRD_DIR.iterdir())
    for name in generated:
        assert (tmp_path / name).read_text() == (CRD_DIR / name).read_text(), (
            f"crds/{name} is out of date with the API models: run `make crds`"
        )


def test_crds_command_prints_both_to_stdout() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "checkout_operator.cli.main", "crds"],
        capture_output=True,
        text=True,
        check=True,
    )
    docs = list(yaml.safe_load_all(proc.stdout))
    assert [d["spec"]["names"]["kind"] for d in docs] == ["CheckoutRegion", "PSPRoute"]


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_every_field_has_a_description_and_only_structural_keys(info: crd.KindInfo) -> None:
    for path, node in _walk(_schema(info)):
        if path == ".metadata":
            # a real apiserver allows nothing but `type: object` here (not even a description)
            assert node == {"type": "object"}
            continue
        assert node.get("description"), f"{info.kind}{path} has no description"
        assert "type" in node, f"{info.kind}{path} has no type"
        assert set(node) <= ALLOWED_KEYS, (path, set(node) - ALLOWED_KEYS)
        assert not ({"properties", "additionalProperties"} <= set(node)), path


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_crd_metadata(info: crd.KindInfo) -> None:
    doc = crd.crd(info)
    spec = doc["spec"]
    assert doc["metadata"]["name"] == f"{info.plural}.checkout-operator.io"
    assert spec["group"] == meta.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["categories"] == ["checkout"]
    assert spec["names"]["shortNames"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Ready", "Age"} <= columns
    schema = version["schema"]["openAPIV3Schema"]
    assert {"status", "spec"} <= set(schema["properties"])
    assert "observedGeneration" in schema["properties"]["status"]["properties"]


def test_cel_rules_are_declared_where_the_models_say() -> None:
    schema = _schema(crd.KINDS[0])
    spec = schema["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("failover.targets" in r for r in rules)
    assert spec["properties"]["region"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    probe = spec["properties"]["healthProbe"]
    assert probe["properties"]["failureThreshold"]["minimum"] == 1
    assert probe["properties"]["successThreshold"]["minimum"] == 1


def test_services_spec_lists_exactly_the_service_names() -> None:
    fields = set(checkoutregion.ServicesSpec.model_fields) - {"image", "image_pull_policy"}
    assert fields == set(region_config.SERVICE_NAMES)


def test_defaults_in_the_crd_equal_the_model_defaults() -> None:
    spec = _schema(crd.KINDS[0])["properties"]["spec"]["properties"]
    assert spec["healthProbe"]["default"] == checkoutregion.HealthProbe().model_dump(by_alias=True)
    assert spec["failover"]["properties"]["writeLeaseSeconds"]["default"] == 15


@pytest.mark.parametrize("info", crd.KINDS, ids=lambda i: i.kind)
def test_crd_is_a_valid_apiextensions_v1_object(info: crd.KindInfo) -> None:
    kubernetes_validate.validate(crd.crd(info), "1.34.0", strict=True)
