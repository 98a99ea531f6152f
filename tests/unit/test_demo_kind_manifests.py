"""Everything `hack/demo-kind.sh` applies (hack/checkout_demo/kind.py) passes the rules the
operator and the apiserver apply to it, offline: the CRDs' schema and CEL rules (the URL rule's
``pattern`` included), the operator's pydantic models and fleet checks, the kubeconfig
allow-list for kubeconfigs read from Secrets, and Kubernetes' own schemas for the built-in
objects; and every Secret, ConfigMap and key the rendered fleet references is created. The
script rendered in-cluster ``http://`` URLs that the URL rule refuses (issue 18), and had
drifted further (no gateway key, JWKS or lease kubeconfig): this keeps it from drifting again.
Kubernetes cannot run here (no Docker): what can be checked without it is checked here."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import crdcheck
import kubernetes_validate
import pytest
import yaml

from checkout_contract import urls
from checkout_demo import auth, cluster, kind
from checkout_kube import policy
from checkout_operator.api import crd, fleet, load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.psproute import PSPRoute
from checkout_operator.render import region

KUBE_VERSION = "1.34.0"
IMAGE = "checkout-operator:demo"
SCRIPT = cluster.FLEET_DIR.parents[1] / "demo-kind.sh"
_DATA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
KIND_KUBECONFIG = yaml.safe_dump(
    {  # the shape of `kind get kubeconfig --internal`
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kind-checkout-demo",
                "cluster": {
                    "server": "https://checkout-demo-control-plane:6443",
                    "certificate-authority-data": _DATA.decode(),
                },
            }
        ],
        "users": [
            {
                "name": "kind-checkout-demo",
                "user": {
                    "client-certificate-data": _DATA.decode(),
                    "client-key-data": _DATA.decode(),
                },
            }
        ],
        "contexts": [
            {
                "name": "kind-checkout-demo",
                "context": {"cluster": "kind-checkout-demo", "user": "kind-checkout-demo"},
            }
        ],
        "current-context": "kind-checkout-demo",
        "preferences": {},
    }
)
CRDS = crd.all_crds()
MANIFESTS = kind.manifests(IMAGE, KIND_KUBECONFIG, auth.Issuer().jwks())


def _of(kind_name: str) -> list[dict[str, Any]]:
    return [d for d in MANIFESTS if d["kind"] == kind_name]


def _id(doc: dict[str, Any]) -> str:
    meta = doc["metadata"]
    return f"{doc['kind']}/{meta.get('namespace', '-')}/{meta['name']}"


def _parsed() -> tuple[list[CheckoutRegion], list[PSPRoute]]:
    objs = [load.parse(d) for d in MANIFESTS if d["apiVersion"].startswith(cluster.GROUP)]
    regions = [o for o in objs if isinstance(o, CheckoutRegion)]
    routes = [o for o in objs if isinstance(o, PSPRoute)]
    return regions, routes


def test_the_script_applies_this_module_for_the_fleets_regions() -> None:
    text = SCRIPT.read_text()
    assert "-m checkout_demo.kind" in text
    found = re.search(r"^REGIONS=\(([^)]*)\)", text, re.MULTILINE)
    assert found is not None
    assert sorted(found[1].split()) == sorted(cluster.load_fleet().names)
    # no structured object is templated as YAML text in the script any more
    assert "<<YAML" not in text
    assert "create secret" not in text


@pytest.mark.parametrize(
    "doc", [d for d in MANIFESTS if d["apiVersion"].startswith(cluster.GROUP)], ids=_id
)
def test_custom_resources_pass_the_crd_schema_and_cel_and_pydantic(doc: dict[str, Any]) -> None:
    plural = "checkoutregions" if doc["kind"] == "CheckoutRegion" else "psproutes"
    assert crdcheck.problems(CRDS[f"{plural}.{cluster.GROUP}.yaml"], doc) == []
    load.parse(doc)  # the operator's model: raises naming the field


def test_every_url_keeps_the_url_rule() -> None:
    regions, routes = _parsed()
    assert len(regions) == len(cluster.load_fleet().regions)
    found = [r.spec.gateway_url for r in regions]
    found += [p.endpoint for route in routes for p in route.spec.providers]
    assert found
    for url in found:
        assert urls.problem(url) is None, url
        assert url.startswith("https://"), url  # loopback would be the pod itself in kind


def test_the_fleet_passes_the_operators_cross_object_checks() -> None:
    regions, routes = _parsed()
    items = [fleet.Located("demo-kind", o) for o in [*regions, *routes]]
    assert fleet.validate(items) == []
    # the probes' https URLs need a TLS terminator the script does not provide: no market moves
    assert {r.spec.failover.policy for r in regions} == {"Manual"}


@pytest.mark.parametrize(
    "doc", [d for d in MANIFESTS if not d["apiVersion"].startswith(cluster.GROUP)], ids=_id
)
def test_builtin_objects_are_valid_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def _secret(namespace: str, name: str) -> dict[str, str] | None:
    for doc in _of("Secret"):
        if (doc["metadata"]["namespace"], doc["metadata"]["name"]) == (namespace, name):
            return {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
    return None


def test_kubeconfigs_in_secrets_keep_to_the_allow_list() -> None:
    regions, _ = _parsed()
    for r in regions:
        remote = r.spec.remote_cluster
        assert remote is not None
        refs = [(r.metadata.namespace, remote.kubeconfig_secret_ref)]
        if remote.lease_kubeconfig_secret_ref is not None:
            refs.append((remote.namespace, remote.lease_kubeconfig_secret_ref))
        for namespace, ref in refs:
            data = _secret(str(namespace), ref.name)
            assert data is not None, (namespace, ref.name)
            policy.check(yaml.safe_load(data[ref.key]), ref.name)  # raises naming the field


def _references(obj: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key) of every Secret and ConfigMap a rendered pod template reads."""
    pod = obj["spec"]["template"]["spec"]
    for container in pod.get("containers", []):
        for var in container.get("env", []):
            source = var.get("valueFrom", {})
            if "secretKeyRef" in source:
                yield "Secret", source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                yield "ConfigMap", ref["name"], ref["key"]
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                yield "Secret", source["secret"]["name"], None
            if "configMap" in source:
                yield "ConfigMap", source["configMap"]["name"], None


def test_every_secret_and_configmap_the_rendered_fleet_reads_is_applied() -> None:
    regions, routes = _parsed()
    rendered = region.render_fleet(regions, routes)
    namespaces = {d["metadata"]["name"] for d in _of("Namespace")}
    have = {
        (d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]): set(d.get("data", {}))
        for d in [*MANIFESTS, *rendered]
        if d["kind"] in ("Secret", "ConfigMap")
    }
    checked = 0
    for obj in rendered:
        namespace = obj["metadata"].get("namespace")
        assert namespace in namespaces, _id(obj)
        if obj["kind"] != "Deployment":
            continue
        for kind_name, name, key in _references(obj):
            keys = have.get((kind_name, namespace, name))
            assert keys is not None, (_id(obj), kind_name, name)
            assert key is None or key in keys, (_id(obj), kind_name, name, key)
            checked += 1
    assert checked > 0
    # the gateways' principal key and the JWKS are among them (they were missing before)
    for r in regions:
        ns = r.spec.namespace_for(r.metadata.namespace)
        gateway = r.spec.edge.gateway
        assert ("Secret", ns, gateway.principal_key_secret_ref.name) in have
        assert ("ConfigMap", ns, gateway.jwks_config_map_ref.name) in have
