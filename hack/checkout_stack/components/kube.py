"""A real Kubernetes control plane: etcd, kube-apiserver (TLS, RBAC, admission),
kube-controller-manager, kube-scheduler, and kwok's simulated node, all on loopback."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from checkout_stack import certs, paths
from checkout_stack.components import kube_flags as flags
from checkout_stack.errors import MissingTool, StackError
from checkout_stack.proc import Proc, free_port, http_ok, https_ok

COMPONENT = "kube"
FIX_BUILD = (
    "run `hack/stack build` (builds the control plane into the cache) or set KUBEBUILDER_ASSETS"
)
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
FAKE_NODE = "kwok-node-0"
RESTRICTED_USER = "restricted-user"
RESTRICTED_GROUP = "checkout:restricted"
LEAN_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "node-lifecycle-controller",
)
"""kube-controller-manager's controllers in a lean control plane: what takes a Deployment to
Available (with the scheduler and kwok), gives a new namespace its default ServiceAccount and
lifts the ``node.kubernetes.io/not-ready`` taint admission puts on a new node once it is Ready."""

_BOOTSTRAP = """
apiVersion: v1
kind: Node
metadata:
  name: {node}
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: {node}
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
spec: {{}}
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110"}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: restricted-user-view
  namespace: default
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: {user}
"""


def _kubeconfig(path: Path, name: str, server: str, ca: bytes, client: certs.Pair) -> Path:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": path.stem,
                "user": {
                    "client-certificate-data": b64(client.cert.read_bytes()),
                    "client-key-data": b64(client.key.read_bytes()),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": path.stem}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class ControlPlane:
    """One independent control plane with its own etcd, ports, certificates and folder."""

    name: str
    dir: Path
    with_kwok: bool = True
    port: int = 0
    nice: int = 0
    """Run every process of the control plane under ``nice -n`` (see :class:`Proc`)."""
    lean: bool = False
    """Only :data:`LEAN_CONTROLLERS` in kube-controller-manager (no garbage collector, no
    namespace, quota, HPA, ... controllers): for tests that start many control planes."""
    procs: list[Proc] = field(default_factory=list)
    kubeconfig: Path = field(init=False)
    restricted_kubeconfig: Path = field(init=False)
    ca: certs.CA | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.kubeconfig = self.dir / "admin.kubeconfig"
        self.restricted_kubeconfig = self.dir / "restricted.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubectl_bin(self) -> Path:
        return paths.k8s_binary("kubectl")

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane (admin unless `kubeconfig` is given)."""
        done = subprocess.run(
            [str(self.kubectl_bin), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise StackError(
                f"{COMPONENT}[{self.name}]",
                f"kubectl {' '.join(args)} exited with {done.returncode}: {done.stderr.strip()}",
                fix="check the arguments; control-plane logs are in " + str(self.dir),
            )
        return done

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        binaries = {
            name: paths.k8s_binary(name)
            for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
        }
        kwok = paths.kwok_bin()
        if self.with_kwok and not kwok.exists():
            raise MissingTool(f"{COMPONENT}[{self.name}]", f"kwok ({kwok})", FIX_BUILD)
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = self.dir / "pki"
        ca = self.ca = certs.CA(pki, self.name)
        sa = certs.service_account_keys(pki)
        serving = ca.issue(
            "apiserver",
            "kube-apiserver",
            server=True,
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", SERVICE_IP),
        )
        self.port = self.port or free_port()
        ca_pem = ca.cert_pem
        admin = ca.issue("admin", "admin", orgs=("system:masters",), client=True)
        _kubeconfig(self.kubeconfig, self.name, self.server, ca_pem, admin)
        _kubeconfig(
            self.restricted_kubeconfig,
            self.name,
            self.server,
            ca_pem,
            ca.issue("restricted", RESTRICTED_USER, orgs=(RESTRICTED_GROUP,), client=True),
        )
        kcm_kc = _kubeconfig(
            self.dir / "kcm.kubeconfig",
            self.name,
            self.server,
            ca_pem,
            ca.issue("kcm", "system:kube-controller-manager", client=True),
        )
        sched_kc = _kubeconfig(
            self.dir / "scheduler.kubeconfig",
            self.name,
            self.server,
            ca_pem,
            ca.issue("scheduler", "system:kube-scheduler", client=True),
        )
        kwok_kc = _kubeconfig(
            self.dir / "kwok.kubeconfig",
            self.name,
            self.server,
            ca_pem,
            ca.issue("kwok", "kwok", orgs=("system:masters",), client=True),
        )

        # etcd
        etcd_port, peer_port = free_port(), free_port()
        etcd = self._proc(
            "etcd", flags.etcd(binaries["etcd"], self.dir / "etcd", etcd_port, peer_port)
        )
        etcd.wait_ready(
            lambda: http_ok(f"http://127.0.0.1:{etcd_port}/health"), timeout=30, what="healthy"
        )

        # kube-apiserver
        apiserver = self._proc(
            "kube-apiserver",
            flags.apiserver(
                binaries["kube-apiserver"],
                etcd_port,
                self.port,
                pki,
                serving,
                ca.pair,
                sa,
                SERVICE_CIDR,
            ),
        )
        ctx = ssl.create_default_context(cafile=str(ca.pair.cert))
        ctx.load_cert_chain(str(admin.cert), str(admin.key))
        apiserver.wait_ready(
            lambda: https_ok(f"{self.server}/readyz", ctx), timeout=90, what="ready (/readyz)"
        )

        # controller-manager, scheduler, kwok: in parallel
        kcm_port, sched_port = free_port(), free_port()
        kcm = self._proc(
            "kube-controller-manager",
            flags.controller_manager(
                binaries["kube-controller-manager"],
                kcm_kc,
                kcm_port,
                pki,
                sa,
                ca.pair,
                self.name,
                SERVICE_CIDR,
                LEAN_CONTROLLERS if self.lean else None,
            ),
        )
        sched = self._proc(
            "kube-scheduler", flags.scheduler(binaries["kube-scheduler"], sched_kc, sched_port, pki)
        )
        if self.with_kwok:
            self._proc("kwok", flags.kwok(kwok, kwok_kc, free_port()))
        kcm.wait_ready(
            lambda: https_ok(f"https://127.0.0.1:{kcm_port}/healthz"), timeout=60, what="healthy"
        )
        sched.wait_ready(
            lambda: https_ok(f"https://127.0.0.1:{sched_port}/healthz"), timeout=60, what="healthy"
        )
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=_BOOTSTRAP.format(node=FAKE_NODE, user=RESTRICTED_USER),
        )
        if self.with_kwok:
            self._wait_node_ready()
        return self

    # -- for tests of clients: new credentials, the API server down and up ---------------------

    def issue_kubeconfig(self, stem: str, user: str, orgs: tuple[str, ...] = ()) -> Path:
        """A new kubeconfig (https, CA and a new client certificate inline) for ``user``."""
        if self.ca is None:
            raise StackError(f"{COMPONENT}[{self.name}]", "not started", fix="start it first")
        pair = self.ca.issue(stem, user, orgs=orgs, client=True)
        return _kubeconfig(
            self.dir / f"{stem}.kubeconfig", self.name, self.server, self.ca.cert_pem, pair
        )

    @property
    def _apiserver(self) -> Proc:
        return next(p for p in self.procs if p.component.endswith("/kube-apiserver"))

    def stop_apiserver(self) -> None:
        """Stop the kube-apiserver only (etcd and the rest keep running)."""
        self._apiserver.stop()

    def start_apiserver(self, timeout: float = 90) -> None:
        """Start the kube-apiserver again, on the same port with the same certificates."""
        if self.ca is None:
            raise StackError(f"{COMPONENT}[{self.name}]", "not started", fix="start it first")
        proc = self._apiserver.start()
        admin = self.dir / "pki"
        ctx = ssl.create_default_context(cafile=str(self.ca.pair.cert))
        ctx.load_cert_chain(str(admin / "admin.crt"), str(admin / "admin.key"))
        proc.wait_ready(
            lambda: https_ok(f"{self.server}/readyz", ctx), timeout=timeout, what="ready (/readyz)"
        )

    def _proc(self, what: str, argv: list[str]) -> Proc:
        proc = Proc(
            f"{COMPONENT}[{self.name}]/{what}",
            argv,
            log=self.dir / f"{what}.log",
            fix=f"read the log; {FIX_BUILD}",
            nice=self.nice,
        ).start()
        self.procs.append(proc)
        return proc

    def _wait_node_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.kubectl(
                "get",
                "node",
                FAKE_NODE,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            if done.stdout.strip() == "True":
                return
            for proc in self.procs:
                if not proc.alive():
                    raise StackError(proc.component, "exited", fix=proc.fix, log=proc.log)
            time.sleep(0.2)
        raise StackError(
            f"{COMPONENT}[{self.name}]/kwok",
            f"node {FAKE_NODE} not Ready after {timeout:.0f} s",
            fix="read the kwok log",
            log=self.dir / "kwok.log",
        )

    def stop(self) -> None:
        # dependants first, etcd last
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda p: p.stop(), reversed(self.procs[2:])))
        for proc in reversed(self.procs[:2]):
            proc.stop()
        self.procs.clear()
