"""A real node: containerd (Debian's, CRI v1) + runc + the kubelet of the pinned Kubernetes.

Everything lives under the node's folder: containerd's root, state and socket, the kubelet's
root dir, its config and client certificate (``system:node:<name>``, signed by the control
plane's CA). Suited to this machine's hybrid cgroups: cgroupfs driver, ``failCgroupV1: false``
(Kubernetes 1.35 refuses cgroup v1 otherwise), no QoS cgroup tree, no node-allocatable
enforcement, eviction off (a shared disk must not taint the node). The node runs in a network
namespace of its own, where pods get addresses on a bridge, Services work through kube-proxy and
cluster DNS through CoreDNS (:mod:`node_net`). The pod sandbox ("pause") image is made locally
from Debian's static ``catatonit``.
Images reach containerd with ``ctr -n k8s.io images import`` of the OCI archives `make image`
saves.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from checkout_stack import certs, images, netns, paths
from checkout_stack.components import node_net
from checkout_stack.components.kube import ControlPlane, _kubeconfig
from checkout_stack.errors import MissingTool, StackError
from checkout_stack.proc import Proc, free_port

COMPONENT: Final = "node"
NODE_NAME: Final = "node-0"
CRI_NAMESPACE: Final = "k8s.io"
TAINT: Final = "checkout-operator.io/real-node"
PAUSE_REF: Final = "localhost/checkout-pause:catatonit"
FIX_APT: Final = "run `bash hack/setup.sh` (installs containerd, runc, catatonit)"

_CONTAINERD_TOML: Final = """version = 2
root = "{dir}/containerd/root"
state = "{dir}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{dir}/containerd.sock"
[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{dir}/cni"
"""


def _kubelet_config(dir: Path, ca: Path, port: int, healthz: int, sock: Path,
                    taints: tuple[str, ...]) -> dict[str, object]:  # fmt: skip
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{sock}",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},  # the kubelet's API listens on loopback only
        "failSwapOn": False,
        "registerNode": True,
        # only pods meant for a real node land here (the other tests' pods go to kwok's node)
        "registerWithTaints": [{"key": t, "effect": "NoSchedule"} for t in taints],
        "clusterDNS": [node_net.GATEWAY],
        "clusterDomain": node_net.CLUSTER_DOMAIN,
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "imagefs.available": "0%",
            "nodefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "protectKernelDefaults": False,
        "resolvConf": "/etc/resolv.conf",
        "maxPods": 30,
        "serializeImagePulls": False,
        "staticPodPath": str(dir / "manifests"),
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "podPidsLimit": -1,
    }


def _issue_node_cert(pki: Path, node: str) -> certs.Pair:
    """``system:node:<node>`` in ``system:nodes``, signed by the control plane's CA."""
    ca = certs.CA.load(pki)
    return ca.issue(f"node-{node}", f"system:node:{node}", orgs=("system:nodes",), client=True)


@dataclass
class Node:
    """containerd + kubelet registered to ``kube`` as node ``name``."""

    kube: ControlPlane
    dir: Path
    name: str = NODE_NAME
    taints: tuple[str, ...] = (TAINT,)
    """``NoSchedule`` taints it registers with: by default only pods that tolerate :data:`TAINT`
    land here (on a control plane that also has kwok's node); none for a node of its own."""
    forward_ports: tuple[int, ...] = ()
    """Ports of the machine's loopback servers the pods reach at :data:`node_net.GATEWAY`."""
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.net = node_net.PodNetwork(self.kube, self.dir, self.name, self.forward_ports)

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.socket), "--namespace", CRI_NAMESPACE, *args]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if done.returncode != 0:
            raise StackError(
                COMPONENT,
                f"`{' '.join(argv)}` exited with {done.returncode}: {done.stderr.strip()}",
                fix="read containerd's log",
                log=self.dir / "containerd.log",
            )
        return done

    def start(self) -> Node:
        for tool, pkg in (("containerd", "containerd"), ("runc", "runc"), ("ctr", "containerd"),
                          ("catatonit", "catatonit")):  # fmt: skip
            if shutil.which(tool) is None:
                raise MissingTool(COMPONENT, f"{tool} (Debian package {pkg})", FIX_APT)
        kubelet = paths.require(
            "kubelet", paths.kubelet_bin(), "run `hack/stack build --only kubernetes`"
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "manifests").mkdir(exist_ok=True)
        ns = self.net.create()
        self.net.start(self.procs)
        config = self.dir / "containerd.toml"
        config.write_text(
            _CONTAINERD_TOML.format(dir=self.dir, pause=PAUSE_REF, runc=shutil.which("runc"))
        )
        containerd = self._proc("containerd", ns.wrap(["containerd", "--config", str(config)]))
        containerd.wait_ready(lambda: self.socket.exists(), timeout=60, what="listening")
        self.import_archive(self._pause_archive())

        pki = self.kube.dir / "pki"
        client = _issue_node_cert(pki, self.name)
        kubeconfig = _kubeconfig(
            self.dir / "kubelet.kubeconfig",
            self.kube.name,
            self.kube.server,
            (pki / "ca.crt").read_bytes(),
            client,
        )
        healthz = free_port()
        kubelet_config = self.dir / "kubelet-config.json"
        kubelet_config.write_text(json.dumps(_kubelet_config(
            self.dir, pki / "ca.crt", free_port(), healthz, self.socket, self.taints
        ), indent=1))  # fmt: skip
        self._proc(
            "kubelet",
            ns.wrap([str(kubelet), f"--config={kubelet_config}", f"--kubeconfig={kubeconfig}",
             f"--root-dir={self.dir / 'kubelet'}", f"--cert-dir={self.dir / 'kubelet-pki'}",
             f"--hostname-override={self.name}", f"--node-ip={node_net.GATEWAY}", "--v=1"]),
        )  # fmt: skip
        self.wait_ready()
        return self

    def _pause_archive(self) -> Path:
        """A sandbox image holding Debian's static catatonit in pause mode (no registry)."""
        archive = images.images_dir() / "checkout-pause-catatonit.oci.tar"
        if archive.exists():
            return archive
        root = self.dir / "pause-root"
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shutil.which("catatonit") or "catatonit", root / "catatonit")
        tarball = self.dir / "pause.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "catatonit"], check=True)
        subprocess.run(
            images.podman("import", "--change", 'ENTRYPOINT ["/catatonit", "-P"]',
                          "--change", "USER 65535:65535", str(tarball), PAUSE_REF),
            check=True, capture_output=True,
        )  # fmt: skip
        archive.parent.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_suffix(".tmp")
        subprocess.run(
            images.podman("save", "--format", "oci-archive", "--output", str(tmp), PAUSE_REF),
            check=True, capture_output=True,
        )  # fmt: skip
        tmp.rename(archive)
        return archive

    def import_archive(self, archive: Path) -> None:
        """An OCI archive from `make image` into containerd's CRI namespace."""
        self.ctr("images", "import", "--no-unpack=false", str(archive))

    def expose(self, host: str, port: int) -> int:
        """``host:port`` inside the node (a pod IP or a Service's ClusterIP) at the returned port
        of the machine's loopback (:func:`checkout_stack.netns_forward.expose`)."""
        return self.net.expose(self.procs, host, port)

    def http_get(self, url: str, timeout: float = 5) -> tuple[int, str]:
        """GET ``url`` from inside the node's network namespace (a pod or ClusterIP address, as
        the kubelet's probes and kube-proxy see them): status and body."""
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        assert self.net.netns is not None, "start() first"
        with netns.entered(self.net.netns.path):
            sock = socket.create_connection((host, port), timeout=timeout)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock
        try:
            conn.request("GET", parts.path or "/")
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            done = self.kube.kubectl(
                "get", "node", self.name, "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status} "
                "{.status.conditions[?(@.type=='Ready')].message}",
                check=False,
            )  # fmt: skip
            last = done.stdout.strip() or done.stderr.strip()
            if last.startswith("True"):
                return
            for proc in self.procs:
                if not proc.alive():
                    raise StackError(proc.component, "exited", fix=proc.fix, log=proc.log)
            time.sleep(0.5)
        raise StackError(
            COMPONENT,
            f"node {self.name} not Ready after {timeout:.0f} s: {last}",
            fix="read the kubelet log",
            log=self.dir / "kubelet.log",
        )

    def _proc(self, what: str, argv: list[str]) -> Proc:
        proc = Proc(f"{COMPONENT}/{what}", argv, log=self.dir / f"{what}.log",
                    fix="read the log above").start()  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """The kubelet first; the pods' containers (killed through containerd); containerd; then
        any shim of this node's containerd still there (by pid); the network namespaces."""
        if not self.procs:
            self.net.delete()
            return
        kubelet = [p for p in self.procs if p.component.endswith("/kubelet")]
        for proc in kubelet:
            proc.stop()
        with contextlib.suppress(StackError, subprocess.TimeoutExpired):
            for task in self.ctr("tasks", "ls", "-q", timeout=30).stdout.split():
                self.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, timeout=30)
        for proc in self.procs:
            if proc not in kubelet:
                proc.stop()
        self.procs.clear()
        for pid in _shims_of(self.socket):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # what the kubelet and containerd mounted and no pod teardown unmounted (the pods'
        # network namespaces, /dev/shm, root filesystems, volumes): deepest first
        for mount in sorted(_mounts_under(self.dir), key=lambda p: -len(p.parts)):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        self.net.delete()


def _mounts_under(folder: Path) -> list[Path]:
    """Mount points of this process's mount namespace inside ``folder``."""
    prefix = str(folder.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(Path(point))
    return points


def _shims_of(socket: Path) -> list[int]:
    """containerd-shim processes started for the containerd listening on ``socket``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"containerd-shim" in argv[0] and str(socket).encode() in argv:
            pids.append(int(proc.name))
    return pids
