"""A real node's pod network: a network namespace of its own, a bridge, CNI, kube-proxy, CoreDNS.

- The node (containerd, the kubelet, kube-proxy, CoreDNS) runs in a network namespace the stack
  creates (:mod:`checkout_stack.netns`), so its bridge, iptables rules and conntrack table are
  its own: several nodes (other test runs) coexist on one machine, and no pod address is
  routed anywhere outside that namespace.
- Pods: Debian's CNI plugins (``containernetworking-plugins``): ``bridge`` on :data:`BRIDGE`
  with ``host-local`` addresses from :data:`POD_CIDR` (gateway :data:`GATEWAY`), ``portmap``
  chained for hostPorts, and ``loopback``, which containerd adds itself.
- Services: kube-proxy (iptables mode), built from the same pinned ``k8s.io/kubernetes`` as the
  control plane, makes ClusterIPs work; CoreDNS (:data:`CLUSTER_DOMAIN`, on :data:`GATEWAY`:53,
  the kubelet's ``clusterDNS``) answers ``<service>.<namespace>.svc`` names, so a pod reaches
  ``http://checkout-orders:8080`` exactly as the operator renders it.
- The machine's servers (the apiserver, PostgreSQL, Redis, Kafka, Temporal: loopback only) are
  reached through :mod:`checkout_stack.netns_forward`: the same port on the node's loopback (the
  kubelet's, kube-proxy's and CoreDNS's kubeconfigs stay ``https://127.0.0.1:<port>``) and on
  :data:`GATEWAY` (for the pods: :func:`pod_url` turns an address into theirs). The
  ``default/kubernetes`` Service gets an EndpointSlice at :data:`GATEWAY` (the apiserver runs
  with ``--endpoint-reconciler-type=none``), so in-cluster clients work through its ClusterIP.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from checkout_stack import certs, paths
from checkout_stack.components.kube import SERVICE_CIDR, ControlPlane, _kubeconfig
from checkout_stack.errors import MissingTool
from checkout_stack.netns import Netns
from checkout_stack.proc import Proc, free_port

COMPONENT: Final = "node"
BRIDGE: Final = "cni0"
POD_CIDR: Final = "10.244.0.0/24"
GATEWAY: Final = "10.244.0.1"
"""The bridge's address in the node's namespace: the node IP, cluster DNS, the forwarded ports."""
CLUSTER_DOMAIN: Final = "cluster.local"
CNI_BIN: Final = Path("/usr/lib/cni")
FIX_APT: Final = "run `bash hack/setup.sh` (installs containernetworking-plugins, iptables)"
COREDNS_USER: Final = "system:coredns"
_HACK: Final = Path(__file__).resolve().parents[2]

_COREDNS_RBAC: Final = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COREDNS_USER},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces", "endpoints", "pods"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": COREDNS_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": COREDNS_USER,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
            ],
        },
    ],
}


def pod_url(address: str) -> str:
    """A loopback address of the machine (``127.0.0.1:<port>``, also inside a URL) as a pod of
    the node reaches it (the port must be one the node forwards)."""
    return address.replace("127.0.0.1", GATEWAY).replace("localhost", GATEWAY)


def cni_config(dir: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "checkout-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing leaves the node's namespace
                "hairpinMode": True,  # a pod reaches itself through its Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(dir / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kube_proxy_config(kubeconfig: Path, node: str) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node,
        "clusterCIDR": POD_CIDR,
        "detectLocalMode": "ClusterCIDR",
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # the conntrack sysctls are the machine's, not the namespace's: leave them alone
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }  # fmt: skip


def corefile(kubeconfig: Path, context: str) -> str:
    return (
        f".:53 {{\n    bind {GATEWAY}\n    errors\n    cache 5\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig} {context}\n"
        "        fallthrough in-addr.arpa ip6.arpa\n    }\n}\n"
    )


def kubernetes_endpoints(apiserver_port: int) -> dict[str, object]:
    """``default/kubernetes`` -> the apiserver as the pods reach it (forwarded at GATEWAY)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes-node",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "checkout-stack",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [GATEWAY], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": apiserver_port, "protocol": "TCP"}],
    }


