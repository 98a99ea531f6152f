"""A region's Deployments run as real pods: the operator reconciles example region us-east-1 on a
control plane whose only node is a real kubelet (containerd, runc; no kwok), and:

- every service Deployment's pod is scheduled onto that node, gets an address of its own on the
  node's bridge (CNI) and becomes Ready by the kubelet's own readiness probe;
- one service reaches another through the address the operator rendered into the region
  ConfigMap (``http://checkout-pricing:8080``: CoreDNS, then the Service's ClusterIP through
  kube-proxy's iptables rules), from inside the orders container;
- the gateway Service's ClusterIP, exposed on the machine's loopback, answers from outside;
- a container killed with SIGKILL is restarted by the kubelet and Ready again.

The services reach the machine's PostgreSQL, Redis, Kafka and Temporal at the node's gateway
address (forwarded ports; Kafka advertises a listener there) and the apiserver, for their write
Leases, through the in-cluster ``kubernetes`` Service and their ServiceAccount tokens.
"""

from __future__ import annotations

import ipaddress
import json
import pathlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from checkout_demo import auth
from checkout_stack import images
from checkout_stack.components import node_net
from checkout_stack.components.kafka import KafkaCluster
from checkout_stack.components.kube import FAKE_NODE, ControlPlane
from checkout_stack.components.node import Node
from checkout_stack.errors import StackError

from . import operator_support as sup

pytestmark = pytest.mark.stack

REGION = "us-east-1"
SERVICES = ("cart", "gateway", "inventory", "orders", "payments", "pricing")
PROBE = (
    "import json, os, urllib.request\n"
    "config = json.load(open(os.environ['REGION_CONFIG_FILE']))\n"
    "url = config['endpoints']['pricing']\n"
    "with urllib.request.urlopen(url + '/health/ready', timeout=10) as resp:\n"
    "    print(url, resp.status)\n"
)
"""Run inside the orders container: the rendered address of pricing, and its answer."""


@dataclass
class Cluster:
    kube: ControlPlane
    node: Node
    namespace: str
    image: str


def _fail(exc: StackError) -> None:
    pytest.fail(exc.render(), pytrace=False)


