"""A real kubelet (built from the pinned k8s.io/kubernetes) with containerd and runc runs a pod of
the services image: scheduled by the scheduler, given its own network namespace and an address
on the node's bridge (CNI; its hostPort through the portmap plugin), its ConfigMap mounted (and
updated when the ConfigMap changes) and its readiness probed by the kubelet, restarted by the
kubelet when its container is killed.
"""

from __future__ import annotations

import ipaddress
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from checkout_stack import images
from checkout_stack.components import node_net
from checkout_stack.components.node import TAINT, Node
from checkout_stack.errors import StackError

from . import operator_support as sup

pytestmark = pytest.mark.stack
HOST_PORT = 18080
"""A hostPort: the node's network namespace is its own, so a fixed port cannot collide."""


@pytest.fixture(scope="module")
def services_image() -> str:
    try:
        return images.ensure_image("services")
    except StackError as exc:
        pytest.fail(exc.render(), pytrace=False)


@pytest.fixture(scope="module")
def node(
    kube: Any, services_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    real = Node(kube, tmp_path_factory.mktemp("node"))
    try:
        real.start()
        real.import_archive(images.archive_path("services", services_image.rpartition(":")[2]))
    except StackError as exc:
        real.stop()
        pytest.fail(exc.render(), pytrace=False)
    yield real
    real.stop()


def pod_body(namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "psp-sim", "namespace": namespace},
        "spec": {
            "automountServiceAccountToken": False,
            "nodeSelector": {"kubernetes.io/hostname": "node-0"},
            "tolerations": [{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "psp-sim",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": ["psp-sim", "--host", "0.0.0.0", "--port", "8080"],
                    # on the node's address (the CNI portmap plugin's DNAT)
                    "ports": [{"containerPort": 8080, "hostPort": HOST_PORT}],
                    # to the pod's own address, from the kubelet in the node's namespace
                    "readinessProbe": {
                        "httpGet": {"path": "/_sim/health", "port": 8080},
                        "periodSeconds": 2,
                    },
                    "securityContext": {
                        "readOnlyRootFilesystem": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [
                        {"name": "settings", "mountPath": "/etc/checkout-test", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "settings", "configMap": {"name": "node-test"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


def _status(kube: Any, ns: str) -> dict[str, Any]:
    status: dict[str, Any] = sup.get(kube, "-n", ns, "pod", "psp-sim").get("status") or {}
    return status


def _ready(kube: Any, ns: str) -> dict[str, Any] | None:
    st = _status(kube, ns)
    conds = {c["type"]: c["status"] for c in st.get("conditions") or ()}
    return st if conds.get("Ready") == "True" else None


def test_kubelet_runs_a_pod_of_the_services_image(
    kube: Any, node: Node, services_image: str, tmp_path: pathlib.Path
) -> None:
    ns = sup.unique("node")
    kube.kubectl("create", "namespace", ns)
    kube.kubectl("-n", ns, "create", "configmap", "node-test", "--from-literal=greeting=hello")
    sup.apply_yaml(kube, pod_body(ns, services_image))
    log = node.dir / "kubelet.log"
    st = sup.wait_for(lambda: _ready(kube, ns), 180, "pod Ready (kubelet readiness probe)", log)
    # its own network namespace, an address of the node's pod range (CNI bridge + host-local)
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(node_net.POD_CIDR), st
    assert st["hostIP"] == node_net.GATEWAY
    (container,) = st["containerStatuses"]
    assert container["imageID"], container
    cid = container["containerID"].removeprefix("containerd://")
    assert node.http_get(f"http://{st['podIP']}:8080/_sim/health")[0] == 200
    assert node.http_get(f"http://{node_net.GATEWAY}:{HOST_PORT}/_sim/health")[0] == 200

    # the ConfigMap is mounted, the root filesystem is read-only, the user is 10001
    script = (
        "import errno, os, pathlib\n"
        "text = pathlib.Path('/etc/checkout-test/greeting').read_text()\n"
        "print(text, os.getuid(), os.getgid())\n"
        "try:\n    open('/written', 'w')\n"
        "except OSError as e:\n    print(errno.errorcode[e.errno])\n"
    )
    done = node.ctr("tasks", "exec", "--exec-id", "check", cid, "python3", "-c", script)
    assert done.stdout.split() == ["hello", "10001", "10001", "EROFS"], done.stdout

    # a ConfigMap change reaches the mounted file (what the services' routing follows): how
    # long, with the node's syncFrequency of 10 s (printed: the real-pod demo's failover needs it)
    began = time.monotonic()
    kube.kubectl("-n", ns, "patch", "configmap", "node-test", "--type=merge",
                 "-p", json.dumps({"data": {"greeting": "changed"}}))  # fmt: skip

    def changed() -> bool:
        read = "print(open('/etc/checkout-test/greeting').read())"
        done = node.ctr("tasks", "exec", "--exec-id", "read", cid, "python3", "-c", read)
        return done.stdout.strip() == "changed"

    sup.wait_for(changed, 90, "the ConfigMap change in the mounted file", log)
    print(f"ConfigMap change visible in the pod after {time.monotonic() - began:.1f} s")

    # the kubelet restarts a killed container (as in a kill-region GameDay)
    node.ctr("tasks", "kill", "--signal", "SIGKILL", cid)

    def restarted() -> dict[str, Any] | None:
        st = _ready(kube, ns)
        return st if st and st["containerStatuses"][0]["restartCount"] >= 1 else None

    st = sup.wait_for(restarted, 180, "container restarted by the kubelet and Ready again", log)
    assert st["containerStatuses"][0]["containerID"] != container["containerID"]
    kube.kubectl("delete", "namespace", ns, "--wait=false")
    print(json.dumps(st["containerStatuses"][0]["lastState"]))