@dataclass
class PodNetwork:
    """The node's namespace and what runs in it besides containerd and the kubelet."""

    kube: ControlPlane
    dir: Path
    node: str
    forward_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.netns: Netns | None = None

    @property
    def cni_dir(self) -> Path:
        return self.dir / "cni"

    def create(self) -> Netns:
        """The namespace, its bridge, the CNI config; tools checked first."""
        for plugin in ("bridge", "host-local", "loopback", "portmap"):
            if not (CNI_BIN / plugin).exists():
                raise MissingTool(COMPONENT, f"CNI plugin {CNI_BIN / plugin}", FIX_APT)
        for tool in ("iptables", "nsenter", "ip"):
            if not Path("/usr/sbin", tool).exists() and not Path("/usr/bin", tool).exists():
                raise MissingTool(COMPONENT, tool, FIX_APT)
        kube_proxy = paths.kube_proxy_bin()
        coredns = paths.coredns_bin()
        for binary in (kube_proxy, coredns):
            paths.require(binary.name, binary, "run `hack/stack build --only node`")
        ns = self.netns = Netns.create()
        ns.run("ip", "link", "add", BRIDGE, "type", "bridge")
        ns.run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ns.run("ip", "link", "set", BRIDGE, "up")
        # the node's own connections to ClusterIPs need a route before kube-proxy's DNAT
        ns.run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", GATEWAY)
        ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        # pod -> ClusterIP -> pod on the same bridge: the reply must meet kube-proxy's DNAT
        ns.run("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        self.cni_dir.mkdir(parents=True, exist_ok=True)
        (self.cni_dir / "10-checkout-pods.conflist").write_text(
            json.dumps(cni_config(self.dir), indent=1)
        )
        return ns

    def start(self, procs: list[Proc]) -> None:
        """The forwarder (before containerd: the kubelet needs the apiserver), kube-proxy and
        CoreDNS, the ``kubernetes`` EndpointSlice and CoreDNS's RBAC."""
        ns = self.netns
        assert ns is not None, "create() first"
        ports = sorted({self.kube.port, *self.forward_ports})
        procs.append(
            Proc(
                f"{COMPONENT}/forward",
                [sys.executable, "-m", "checkout_stack.netns_forward", str(ns.path),
                 f"127.0.0.1,{GATEWAY}", *map(str, ports)],
                log=self.dir / "forward.log", env={"PYTHONPATH": str(_HACK)},
                fix="read the log above",
            ).start()
        )  # fmt: skip
        procs[-1].wait_ready(
            lambda: "forwarding" in (self.dir / "forward.log").read_text(), 30, "listening"
        )
        pki = self.kube.dir / "pki"
        ca = certs.CA.load(pki)
        ca_pem = (pki / "ca.crt").read_bytes()
        proxy_kc, dns_kc = (
            _kubeconfig(self.dir / f"{stem}.kubeconfig", self.kube.name, self.kube.server,
                        ca_pem, ca.issue(stem, user, client=True))
            for stem, user in (("kube-proxy", "system:kube-proxy"), ("coredns", COREDNS_USER))
        )  # fmt: skip
        self.kube.kubectl("apply", "-f", "-", input=json.dumps(_COREDNS_RBAC))
        self.kube.kubectl(
            "apply", "-f", "-", input=json.dumps(kubernetes_endpoints(self.kube.port))
        )
        config = self.dir / "kube-proxy-config.json"
        config.write_text(json.dumps(kube_proxy_config(proxy_kc, self.node), indent=1))
        (self.dir / "Corefile").write_text(corefile(dns_kc, self.kube.name))
        for what, argv in (
            ("kube-proxy", [str(paths.kube_proxy_bin()), f"--config={config}", "--v=1"]),
            ("coredns", [str(paths.coredns_bin()), "-conf", str(self.dir / "Corefile")]),
        ):
            procs.append(
                Proc(
                    f"{COMPONENT}/{what}",
                    ns.wrap(argv),
                    log=self.dir / f"{what}.log",
                    fix="read the log above",
                ).start()
            )

    def expose(self, procs: list[Proc], host: str, port: int) -> int:
        """``host:port`` of the node's namespace (a pod or ClusterIP address) at a free port of
        the machine's loopback (returned), for as long as the node runs."""
        assert self.netns is not None, "create() first"
        local = free_port()
        log = self.dir / f"expose-{host}-{port}.log"
        proc = Proc(
            f"{COMPONENT}/expose",
            [sys.executable, "-m", "checkout_stack.netns_forward", "--expose",
             str(self.netns.path), str(local), host, str(port)],
            log=log, env={"PYTHONPATH": str(_HACK)}, fix="read the log above",
        ).start()  # fmt: skip
        procs.append(proc)
        proc.wait_ready(lambda: "exposing" in log.read_text(), 30, "listening")
        return local

    def delete(self) -> None:
        """The namespace, and the ``kubernetes`` EndpointSlice that pointed into it."""
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self.kube.kubectl("-n", "default", "delete", "endpointslice", "kubernetes-node",
                              "--ignore-not-found", check=False, timeout=10)  # fmt: skip
        if self.netns is not None:
            self.netns.delete()
            self.netns = None
