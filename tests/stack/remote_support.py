"""Remote regions on a second control plane: a kubeconfig Secret (https, inline CA and client
certificate, its own user bound by RBAC), the region body, and polling of its children."""

from __future__ import annotations

import base64
import json
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

from . import operator_support as sup

CONDITION = "RemoteClusterReachable"


@dataclass
class RemoteRegion:
    ns: str
    remote_ns: str
    body: dict[str, Any]
    secret: str
    user: str
    """The user of the Secret's first client certificate (its kubeconfig: ``<user>.kubeconfig``
    in the remote control plane's folder)."""
    more_users: list[str] = field(default_factory=list)
    """Users of rotated certificates, to revoke when the test is over."""


def grant(remote: Any, user: str) -> None:
    """``user`` may manage the operator's children anywhere in ``remote`` (a test cluster)."""
    remote.kubectl(
        "create", "clusterrolebinding", user, "--clusterrole=cluster-admin", f"--user={user}"
    )


def revoke(remote: Any, user: str) -> None:
    remote.kubectl("delete", "clusterrolebinding", user, "--ignore-not-found")


def kubeconfig_secret(ns: str, name: str, kubeconfig: pathlib.Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "data": {"kubeconfig": base64.b64encode(kubeconfig.read_bytes()).decode()},
    }


def make_region(kube: Any, remote: Any, ns: str, name: str = "ap-south-1") -> RemoteRegion:
    """A user with its own client certificate, namespaces in both clusters, the Secret (in
    ``ns``) and the body (not applied)."""
    user = sup.unique("operator-v1")
    grant(remote, user)
    kubeconfig: pathlib.Path = remote.issue_kubeconfig(user, user)
    remote_ns = sup.unique(name[:8])
    remote.kubectl("create", "namespace", remote_ns)
    secret = f"{remote.name}-kubeconfig"
    sup.apply_yaml(kube, kubeconfig_secret(ns, secret, kubeconfig))
    body = sup.example("ap-south-1")
    body["metadata"]["name"] = name
    body["metadata"]["namespace"] = ns
    body["spec"]["region"] = name
    body["spec"]["remoteCluster"]["namespace"] = remote_ns
    body["spec"]["remoteCluster"]["kubeconfigSecretRef"] = {"name": secret, "key": "kubeconfig"}
    # cart's replicas owned by the operator (no autoscaler): a hand edit of them is drift
    body["spec"]["services"]["cart"] = {"replicas": 2, "autoscaling": {"enabled": False}}
    return RemoteRegion(ns, remote_ns, body, secret, user)


def condition(kube: Any, ns: str, name: str, type_: str) -> dict[str, Any] | None:
    cr = sup.get(kube, "-n", ns, "checkoutregion", name)
    for cond in (cr.get("status") or {}).get("conditions") or ():
        if cond["type"] == type_:
            return dict(cond)
    return None


def deployment(remote: Any, ns: str, name: str) -> dict[str, Any] | None:
    done = remote.kubectl("-n", ns, "get", "deployment", name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def restored_within(remote: Any, ns: str, name: str, edit: str, within: float = 30.0) -> float:
    """Delete (``edit="delete"``) or scale by hand (``"scale"``) Deployment ``name``; seconds
    until the operator has put it back (a new uid, or the rendered replicas again)."""
    before = deployment(remote, ns, name)
    assert before is not None
    replicas = before["spec"]["replicas"]
    started = time.monotonic()
    if edit == "delete":
        remote.kubectl("-n", ns, "delete", "deployment", name, "--wait=false")
    else:
        remote.kubectl("-n", ns, "scale", "deployment", name, f"--replicas={replicas + 3}")
    deadline = started + within
    while time.monotonic() < deadline:
        now = deployment(remote, ns, name)
        if (
            now is not None
            and now["spec"]["replicas"] == replicas
            and (
                now["metadata"]["uid"] != before["metadata"]["uid"]
                if edit == "delete"
                else now["metadata"]["generation"] > before["metadata"]["generation"]
            )
        ):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"Deployment {ns}/{name} not restored within {within} s after {edit}")
