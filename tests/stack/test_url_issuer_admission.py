"""Issue 18 at a real kube-apiserver: the generated CRDs refuse a region without the gateway's
issuer or audience, and a URL field that is plain http off loopback or carries user
information, naming the field; https and loopback http are admitted."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from checkout_stack.components.kube import ControlPlane

from . import operator_support as sup

pytestmark = pytest.mark.stack


def _dry_run(kube: ControlPlane, doc: dict[str, Any]) -> tuple[int, str]:
    done = kube.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc), check=False)
    return done.returncode, done.stderr


def _region() -> dict[str, Any]:
    doc = sup.example("eu-west-1")
    doc["metadata"]["namespace"] = "default"
    return doc


def _route() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(
        (sup.ROOT / "examples/psproutes/eu-cards.yaml").read_text()
    )
    doc["metadata"]["namespace"] = "default"
    return doc


def test_the_apiserver_requires_the_gateway_issuer_and_audience(kube: ControlPlane) -> None:
    sup.install_crds(kube)
    assert _dry_run(kube, _region()) == (0, "")
    for field in ("issuer", "audience"):
        doc = _region()
        del doc["spec"]["edge"]["gateway"][field]
        code, err = _dry_run(kube, doc)
        assert code != 0
        assert f"spec.edge.gateway.{field}" in err, err
        assert "does not start without" in err, err
    doc = _region()
    del doc["spec"]["edge"]
    code, err = _dry_run(kube, doc)
    assert code != 0
    assert "spec.edge.gateway.issuer" in err, err


def test_the_apiserver_requires_the_gateway_url(kube: ControlPlane) -> None:
    """No default: the gateway Service speaks plain http, which the URL rule refuses."""
    sup.install_crds(kube)
    doc = _region()
    del doc["spec"]["gatewayUrl"]
    code, err = _dry_run(kube, doc)
    assert code != 0
    assert "spec.gatewayUrl: Required value" in err, err


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("route", ("spec", "providers", 0, "endpoint")),
        ("region", ("spec", "gatewayUrl")),
        ("region", ("spec", "tracing", "otlpEndpoint")),
        ("region", ("spec", "edge", "gateway", "jwksUrl")),
    ],
)
def test_the_apiserver_applies_the_url_rule(
    kube: ControlPlane, kind: str, path: tuple[str | int, ...]
) -> None:
    sup.install_crds(kube)

    def with_url(url: str) -> dict[str, Any]:
        doc = _route() if kind == "route" else _region()
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = url
        return doc

    for good in ("https://psp.example.com/v1", "http://127.0.0.1:12111", "http://[::1]:9"):
        code, err = _dry_run(kube, with_url(good))
        assert code == 0, (good, err)
    name = path[-1]
    assert isinstance(name, str)
    for bad in ("http://psp.example.com", "https://user:pw@psp.example.com", "http://10.0.0.1"):
        code, err = _dry_run(kube, with_url(bad))
        assert code != 0, bad
        assert name in err, err
