"""A real kubelet (built from the pinned k8s.io/kubernetes) with containerd and runc runs a pod of
the services image: scheduled by the scheduler, its ConfigMap mounted and its readiness probed by
the kubelet, restarted by the kubelet when its container is killed.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from checkout_stack import images
from checkout_stack.components.node import TAINT, Node
from checkout_stack.errors import StackError

from . import operator_support as sup

pytestmark = pytest.mark.stack


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


def pod_body(namespace: str, image: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "psp-sim", "namespace": namespace},
        "spec": {
            "hostNetwork": True,
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
                    "args": ["psp-sim", "--host", "127.0.0.1", "--port", str(port)],
                    "readinessProbe": {
                        # the node's address is the machine's; the pod listens on loopback only
                        "httpGet": {"host": "127.0.0.1", "path": "/_sim/health", "port": port},
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
    port = sup.free_port()
    sup.apply_yaml(kube, pod_body(ns, services_image, port))
    log = node.dir / "kubelet.log"
    st = sup.wait_for(lambda: _ready(kube, ns), 180, "pod Ready (kubelet readiness probe)", log)
    assert st["podIP"] == st["hostIP"]  # host network
    (container,) = st["containerStatuses"]
    assert container["imageID"], container
    cid = container["containerID"].removeprefix("containerd://")
    assert sup.http_get(f"http://127.0.0.1:{port}/_sim/health")

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

    # the kubelet restarts a killed container (as in a kill-region GameDay)
    node.ctr("tasks", "kill", "--signal", "SIGKILL", cid)

    def restarted() -> dict[str, Any] | None:
        st = _ready(kube, ns)
        return st if st and st["containerStatuses"][0]["restartCount"] >= 1 else None

    st = sup.wait_for(restarted, 180, "container restarted by the kubelet and Ready again", log)
    assert st["containerStatuses"][0]["containerID"] != container["containerID"]
    kube.kubectl("delete", "namespace", ns, "--wait=false")
    print(json.dumps(st["containerStatuses"][0]["lastState"]))
