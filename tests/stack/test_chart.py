"""The Helm chart against the real control plane, with the real helm binary.

`helm install` of charts/checkout-operator creates the CRDs, ServiceAccount, RBAC, Deployment and
metrics Service. No kubelet runs containers here (kwok), so the operator runs as a local
`checkout-operator run` subprocess authenticated AS the chart's ServiceAccount (a TokenRequest
token): with exactly the chart's RBAC it must reconcile an example region to Ready without a
single 403, and with one rule removed from the chart's ClusterRole it must fail visibly.
"""

from __future__ import annotations

import base64
import json
import pathlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from . import operator_support as sup

pytestmark = pytest.mark.stack

CHART = sup.ROOT / "charts" / "checkout-operator"
FORBIDDEN = re.compile(
    r"(?<![,.:\d])403(?!\d)|forbidden", re.IGNORECASE
)  # not the ",403" of a timestamp


def helm(helm_bin: pathlib.Path, kube: Any, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(helm_bin), "--kubeconfig", str(kube.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done


@dataclass
class Release:
    name: str
    namespace: str  # where the operator (ServiceAccount, Deployment) lives
    watched: str  # where the example region goes
    fullname: str

    @property
    def cluster_role(self) -> str:
        return self.fullname


def uninstall(helm_bin: pathlib.Path, kube: Any, name: str, namespace: str) -> None:
    subprocess.run(
        [str(helm_bin), "--kubeconfig", str(kube.kubeconfig), "uninstall", name,
         "--namespace", namespace, "--wait=false"],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip


def crds_values(kube: Any) -> list[str]:
    """``crds.create=false`` when the CRDs exist: a CRD the chart creates is the release's
    (helm refuses to take over one that another release, or kubectl, created); kept after an
    uninstall (``helm.sh/resource-policy: keep``) it is there for the next release of a session."""
    done = kube.kubectl("get", "crd", "checkoutregions.checkout-operator.io", check=False)
    return ["--set", "crds.create=false"] if done.returncode == 0 else []


def install(
    helm_bin: pathlib.Path, kube: Any, all_namespaces: bool, *extra: str
) -> Iterator[Release]:
    name, op_ns, watched = sup.unique("chart"), sup.unique("chart-op"), sup.unique("chart-ns")
    kube.kubectl("create", "namespace", watched)
    scope = (
        []
        if all_namespaces
        else ["--set", "watch.allNamespaces=false", "--set", f"watch.namespaces={{{watched}}}"]
    )
    helm(
        helm_bin, kube, "install", name, str(CHART), "--namespace", op_ns, "--create-namespace",
        *scope, *crds_values(kube), *extra,
    )  # fmt: skip
    kube.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/checkoutregions.checkout-operator.io", "crd/psproutes.checkout-operator.io",
    )  # fmt: skip
    try:
        yield Release(name, op_ns, watched, f"{name}-checkout-operator")
    finally:
        uninstall(helm_bin, kube, name, op_ns)
        sup.delete_namespace(kube, watched)
        sup.delete_namespace(kube, op_ns)


def service_account_kubeconfig(kube: Any, release: Release, path: pathlib.Path) -> str:
    """A kubeconfig with a TokenRequest token of the chart's ServiceAccount; returns the token."""
    token = kube.kubectl(
        "create", "token", release.fullname, "-n", release.namespace, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(pathlib.Path(kube.kubeconfig).read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(ca)  # the admin kubeconfig carries the CA inline
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "stack", "cluster": {"server": kube.server, "certificate-authority-data": ca}}
        ],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "stack", "user": "operator"}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    whoami = kube.kubectl("auth", "whoami", "-o", "json", kubeconfig=path)
    user = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    assert user == f"system:serviceaccount:{release.namespace}:{release.fullname}"
    return token


SECRET_DENIED = re.compile(
    r'cannot get resource "secrets" in API group "" in the namespace "([^"]+)"'
)


def denied(log_text: str, mine: str = "") -> list[str]:
    """The log lines with a 403. Every 403 counts, except the namespace-lifecycle one for a
    namespace another test of the session is deleting (an all-namespaces operator sees its
    leftover regions): not RBAC; and, with ``mine`` (an all-namespaces operator), a Secret
    read in another test's namespace: by default the chart grants Secret reads nowhere then
    (``rbac.remoteClusterSecrets.scope``), so another test's remote region is refused, as
    documented."""

    def foreign_secret(line: str) -> bool:
        found = SECRET_DENIED.search(line)
        return bool(mine) and found is not None and found.group(1) != mine

    return [
        line
        for line in log_text.splitlines()
        if FORBIDDEN.search(line)
        and "because it is being terminated" not in line
        and not foreign_secret(line)
    ]


def conditions(kube: Any, ns: str, name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    cr = sup.get(kube, "-n", ns, "checkoutregion", name)
    st: dict[str, Any] = cr.get("status") or {}
    st["_generation"] = cr["metadata"]["generation"]
    return st, {c["type"]: c for c in st.get("conditions") or ()}


@pytest.fixture(params=["all-namespaces", "one-namespace"])
def release(request: pytest.FixtureRequest, helm_bin: pathlib.Path, kube: Any) -> Iterator[Release]:
    yield from install(helm_bin, kube, request.param == "all-namespaces")


def test_operator_under_the_charts_rbac_reconciles_an_example(
    kube: Any, release: Release, tmp_path: pathlib.Path
) -> None:
    # what helm created, as the chart says
    dep = sup.get(kube, "-n", release.namespace, "deployment", release.fullname)
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == release.fullname
    args = pod["containers"][0]["args"]
    assert args[0] == "run"
    assert ("--all-namespaces" in args) != (f"--namespace={release.watched}" in args), args

    kubeconfig = tmp_path / "sa.kubeconfig"
    token = service_account_kubeconfig(kube, release, kubeconfig)
    all_ns = "--all-namespaces" in args
    # RBAC as seen by the apiserver: nothing beyond the operator's needs
    for verb, what, allowed in [
        ("patch", f"deployments.apps -n {release.watched}", True),
        ("create", f"deployments.apps -n {release.watched}", True),
        ("update", f"deployments.apps -n {release.watched}", False),
        ("get", f"deployments.apps -n {release.watched}", False),
        # Secret get only in the watched namespaces by default (all namespaces: nowhere)
        ("get", f"secrets -n {release.watched}", not all_ns),
        ("list", f"secrets -n {release.watched}", False),
        ("get", "secrets -n kube-system", False),
        ("get", f"secrets -n {release.namespace}", False),
        # its own lease Roles/RoleBindings only; no Lease update or delete
        (
            "patch",
            f"rolebindings.rbac.authorization.k8s.io/checkout-leases -n {release.watched}",
            True,
        ),
        ("patch", f"rolebindings.rbac.authorization.k8s.io/admin -n {release.watched}", False),
        ("delete", f"roles.rbac.authorization.k8s.io/other -n {release.watched}", False),
        ("update", f"leases.coordination.k8s.io -n {release.watched}", False),
        ("delete", f"leases.coordination.k8s.io -n {release.watched}", False),
        ("create", f"events -n {release.watched}", True),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", True),
        ("list", "namespaces", not all_ns),
        ("patch", f"deployments.apps -n {release.namespace}", all_ns),
        ("delete", "namespaces", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
    ]:
        done = kube.kubectl(
            "auth", "can-i", verb, *what.split(), kubeconfig=kubeconfig, check=False
        )
        assert done.stdout.strip() == ("yes" if allowed else "no"), (verb, what, done.stdout)

    log = tmp_path / "operator.log"
    namespace = None if all_ns else release.watched
    with sup.running_operator(kubeconfig, namespace, log) as op:
        op.wait_live()
        sup.apply_yaml(kube, sup.local_region(release.watched))
        route = yaml.safe_load((sup.ROOT / "examples/psproutes/in-upi.yaml").read_text())
        route["metadata"]["namespace"] = release.watched
        sup.apply_yaml(kube, route)

        def ready() -> dict[str, Any] | None:
            st, conds = conditions(kube, release.watched, "ap-south-1")
            ok = st.get("observedGeneration") == st["_generation"] and st.get("phase") == "Ready"
            return st if ok and conds["Ready"]["status"] == "True" else None

        st = sup.wait_for(ready, 180, "CheckoutRegion Ready under the chart's RBAC", log)
        assert st["children"]["desired"] == st["children"]["applied"] > 6, st["children"]
        assert st["children"]["ready"] == 6, st["children"]
        assert not st["children"].get("notReady"), st["children"]
        deps = sup.get(
            kube, "-n", release.watched, "deployments",
            "-l", "checkout-operator.io/region=ap-south-1",
        )  # fmt: skip
        assert len(deps["items"]) == 6
        assert all(d["status"].get("availableReplicas", 0) >= 1 for d in deps["items"])
        for kind in ("networkpolicies", "poddisruptionbudgets", "hpa", "serviceaccounts"):
            items = sup.get(
                kube, "-n", release.watched, kind, "-l", "checkout-operator.io/region=ap-south-1"
            )["items"]
            assert items, f"no {kind} applied"

        def route_ready() -> bool:
            rst = sup.get(kube, "-n", release.watched, "psproute", "in-upi").get("status") or {}
            return rst.get("regions") == ["ap-south-1"]

        sup.wait_for(route_ready, 60, "PSPRoute status written under the chart's RBAC", log)
        events = sup.get(kube, "-n", release.watched, "events")["items"]
        assert any((e.get("source") or {}).get("component") == "checkout-operator" for e in events)
        assert op.stop() == 0
    text = log.read_text()
    mine = release.watched if all_ns else ""
    assert not denied(text, mine), "\n".join(denied(text, mine))
    assert "Not enough permissions" not in text  # kopf's CRD / namespace observation
    assert token not in text


def test_too_narrow_rbac_is_caught(
    helm_bin: pathlib.Path, kube: Any, tmp_path: pathlib.Path
) -> None:
    for release in install(helm_bin, kube, all_namespaces=True):
        # the chart's own ClusterRole, minus the NetworkPolicy rule
        manifest = helm(helm_bin, kube, "get", "manifest", release.name, "-n", release.namespace)
        docs = [d for d in yaml.safe_load_all(manifest.stdout) if d]
        role = next(
            d
            for d in docs
            if d["kind"] == "ClusterRole" and d["metadata"]["name"] == release.fullname
        )
        narrowed = [r for r in role["rules"] if "networkpolicies" not in r["resources"]]
        assert len(narrowed) == len(role["rules"]) - 1
        role["rules"] = narrowed
        kube.kubectl("replace", "-f", "-", input=json.dumps(role))

        kubeconfig = tmp_path / "sa.kubeconfig"
        token = service_account_kubeconfig(kube, release, kubeconfig)
        log = tmp_path / "operator.log"
        with sup.running_operator(kubeconfig, None, log) as op:
            op.wait_live()
            sup.apply_yaml(kube, sup.local_region(release.watched))

            def degraded(ns: str = release.watched) -> dict[str, Any] | None:
                _, conds = conditions(kube, ns, "ap-south-1")
                deg = conds.get("Degraded") or {}
                return deg if deg.get("status") == "True" else None

            deg = sup.wait_for(degraded, 120, "Degraded condition from the missing rule", log)
            assert deg["reason"] == "Forbidden", deg
            assert "networkpolicies" in deg["message"], deg
            _, conds = conditions(kube, release.watched, "ap-south-1")
            assert conds["Ready"]["status"] == "False"
            metrics = sup.http_get(op.metrics_url)
            assert re.search(
                r'checkout_operator_reconcile_errors_total\{kind="CheckoutRegion",'
                r'reason="Forbidden"\} [1-9]',
                metrics,
            ), metrics
        text = log.read_text()
        assert FORBIDDEN.search(text), text[-3000:]
        assert token not in text


def test_remote_example_reconciles_with_the_default_per_namespace_secret_rights(
    helm_bin: pathlib.Path, kube: Any, kube_factory: Any, tmp_path: pathlib.Path
) -> None:
    """A remote region (its kubeconfig in a Secret of the watched namespace) reconciles to
    Ready under exactly the chart's default RBAC, which reads no Secret elsewhere."""
    remote = kube_factory("chart-remote")
    remote_ns = sup.unique("chart-ap")
    remote.kubectl("create", "namespace", remote_ns)
    for release in install(helm_bin, kube, all_namespaces=False):
        kubeconfig = tmp_path / "sa.kubeconfig"
        token = service_account_kubeconfig(kube, release, kubeconfig)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ap-south-1-kubeconfig", "namespace": release.watched},
            "data": {"kubeconfig": base64.b64encode(remote.kubeconfig.read_bytes()).decode()},
        }
        sup.apply_yaml(kube, secret)
        other = sup.unique("chart-unwatched")
        kube.kubectl("create", "namespace", other)
        try:
            done = kube.kubectl(
                "get", "secret", "-n", other, "default-token-none", kubeconfig=kubeconfig,
                check=False,
            )  # fmt: skip
            assert "forbidden" in done.stderr.lower(), done.stderr
        finally:
            sup.delete_namespace(kube, other)
        body = sup.example("ap-south-1")
        body["metadata"]["namespace"] = release.watched
        body["spec"]["remoteCluster"]["namespace"] = remote_ns
        log = tmp_path / "operator.log"
        with sup.running_operator(kubeconfig, release.watched, log) as op:
            op.wait_live()
            sup.apply_yaml(kube, body)

            def ready(ns: str = release.watched) -> dict[str, Any] | None:
                st, conds = conditions(kube, ns, "ap-south-1")
                ok = st.get("observedGeneration") == st["_generation"]
                return st if ok and conds.get("Ready", {}).get("status") == "True" else None

            st = sup.wait_for(ready, 180, "remote CheckoutRegion Ready under the chart's RBAC", log)
            assert st["children"]["ready"] == 6, st["children"]
            deps = sup.get(remote, "-n", remote_ns, "deployments")["items"]
            assert len(deps) == 6
            sup.delete_namespace(remote, remote_ns)
            assert op.stop() == 0
        text = log.read_text()
        assert not denied(text), "\n".join(denied(text))
        assert token not in text
