"""The management control plane: the operator's chart, the operator process, the demo fleet.

kube-apiserver + etcd + kube-controller-manager + kwok: kwok stands in for kubelets, so the
Deployments the operator creates become Available but no container runs. The demo plays the
kubelet itself (see :mod:`checkout_demo.kubelet`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from checkout_contract import lease, timeutil
from checkout_demo.infra import stop_popen, wait_http
from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_stack import paths
from checkout_stack.components.kube import ControlPlane
from checkout_stack.errors import StackError
from checkout_stack.proc import free_port

T = TypeVar("T")

REPO = paths.REPO
CHART = REPO / "charts" / "checkout-operator"
FLEET_DIR = Path(__file__).resolve().parent / "fleet"
NAMESPACE = "checkout-demo"
OPERATOR_NAMESPACE = "checkout-system"
RELEASE = "checkout-operator"
SIM_PLACEHOLDER = "http://127.0.0.1:1/psp-sim"
"""In the fleet's PSPRoutes until the demo knows its simulator's URL (a loopback address: the
API takes plain http only there; port 1 refuses, so an endpoint left unreplaced fails loudly)."""
GROUP = "checkout-operator.io"
VERSION = "v1alpha1"
KUBECONFIG_SECRET = "demo-kubeconfig"  # noqa: S105 (a Secret's name)
LEASE_KUBECONFIG_SECRET = "demo-lease-kubeconfig"  # noqa: S105 (a Secret's name)
"""In each region's namespace: a kubeconfig for the management cluster, for the services'
market write Leases (the fleet's ``spec.remoteCluster.leaseKubeconfigSecretRef`` names it; the
operator renders the lease env and the mount from it)."""


def region_namespace(region: str) -> str:
    return f"region-{region}"


@dataclass
class Fleet:
    regions: list[dict[str, Any]]
    routes: list[dict[str, Any]]

    @property
    def names(self) -> list[str]:
        return [r["spec"]["region"] for r in self.regions]

    def region(self, name: str) -> dict[str, Any]:
        return next(r for r in self.regions if r["spec"]["region"] == name)

    def home_markets(self, name: str) -> list[str]:
        return [m["country"] for m in self.region(name)["spec"].get("homeMarkets", [])]

    def failover_floor_seconds(self, name: str) -> float:
        """The least time a correct operator may take to give a killed region's markets a new
        writer's lease, in the worst phase of the probes: ``failureThreshold`` probes (the first
        one can come up to a period after the fault), and never before the old lease expired
        (at most ``writeLeaseSeconds`` after the fault: it was renewed before it)."""
        spec = self.region(name)["spec"]
        probe = spec.get("healthProbe") or {}
        period = float(probe.get("periodSeconds", 10))
        threshold = int(probe.get("failureThreshold", 3))
        lease = float((spec.get("failover") or {}).get("writeLeaseSeconds", 15))
        return max(period * threshold, lease)

    def providers(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for route in self.routes:
            for p in route["spec"]["providers"]:
                seen.setdefault(p["name"], p)
        return list(seen.values())


def load_fleet(directory: Path = FLEET_DIR) -> Fleet:
    regions: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc["kind"] == "CheckoutRegion":
                regions.append(doc)
            elif doc["kind"] == "PSPRoute":
                routes.append(doc)
    if not regions:
        raise StackError(
            "demo", f"no CheckoutRegion in {directory}", fix="restore hack/checkout_demo/fleet/"
        )
    return Fleet(regions, routes)


def with_local_addresses(fleet: Fleet, entries: dict[str, str], sim_url: str) -> Fleet:
    """The fleet as the demo applies it: each region's gatewayUrl is its local edge, every
    PSP endpoint points at the local simulator."""
    regions = copy.deepcopy(fleet.regions)
    for r in regions:
        r["spec"]["gatewayUrl"] = entries[r["spec"]["region"]]
    routes = copy.deepcopy(fleet.routes)
    for route in routes:
        for p in route["spec"]["providers"]:
            p["endpoint"] = p["endpoint"].replace(SIM_PLACEHOLDER, sim_url)
    return Fleet(regions, routes)


class Api:
    """The demo's view of the management apiserver (admin credentials; reads are cheap), through
    the project's one client (:mod:`checkout_kube`): the demo is synchronous (threads), so the
    client runs on an event loop of its own thread and every call waits for its answer."""

    def __init__(self, plane: ControlPlane, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo-api", daemon=True)
        self._thread.start()
        creds = kconfig.from_kubeconfig_file(plane.kubeconfig)
        self.kube = kclient.KubeClient(
            creds, field_manager="checkout-demo", timeout=timeout, name="management"
        )

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result(self.timeout * 3)

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        return self._run(self.kube.get_or_none(api_version, kind, name, namespace))

    def configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self.get("v1", "ConfigMap", name, namespace)
        return None if cm is None else dict(cm.get("data") or {})

    def configmaps(self, namespace: str) -> dict[str, dict[str, str]]:
        """Every ConfigMap of a namespace, name -> data, in one list served from the
        apiserver's watch cache (``resourceVersion=0``: no etcd read). The demo polls twice a
        second; one GET per ConfigMap per pod cost the apiserver a tenth of a core."""
        items = self._run(self.kube.list("v1", "ConfigMap", namespace, resource_version="0"))
        return {cm["metadata"]["name"]: dict(cm.get("data") or {}) for cm in items}

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        s = self.get("v1", "Secret", name, namespace)
        if s is None:
            raise StackError(
                "demo",
                f"Secret {namespace}/{name} is missing",
                fix=(
                    "the demo creates it before the operator starts: "
                    "rerun `make demo` (it starts from an empty cluster)"
                ),
            )
        return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}

    def deployments(self, namespace: str) -> list[dict[str, Any]]:
        return self._run(self.kube.list("apps/v1", "Deployment", namespace))

    def lease_acquired_at(self, fleet: str, market: str) -> tuple[str, float] | None:
        """(holder, UTC epoch seconds) of a market's write Lease: when the operator gave it to
        its holder (``spec.acquireTime``, written in the promoting compare-and-swap)."""
        body = self.get(lease.API_VERSION, "Lease", lease.lease_name(fleet, market), NAMESPACE)
        spec = (body or {}).get("spec") or {}
        acquired = timeutil.parse_time(spec.get("acquireTime"))
        if acquired is None:
            return None
        return str(spec.get("holderIdentity") or ""), acquired

    def regions(self) -> list[dict[str, Any]]:
        return self._run(
            self.kube.list(f"{GROUP}/{VERSION}", "CheckoutRegion", NAMESPACE, resource_version="0")
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.kube.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


def secret_doc(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def apply(plane: ControlPlane, docs: list[dict[str, Any]]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": docs}
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(items))


def helm_install(plane: ControlPlane, log: Path) -> None:
    """The operator's chart: CRDs, ServiceAccount, RBAC, Deployment (kwok marks it Available;
    the operator itself runs as a local process under the chart's ServiceAccount)."""
    argv = [
        str(paths.helm_bin()), "--kubeconfig", str(plane.kubeconfig),
        "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
        "--set", "watch.allNamespaces=false", "--set", f"watch.namespaces={{{NAMESPACE}}}",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise StackError(
            "helm", f"helm install failed: {done.stderr.strip()}", fix="see the log", log=log
        )
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        f"crd/checkoutregions.{GROUP}", f"crd/psproutes.{GROUP}",
    )  # fmt: skip


