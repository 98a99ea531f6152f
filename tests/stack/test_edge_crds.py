"""The rendered edge routing (Gateway API HTTPRoute, external-dns DNSEndpoint) is accepted by a
real kube-apiserver that has those projects' CRDs installed (tests/data/crds, with their
upstream source and version), with strict field validation; a broken one is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkout_operator.render import command
from checkout_stack.components.kube import ControlPlane

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "data" / "crds"
EDGE_KINDS = {"HTTPRoute", "DNSEndpoint"}


def install_crds(kube: ControlPlane) -> None:
    files = sorted(CRDS.glob("*.yaml"))
    for f in files:
        kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(f))
    names = [f"crd/{yaml.safe_load(f.read_text())['metadata']['name']}" for f in files]
    kube.kubectl("wait", "--for", "condition=established", "--timeout=60s", *names)


def edge_objects(namespace: str) -> list[dict[str, Any]]:
    stream = command.render_paths([str(ROOT / "examples")])
    objects = [o for o in yaml.safe_load_all(stream) if o and o["kind"] in EDGE_KINDS]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    return objects


def dry_run(kube: ControlPlane, objects: list[dict[str, Any]]) -> Any:
    return kube.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "--server-side",
        "-f",
        "-",
        input="\n---\n".join(json.dumps(o) for o in objects),
        check=False,
    )


def test_rendered_edge_routing_is_accepted_by_the_apiserver(kube: ControlPlane) -> None:
    install_crds(kube)
    namespace = f"edge-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", namespace)
    try:
        objects = edge_objects(namespace)
        assert {o["kind"] for o in objects} == EDGE_KINDS
        done = dry_run(kube, objects)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("serverside-applied (server dry run)") == len(objects), done.stdout

        route = next(o for o in objects if o["kind"] == "HTTPRoute")
        bad_route = json.loads(json.dumps(route))
        del bad_route["spec"]["rules"][0]["backendRefs"][0]["port"]
        done = dry_run(kube, [bad_route])
        assert done.returncode != 0
        assert "Must have port for Service reference" in done.stderr, done.stderr

        dns = next(o for o in objects if o["kind"] == "DNSEndpoint")
        bad_dns = json.loads(json.dumps(dns))
        bad_dns["spec"]["endpoints"][0]["recordType"] = "BOGUS"
        done = dry_run(kube, [bad_dns])
        assert done.returncode != 0
        assert "recordType" in done.stderr, done.stderr

        typo = json.loads(json.dumps(dns))
        typo["spec"]["endpoints"][0]["recordTtl"] = 30
        done = dry_run(kube, [typo])
        assert done.returncode != 0
        assert "recordTtl" in done.stderr, done.stderr
    finally:
        kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
