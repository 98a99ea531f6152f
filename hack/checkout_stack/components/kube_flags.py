"""The command lines of the control plane's processes (pure: paths and ports in, argv out).

:class:`checkout_stack.components.kube.ControlPlane` makes the certificates and kubeconfigs,
picks the ports and starts these in order; what each process is told lives here, one function
per binary, so that a flag and the reason for it sit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from checkout_stack import certs, paths


def etcd(binary: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    return [
        str(binary),
        "--name",
        "default",
        "--data-dir",
        str(data_dir),
        "--listen-client-urls",
        f"http://127.0.0.1:{client_port}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{client_port}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer_port}",
        "--initial-cluster",
        f"default=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync",
        "--log-level",
        "warn",
    ]


def apiserver(
    binary: Path,
    etcd_port: int,
    port: int,
    pki: Path,
    serving: certs.Pair,
    ca: certs.Pair,
    sa: certs.Pair,
    service_cidr: str,
) -> list[str]:
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        f"--client-ca-file={ca.cert}",
        f"--service-account-key-file={sa.cert}",
        f"--service-account-signing-key-file={sa.key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={service_cidr}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=0",
    ]


def _controller(binary: Path, kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """What the controller-manager and the scheduler are both told: one kubeconfig for the API
    and for delegated authn/authz, a loopback-only secure port, no leader election."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
    ]


def controller_manager(
    binary: Path,
    kubeconfig: Path,
    port: int,
    pki: Path,
    sa: certs.Pair,
    ca: certs.Pair,
    cluster: str,
    service_cidr: str,
    controllers: Sequence[str] | None,
) -> list[str]:
    """``controllers`` None: all of them (``*``)."""
    return [
        *_controller(binary, kubeconfig, port, pki / "kcm"),
        "--controllers=" + (",".join(controllers) if controllers is not None else "*"),
        "--use-service-account-credentials",
        f"--service-account-private-key-file={sa.key}",
        f"--root-ca-file={ca.cert}",
        f"--cluster-signing-cert-file={ca.cert}",
        f"--cluster-signing-key-file={ca.key}",
        f"--cluster-name={cluster}",
        f"--service-cluster-ip-range={service_cidr}",
        # the defaults (20 QPS, burst 30 per controller) make a 50-region fleet's 600
        # pods queue behind client-side throttling, not behind the apiserver
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        # 5 workers each (the defaults) wait in turn on a busy apiserver: 300
        # Deployments of 50 regions queued behind them
        "--concurrent-deployment-syncs=20",
        "--concurrent-replicaset-syncs=20",
        "--concurrent-horizontal-pod-autoscaler-syncs=20",
        "--profiling=false",
        "--v=0",
    ]


def scheduler(binary: Path, kubeconfig: Path, port: int, pki: Path) -> list[str]:
    return [
        *_controller(binary, kubeconfig, port, pki / "scheduler"),
        "--kube-api-qps=200",
        "--kube-api-burst=400",
        "--profiling=false",
        "--v=0",
    ]


def kwok(binary: Path, kubeconfig: Path, server_port: int) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--config={paths.kwok_stages()}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--cidr=10.0.1.0/24",
        "--node-ip=10.0.1.1",
        f"--server-address=127.0.0.1:{server_port}",
        "--node-lease-duration-seconds=40",
    ]