def service_account_kubeconfig(
    plane: ControlPlane, path: Path, sa: str = RELEASE, namespace: str = OPERATOR_NAMESPACE
) -> Path:
    """A kubeconfig with a TokenRequest token of ServiceAccount ``namespace/sa`` (default:
    the chart's), inline credentials only (it may go into a Secret)."""
    token = plane.kubectl("create", "token", sa, "-n", namespace, "--duration=2h").stdout.strip()
    admin = json.loads(plane.kubeconfig.read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "demo", "cluster": {"server": plane.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "demo", "user": "operator"}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


LEASE_KEEPER = "demo-lease-keeper"
"""The identity of the regions' services on the lease store: the rights of the rendered
``checkout-leases`` Role, nothing more (not the admin credential)."""


def lease_keeper_kubeconfig(plane: ControlPlane, path: Path) -> Path:
    """A ServiceAccount in the fleet's namespace that may list/watch the Leases and get/patch
    them (no create, update, delete), and a kubeconfig with a token of it."""
    meta = {"name": LEASE_KEEPER, "namespace": NAMESPACE}
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEASE_KEEPER}
    subject = {"kind": "ServiceAccount", **meta}
    rule = {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["list", "watch", "get", "patch"],
    }
    apply(
        plane,
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
             "rules": [rule]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": meta, "roleRef": ref, "subjects": [subject]},
        ],
    )  # fmt: skip
    return service_account_kubeconfig(plane, path, LEASE_KEEPER, NAMESPACE)


@dataclass
class OperatorProc:
    proc: subprocess.Popen[bytes]
    log: Path
    health_url: str

    def stop(self) -> None:
        stop_popen(self.proc, timeout=20)


def start_operator(kubeconfig: Path, log: Path) -> OperatorProc:
    metrics, health = free_port(), free_port()
    exe = Path(sys.executable).parent / "checkout-operator"
    argv = [
        str(exe), "run", "--namespace", NAMESPACE, "--kubeconfig", str(kubeconfig),
        "--metrics-port", str(metrics), "--health-port", str(health), "--drift-interval", "20",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )  # fmt: skip
    op = OperatorProc(proc, log, f"http://127.0.0.1:{health}/healthz")
    wait_http(op.health_url, proc, log, timeout=90)
    return op


def wait_ready(api: Api, names: list[str], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        regions = {r["spec"]["region"]: r for r in api.regions()}
        last = {}
        for name in names:
            r = regions.get(name) or {}
            st = r.get("status") or {}
            gen = (r.get("metadata") or {}).get("generation")
            ok = st.get("phase") == "Ready" and st.get("observedGeneration") == gen
            last[name] = "Ready" if ok else str(st.get("phase") or "no status")
        if all(v == "Ready" for v in last.values()):
            return
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise StackError(
        "operator", f"regions not Ready after {timeout:.0f} s: {last}", log=log, fix=tail
    )


def new_workdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="checkout-demo-"))
    d.chmod(0o755)  # postgres runs as its own user when we are root
    return d
