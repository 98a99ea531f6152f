"""The images run for real (podman, runc): the operator from its image, as the chart deploys it,
and the checkout services from theirs, as the operator renders them.

- The operator container gets the chart's exact pod: securityContext (read-only root, UID/GID
  10001, every capability dropped, no privilege escalation), its args and its /tmp emptyDir,
  and as its only credential a token of the chart's ServiceAccount from the TokenRequest API,
  mounted where a projected service-account token goes. It reconciles the examples on the real
  apiserver through the chart's RBAC.
- Each service Deployment the operator created runs as a container in its own network
  namespace, with the Deployment's securityContext, volumes (ConfigMaps and Secrets read from
  the apiserver) and env; the readiness probe goes to the pod's port 8080 from outside the pod.
- A test fails if a container wrote to its root filesystem (``podman diff``) or logged a write
  refused by the read-only root.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from checkout_demo import auth
from checkout_stack import images, podrun
from checkout_stack.errors import StackError
from checkout_stack.pod import Pod, running

from . import operator_support as sup

pytestmark = pytest.mark.stack

# Each region in a namespace of its own (a region's children have fixed names). eu-west-1 and
# eu-central-1 name each other as failover targets and replication peers, which the operator
# resolves within one namespace: they need their own clusters (remoteCluster), as in the demo.
EXAMPLES = ("us-east-1", "ap-south-1")


def _image(target: str) -> str:
    try:
        return images.ensure_image(target)
    except StackError as exc:
        pytest.fail(exc.render(), pytrace=False)


@pytest.fixture(scope="module")
def operator_image() -> str:
    return _image("operator")


@pytest.fixture(scope="module")
def services_image() -> str:
    return _image("services")


def chart_objects(helm_bin: pathlib.Path, namespace: str, values: dict[str, Any]) -> list[Any]:
    done = subprocess.run(
        [str(helm_bin), "template", "checkout-operator", str(sup.ROOT / "charts/checkout-operator"),
         "--namespace", namespace, "--values", "-"],
        input=json.dumps(values), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def assert_no_writes(pod: Pod) -> None:
    assert pod.writes_outside_volumes() == [], f"{pod.name} wrote to its root filesystem"
    assert pod.read_only_errors() == [], f"{pod.name} tried to write outside its volumes"


class Fleet:
    """The operator container, running, and the app namespace it reconciles."""

    def __init__(self, pod: Pod, namespaces: dict[str, str], health_url: str) -> None:
        self.pod = pod
        self.namespaces = namespaces
        """Example region -> its namespace (a region's children have fixed names)."""
        self.health_url = health_url


@pytest.fixture(scope="module")
def fleet(
    kube: Any, helm_bin: pathlib.Path, operator_image: str, services_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:  # fmt: skip
    sup.install_crds(kube)
    op_ns = sup.unique("chart")
    namespaces = {name: sup.unique(name) for name in EXAMPLES}
    for ns in (op_ns, *namespaces.values()):
        kube.kubectl("create", "namespace", ns)
    repo, _, tag = operator_image.rpartition(":")
    metrics, health = sup.free_port(), sup.free_port()
    objs = chart_objects(
        helm_bin,
        op_ns,
        # host network: free ports instead of 9090/8081; one watched namespace (the chart's
        # other mode), so that no other test's CheckoutRegions meet a second operator
        {
            "image": {"repository": repo, "tag": tag},
            "metrics": {"port": metrics},
            "health": {"port": health},
            "driftInterval": 5,
            "watch": {"allNamespaces": False, "namespaces": sorted(namespaces.values())},
        },
    )
    (deployment,) = [o for o in objs if o["kind"] == "Deployment"]
    # the Deployment itself is not applied: kwok would only pretend to run it; its pod runs here
    rest = [o for o in objs if o["kind"] != "Deployment"]
    kube.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": rest}))  # fmt: skip
    runner = podrun.PodRunner(kube, op_ns, tmp_path_factory.mktemp("operator"), network="host")
    pod = runner.pod(f"checkout-operator-{op_ns}", deployment["spec"]["template"])
    with running([pod]):
        yield Fleet(pod, namespaces, f"http://127.0.0.1:{health}/healthz")
    for ns in (op_ns, *namespaces.values()):
        sup.delete_namespace(kube, ns)


def test_the_chart_pod_is_the_restricted_one(helm_bin: pathlib.Path) -> None:
    """What the container below runs with is what the chart renders (guards the test itself)."""
    (dep,) = [o for o in chart_objects(helm_bin, "x", {}) if o["kind"] == "Deployment"]
    spec = dep["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    sc = {**spec["securityContext"], **container["securityContext"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (10001, 10001, True)
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]


def test_operator_container_reconciles_the_examples_as_the_charts_service_account(
    kube: Any, fleet: Fleet, services_image: str
) -> None:
    pod = fleet.pod
    argv = " ".join(pod.argv)
    for flag in ("--read-only --read-only-tmpfs=false", "--user 10001:10001", "--cap-drop ALL",
                 "--security-opt no-new-privileges", f"{podrun.SA_DIR}:ro"):  # fmt: skip
        assert flag in argv, flag
    assert "KUBECONFIG" not in argv
    assert "admin.kubeconfig" not in argv
    sup.wait_for(lambda: sup.http_get(fleet.health_url), 90, "operator liveness", None)

    for name in EXAMPLES:
        body = sup.example(name)
        body["metadata"]["namespace"] = fleet.namespaces[name]
        body["spec"].pop("remoteCluster", None)
        body["spec"]["services"]["image"] = services_image
        body["spec"]["services"]["imagePullPolicy"] = "Never"
        # the issuer and audience of this test's tokens (the API requires both: api/edge.py)
        gateway = body["spec"].setdefault("edge", {}).setdefault("gateway", {})
        gateway.update({"issuer": "https://issuer.checkout.test", "audience": "checkout"})
        sup.apply_yaml(kube, body)

    def regions() -> list[dict[str, Any]]:
        return [
            sup.get(kube, "-n", ns, "checkoutregion", name) for name, ns in fleet.namespaces.items()
        ]

    def all_ready() -> bool:
        crs = regions()
        return len(crs) == len(EXAMPLES) and all(
            (cr.get("status") or {}).get("phase") == "Ready"
            and cr["status"].get("observedGeneration") == cr["metadata"]["generation"]
            for cr in crs
        )

    try:
        sup.wait_for(all_ready, 240, "every example CheckoutRegion Ready", None)
    except AssertionError as exc:
        crs = regions()
        statuses = {cr["metadata"]["name"]: cr.get("status") for cr in crs}
        raise AssertionError(f"{exc}\n{json.dumps(statuses, indent=1)[-6000:]}\n"
                             f"operator log:\n{pod.logs()[-6000:]}") from exc  # fmt: skip
    images_used = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for ns in fleet.namespaces.values()
        for d in sup.get(kube, "-n", ns, "deployments")["items"]
    }
    assert images_used == {services_image}
    assert pod.running()
    assert "Traceback" not in pod.logs(), pod.logs()[-4000:]
    assert_no_writes(pod)


@pytest.fixture(scope="module")
def backing_secrets(
    kube: Any, fleet: Fleet, postgres: Any, redis: Any, kafka_clusters: Any, temporal: Any
) -> list[int]:
    """The dependency Secrets of region us-east-1 (the stack's servers); their ports."""
    kafka = kafka_clusters.get("containers")
    postgres.create_database("containers_us_east_1")
    values = {
        "us-east-1-postgres": {"url": postgres.dsn_for("containers_us_east_1")},
        "us-east-1-redis": {"url": redis.url},
        "us-east-1-kafka": {"bootstrap": kafka.bootstrap},
        "us-east-1-temporal": {"address": temporal.address},
    }
    # the key the gateway signs principals with (spec.edge.gateway's default Secret)
    values["checkout-gateway-key"] = {"key": secrets.token_hex(32)}
    for name, data in values.items():
        kube.kubectl("-n", fleet.namespaces["us-east-1"], "create", "secret", "generic", name,
                     *(f"--from-literal={k}={v}" for k, v in data.items()))  # fmt: skip
    # the gateway verifies bearer tokens against a JWKS the platform provides
    jwks = auth.Issuer().jwks()
    kube.kubectl("-n", fleet.namespaces["us-east-1"], "create", "configmap", auth.JWKS_CONFIGMAP,
                 f"--from-literal={auth.JWKS_KEY}={jwks}")  # fmt: skip
    return [postgres.port, redis.port, kafka.port, temporal.port]


def test_services_run_read_only_and_answer_their_readiness_probes(
    kube: Any, fleet: Fleet, backing_secrets: list[int], services_image: str,
    tmp_path: pathlib.Path,
) -> None:  # fmt: skip
    sup.wait_for(
        lambda: len(sup.get(kube, "-n", fleet.namespaces["us-east-1"], "deployments",
                            "-l", "checkout-operator.io/region=us-east-1")["items"]) >= 6,
        240, "us-east-1's Deployments", None,
    )  # fmt: skip
    deployments = sup.get(
        kube,
        "-n",
        fleet.namespaces["us-east-1"],
        "deployments",
        "-l",
        "checkout-operator.io/region=us-east-1",
    )["items"]
    runner = podrun.PodRunner(
        kube,
        fleet.namespaces["us-east-1"],
        tmp_path,
        network="private",
        forward_ports=backing_secrets,
    )
    pods = [
        runner.pod(
            f"{fleet.namespaces['us-east-1']}-{d['metadata']['name']}", d["spec"]["template"]
        )
        for d in deployments
    ]
    assert {p.argv[p.argv.index("--user") + 1] for p in pods} == {"10001:10001"}
    assert all("--read-only" in p.argv for p in pods)
    with running(pods):
        failures = []
        for pod in pods:
            try:
                pod.wait_ready(timeout=180)
            except StackError as exc:
                failures.append(exc.render())
        assert not failures, "\n\n".join(failures)
        for pod in pods:
            assert_no_writes(pod)
            assert "Traceback" not in pod.logs(), pod.logs()[-4000:]