@pytest.fixture(scope="module")
def cluster(
    postgres: Any, redis: Any, temporal: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A control plane of its own (no kwok: the real node is its only node), the real node, a
    Kafka with a listener for the pods, and the region's dependency Secrets."""
    try:
        image = images.ensure_image("services")
    except StackError as exc:
        _fail(exc)
    base = tmp_path_factory.mktemp("node-region")
    kube = ControlPlane("pods", base / "kube", with_kwok=False)
    kafka = KafkaCluster("pods", base / "kafka", pod_address=node_net.GATEWAY, nice=5)
    node: Node | None = None
    try:
        kube.start()
        kube.kubectl("delete", "node", FAKE_NODE)  # the bootstrap's kwok node: nobody runs it
        kafka.start()
        forwarded = (postgres.port, redis.port, kafka.pod_port, temporal.port)
        node = Node(kube, base / "node", taints=(), forward_ports=forwarded)
        node.start()
        node.import_archive(images.archive_path("services", image.rpartition(":")[2]))
        sup.install_crds(kube)
        ns = sup.unique("region")
        kube.kubectl("create", "namespace", ns)
        _dependencies(kube, ns, postgres, redis, kafka, temporal)
        yield Cluster(kube, node, ns, image)
    except StackError as exc:
        _fail(exc)
    finally:
        if node is not None:
            node.stop()
        kafka.stop()
        kube.stop()


def _dependencies(
    kube: ControlPlane, ns: str, postgres: Any, redis: Any, kafka: KafkaCluster, temporal: Any
) -> None:
    """The Secrets the region names, holding the addresses the pods reach (the node's gateway)."""
    postgres.create_database("node_us_east_1")
    values = {
        "us-east-1-postgres": {"url": node_net.pod_url(postgres.dsn_for("node_us_east_1"))},
        "us-east-1-redis": {"url": node_net.pod_url(redis.url)},
        "us-east-1-kafka": {"bootstrap": kafka.pod_bootstrap},
        "us-east-1-temporal": {"address": node_net.pod_url(temporal.address)},
        "checkout-gateway-key": {"key": secrets.token_hex(32)},
    }
    for name, data in values.items():
        kube.kubectl("-n", ns, "create", "secret", "generic", name,
                     *(f"--from-literal={k}={v}" for k, v in data.items()))  # fmt: skip
    kube.kubectl("-n", ns, "create", "configmap", auth.JWKS_CONFIGMAP,
                 f"--from-literal={auth.JWKS_KEY}={auth.Issuer().jwks()}")  # fmt: skip


def region_body(ns: str, image: str) -> dict[str, Any]:
    body = sup.example(REGION)
    body["metadata"]["namespace"] = ns
    body["spec"].pop("remoteCluster", None)  # children here, Leases through the pods' tokens
    services = body["spec"]["services"]
    services.update({"image": image, "imagePullPolicy": "Never"})
    for name in SERVICES:  # one pod each: 2 shared cores
        services[name] = {**services.get(name, {}), "replicas": 1,
                          "autoscaling": {"enabled": False}}  # fmt: skip
    gateway = body["spec"].setdefault("edge", {}).setdefault("gateway", {})
    gateway.update({"issuer": "https://issuer.checkout.test", "audience": "checkout"})
    return body


def _pods(kube: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    """component -> its (newest) pod."""
    items = sup.get(kube, "-n", ns, "pods")["items"]
    by = {}
    for pod in sorted(items, key=lambda p: p["metadata"]["creationTimestamp"]):
        labels = pod["metadata"].get("labels") or {}
        by[labels.get("app.kubernetes.io/component", pod["metadata"]["name"])] = pod
    return by


def _ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or ()}
    return conds.get("Ready") == "True"


def _diagnose(c: Cluster) -> str:
    pods = _pods(c.kube, c.namespace)
    lines = []
    for name, pod in pods.items():
        st = pod.get("status") or {}
        lines.append(f"{name}: {st.get('phase')} {json.dumps(st.get('containerStatuses'))[:600]}")
    return "\n".join(lines)


def test_region_deployments_run_as_real_pods(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    kube, ns, node = cluster.kube, cluster.namespace, cluster.node
    sup.apply_yaml(kube, region_body(ns, cluster.image))
    log = tmp_path / "operator.log"
    with sup.running_operator(kube.kubeconfig, ns, log):

        def all_ready() -> dict[str, dict[str, Any]] | None:
            pods = _pods(kube, ns)
            done = set(SERVICES) <= set(pods) and all(_ready(pods[s]) for s in SERVICES)
            return pods if done else None

        try:
            pods = sup.wait_for(all_ready, 420, "every service pod Ready (kubelet probes)", log)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnose(cluster)}") from exc
        for name in SERVICES:
            pod = pods[name]
            assert pod["spec"]["nodeName"] == node.name, name
            ip = ipaddress.ip_address(pod["status"]["podIP"])
            assert ip in ipaddress.ip_network(node_net.POD_CIDR), (name, ip)
        assert len({p["status"]["podIP"] for p in pods.values()}) == len(pods)

        # orders -> pricing at the rendered address: cluster DNS, ClusterIP, kube-proxy
        orders = pods["orders"]["status"]["containerStatuses"][0]["containerID"]
        cid = orders.removeprefix("containerd://")
        done = node.ctr("tasks", "exec", "--exec-id", "probe", cid, "python3", "-c", PROBE)
        assert done.stdout.split() == ["http://checkout-pricing:8080", "200"], done.stdout

        # the region's entry from the machine (as the demo's edges and load need it): the
        # gateway Service's ClusterIP exposed on the machine's loopback
        svc = sup.get(kube, "-n", ns, "service", "checkout-gateway")["spec"]
        entry = node.expose(svc["clusterIP"], svc["ports"][0]["port"])
        assert sup.http_get(f"http://127.0.0.1:{entry}/health/ready")

        # the kubelet restarts a killed container (a kill-region GameDay kills containers)
        pricing = pods["pricing"]["status"]["containerStatuses"][0]
        node.ctr("tasks", "kill", "--signal", "SIGKILL",
                 pricing["containerID"].removeprefix("containerd://"))  # fmt: skip

        def restarted() -> dict[str, Any] | None:
            pod = _pods(kube, ns)["pricing"]
            st = pod["status"]["containerStatuses"][0]
            return pod if _ready(pod) and st["restartCount"] > pricing["restartCount"] else None

        pod = sup.wait_for(restarted, 180, "pricing restarted by the kubelet and Ready", log)
        assert pod["status"]["containerStatuses"][0]["containerID"] != pricing["containerID"]
        assert pod["metadata"]["uid"] == pods["pricing"]["metadata"]["uid"]  # same pod
