"""End to end: the real operator (`checkout-operator run`, kopf) against a real control plane.

A CheckoutRegion applied with kubectl becomes Ready (Deployments Available on kwok nodes);
hand-made drift is corrected by the child watches; a spec edit prunes what the render drops;
metrics and liveness answer; SIGTERM stops the operator cleanly.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from . import operator_support as sup

pytestmark = pytest.mark.stack
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(probe: Callable[[], T | None], within: float, what: str, log: pathlib.Path) -> T:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (subprocess.CalledProcessError, OSError, KeyError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    tail = log.read_text()[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out after {within} s waiting for {what} (last: {last!r})\n{tail}")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as resp:
        body: bytes = resp.read()
        return body.decode()


class Operator:
    def __init__(self, proc: subprocess.Popen[bytes], metrics: int, health: int, log: pathlib.Path):
        self.proc = proc
        self.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        self.health_url = f"http://127.0.0.1:{health}/healthz"
        self.log = log


@pytest.fixture
def namespace(kube: Any) -> Iterator[str]:
    sup.install_crds(kube)
    ns = sup.unique("e2e")
    kube.kubectl("create", "namespace", ns)
    yield ns
    sup.delete_namespace(kube, ns)


@pytest.fixture
def operator(kube: Any, namespace: str, tmp_path: pathlib.Path) -> Iterator[Operator]:
    metrics, health = free_port(), free_port()
    log = tmp_path / "operator.log"
    exe = pathlib.Path(sys.executable).parent / "checkout-operator"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "run",
                "--namespace",
                namespace,
                "--kubeconfig",
                str(kube.kubeconfig),
                "--metrics-port",
                str(metrics),
                "--health-port",
                str(health),
                "--drift-interval",
                "5",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        )
    op = Operator(proc, metrics, health, log)
    try:
        yield op
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def region_status(kube: Any, ns: str, name: str) -> dict[str, Any]:
    cr = sup.get(kube, "-n", ns, "checkoutregion", name)
    st: dict[str, Any] = cr.get("status") or {}
    st["_generation"] = cr["metadata"]["generation"]
    return st


def test_operator_end_to_end(kube: Any, namespace: str, operator: Operator) -> None:
    log = operator.log
    wait_for(lambda: http_get(operator.health_url) is not None, 60, "liveness endpoint", log)

    body = sup.local_region(namespace)
    sup.apply_yaml(kube, body)

    def ready(generation: int) -> dict[str, Any] | None:
        st = region_status(kube, namespace, "ap-south-1")
        ok = st.get("phase") == "Ready" and st.get("observedGeneration") == generation
        return st if ok and st["_generation"] == generation else None

    st = wait_for(lambda: ready(1), 180, "CheckoutRegion Ready at generation 1", log)
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    deps = sup.get(
        kube, "-n", namespace, "deployments", "-l", "checkout-operator.io/region=ap-south-1"
    )
    assert len(deps["items"]) == 6
    assert all(
        d["status"].get("availableReplicas", 0) >= d["spec"]["replicas"] for d in deps["items"]
    )

    # drift: a deleted Deployment comes back (watch-driven), a hand-edited replica count too
    old_uid = sup.get(kube, "-n", namespace, "deployment", "checkout-orders")["metadata"]["uid"]
    kube.kubectl("-n", namespace, "delete", "deployment", "checkout-orders", "--wait=false")
    kube.kubectl("-n", namespace, "scale", "deployment", "checkout-cart", "--replicas=5")

    def restored() -> bool:
        orders = sup.get(kube, "-n", namespace, "deployment", "checkout-orders")
        cart = sup.get(kube, "-n", namespace, "deployment", "checkout-cart")
        return orders["metadata"]["uid"] != old_uid and cart["spec"]["replicas"] == 2

    wait_for(restored, 60, "deleted Deployment re-created and replicas restored", log)

    # a spec edit: payments drops its HPA -> pruned; Ready again at generation 2
    edit = {"spec": {"services": {"payments": {"replicas": 3, "autoscaling": {"enabled": False}}}}}
    kube.kubectl(
        "-n", namespace, "patch", "checkoutregion", "ap-south-1", "--type=merge",
        "-p", json.dumps(edit),
    )  # fmt: skip

    def pruned() -> bool:
        hpas = sup.get(kube, "-n", namespace, "hpa", "-l", "checkout-operator.io/region=ap-south-1")
        names = {h["metadata"]["name"] for h in hpas["items"]}
        return "checkout-payments" not in names and len(names) == 4

    wait_for(pruned, 60, "the payments HPA pruned", log)
    wait_for(lambda: ready(2), 120, "CheckoutRegion Ready at generation 2", log)
    payments = sup.get(kube, "-n", namespace, "deployment", "checkout-payments")
    assert payments["spec"]["replicas"] == 3

    metrics = http_get(operator.metrics_url)
    for name in (
        "checkout_operator_reconcile_duration_seconds_count",
        "checkout_operator_objects_applied_total",
        "checkout_operator_objects_pruned_total",
        "checkout_operator_drift_corrections_total",
        "checkout_operator_api_writes_total",
    ):
        assert name in metrics, name
    assert (
        f'checkout_operator_region_ready{{name="ap-south-1",namespace="{namespace}"}} 1.0'
        in metrics
    )

    operator.proc.send_signal(signal.SIGTERM)
    assert operator.proc.wait(60) == 0
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
