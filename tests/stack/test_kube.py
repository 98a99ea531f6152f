"""The local Kubernetes control plane: CRDs, RBAC, Deployments on kwok nodes, GC."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from checkout_stack.components.kube import ControlPlane
from checkout_stack.pytest_plugin import KubeFactory

pytestmark = pytest.mark.stack

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.example.com
spec:
  group: smoke.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: default
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: registry.invalid/checkout/smoke:1
"""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def get_json(kube: ControlPlane, *args: str) -> Any:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def test_crd_and_custom_resource(kube: ControlPlane) -> None:
    kube.kubectl("apply", "-f", "-", input=CRD)
    kube.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.smoke.example.com", "--timeout=30s"
    )
    name = f"w-{uuid.uuid4().hex[:6]}"
    widget: Any = {
        "apiVersion": "smoke.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"size": 3},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(widget))
    stored = get_json(kube, "widget", name, "-n", "default")
    assert stored["spec"] == {"size": 3}
    # the structural schema is enforced by the real apiserver
    widget["metadata"]["name"] = f"{name}-bad"
    widget["spec"] = {"size": 0}
    bad = kube.kubectl("apply", "-f", "-", input=json.dumps(widget), check=False)
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr


def test_deployment_becomes_available_and_replicaset_is_garbage_collected(
    kube: ControlPlane,
) -> None:
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    kube.kubectl("apply", "-f", "-", input=DEPLOYMENT.format(name=name))
    kube.kubectl(
        "wait",
        "--for=condition=Available",
        f"deployment/{name}",
        "-n",
        "default",
        "--timeout=90s",
        timeout=120,
    )
    deployment = get_json(kube, "deployment", name, "-n", "default")
    assert deployment["status"]["readyReplicas"] == 2
    pods = get_json(kube, "pods", "-n", "default", "-l", f"app={name}")
    items = pods["items"]
    assert len(items) == 2
    for pod in items:
        assert pod["spec"]["nodeName"] == "kwok-node-0"
        assert pod["status"]["phase"] == "Running"
    replicasets = get_json(kube, "replicasets", "-n", "default", "-l", f"app={name}")["items"]
    assert len(replicasets) == 1
    rs_name = replicasets[0]["metadata"]["name"]

    kube.kubectl("delete", "deployment", name, "-n", "default", "--wait=false")

    def replicaset_gone() -> bool:
        done = kube.kubectl("get", "replicaset", rs_name, "-n", "default", check=False)
        return done.returncode != 0 and "NotFound" in done.stderr

    wait_for(f"garbage collection of ReplicaSet {rs_name}", replicaset_gone, timeout=60)


def test_restricted_user_is_forbidden_by_rbac(kube: ControlPlane) -> None:
    restricted = kube.restricted_kubeconfig
    allowed = kube.kubectl("get", "pods", "-n", "default", kubeconfig=restricted, check=False)
    assert allowed.returncode == 0, allowed.stderr
    for args in (
        ("get", "secrets", "-n", "default"),
        ("get", "pods", "-n", "kube-system"),
        ("create", "configmap", "nope", "-n", "default"),
    ):
        denied = kube.kubectl(*args, kubeconfig=restricted, check=False)
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()
        assert 'User "restricted-user"' in denied.stderr


def test_independent_control_planes(kube: ControlPlane, kube_factory: KubeFactory) -> None:
    remote = kube_factory("region-smoke")
    assert remote.server != kube.server
    name = f"only-here-{uuid.uuid4().hex[:6]}"
    remote.kubectl("create", "namespace", name)
    assert remote.kubectl("get", "namespace", name).returncode == 0
    missing = kube.kubectl("get", "namespace", name, check=False)
    assert "NotFound" in missing.stderr
    # each control plane has its own CA: the management admin is not trusted by the remote one
    cross = subprocess.run(
        [
            str(kube.kubectl_bin),
            "--kubeconfig",
            str(kube.kubeconfig),
            "--server",
            remote.server,
            "get",
            "namespaces",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert cross.returncode != 0
