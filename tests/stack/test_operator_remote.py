"""A region deployed into a second control plane, through a kubeconfig kept in a Secret.

Children land in the remote cluster (no owner references across clusters), the CR's status in
the management cluster rolls up their health, and deleting the CR cleans the remote cluster up
(through the finalizer, which only remote regions get).
"""

from __future__ import annotations

import base64
import contextlib
import json
import pathlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator.reconcile import desired, index, region

from . import operator_support as sup

pytestmark = pytest.mark.stack

API = region.API_VERSION
FINALIZER = "checkout-operator.io/finalizer"


@pytest.fixture(scope="module")
def remote(kube_factory: Any) -> Any:
    return kube_factory("remote-ap")


@pytest.fixture
def setup(kube: Any, remote: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(management namespace, remote namespace, region body) with the kubeconfig Secret."""
    sup.install_crds(kube)
    ns, remote_ns = sup.unique("mgmt"), sup.unique("ap")
    kube.kubectl("create", "namespace", ns)
    remote.kubectl("create", "namespace", remote_ns)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ap-south-1-kubeconfig", "namespace": ns},
        "data": {"kubeconfig": base64.b64encode(remote.kubeconfig.read_bytes()).decode()},
    }
    sup.apply_yaml(kube, secret)
    body = sup.example("ap-south-1")
    body["metadata"]["namespace"] = ns
    body["spec"]["remoteCluster"]["namespace"] = remote_ns
    yield ns, remote_ns, body
    sup.delete_namespace(kube, ns)
    sup.delete_namespace(remote, remote_ns)


def remote_children(remote: Any, ns: str) -> list[str]:
    kinds = "deployments,services,configmaps,hpa,pdb,networkpolicies,serviceaccounts"
    out = sup.get(remote, "-n", ns, kinds, "-l", "checkout-operator.io/region=ap-south-1")
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in out["items"])


async def test_reconcile_into_a_remote_cluster_and_clean_up(
    kube: Any, remote: Any, setup: tuple[str, str, dict[str, Any]]
) -> None:
    ns, remote_ns, body = setup
    async with kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig)) as mgmt:
        ctx = region.Context(mgmt, desired.render)
        try:
            await mgmt.request("POST", f"/apis/{API}/namespaces/{ns}/checkoutregions", body=body)
            ref = index.Ref(ns, "ap-south-1")
            first = await region.reconcile_region(ctx, ref)
            assert first.error_reason == "", first.error_message
            count = len(desired.render(body, [], [body]).objects)
            assert len(first.applied) == count
            # nothing in the management namespace, everything in the remote one, unowned
            assert sup.get(kube, "-n", ns, "deployments")["items"] == []
            deps = sup.get(remote, "-n", remote_ns, "deployments")["items"]
            assert len(deps) == 6
            assert all(not d["metadata"].get("ownerReferences") for d in deps)

            async def ready() -> dict[str, Any] | None:
                await region.reconcile_region(ctx, ref)
                cr = await mgmt.get(API, "CheckoutRegion", ref.name, ns)
                return cr if cr.get("status", {}).get("phase") == "Ready" else None

            await sup.eventually(ready, 120, "remote region Ready")
            noop = await region.reconcile_region(ctx, ref)
            assert (noop.applied, noop.writes) == ((), 0)

            deleted = await region.cleanup_region(
                ctx, await mgmt.get(API, "CheckoutRegion", ref.name, ns)
            )
            assert len(deleted) == count
            assert remote_children(remote, remote_ns) == []
        finally:
            assert ctx.remotes is not None
            await ctx.remotes.aclose()


def test_operator_finalizer_cleans_the_remote_cluster_on_delete(
    kube: Any, remote: Any, setup: tuple[str, str, dict[str, Any]], tmp_path: pathlib.Path
) -> None:
    ns, remote_ns, body = setup
    with sup.running_operator(kube.kubeconfig, ns, tmp_path / "operator.log") as op:
        op.wait_live()
        sup.apply_yaml(kube, body)

        def ready() -> dict[str, Any] | None:
            cr = sup.get(kube, "-n", ns, "checkoutregion", "ap-south-1")
            return cr if (cr.get("status") or {}).get("phase") == "Ready" else None

        cr = sup.wait_for(ready, 180, "remote region Ready", op.log)
        assert FINALIZER in cr["metadata"].get("finalizers", [])
        count = len(desired.render(body, [], [body]).objects)
        assert len(remote_children(remote, remote_ns)) == count

        kube.kubectl("-n", ns, "delete", "checkoutregion", "ap-south-1", "--wait=false")

        def gone() -> bool:
            left = kube.kubectl("-n", ns, "get", "checkoutregion", "-o", "name").stdout.strip()
            return not left and remote_children(remote, remote_ns) == []

        sup.wait_for(gone, 90, "CR deleted and remote children cleaned up", op.log)
        assert op.stop() == 0


def test_local_regions_get_no_finalizer(kube: Any, tmp_path: pathlib.Path) -> None:
    sup.install_crds(kube)
    ns = sup.unique("fin")
    kube.kubectl("create", "namespace", ns)
    try:
        with sup.running_operator(kube.kubeconfig, ns, tmp_path / "operator.log") as op:
            op.wait_live()
            sup.apply_yaml(kube, sup.local_region(ns))

            def reconciled() -> dict[str, Any] | None:
                cr = sup.get(kube, "-n", ns, "checkoutregion", "ap-south-1")
                return cr if (cr.get("status") or {}).get("observedGeneration") == 1 else None

            cr = sup.wait_for(reconciled, 120, "local region reconciled", op.log)
            assert FINALIZER not in (cr["metadata"].get("finalizers") or [])
            assert op.stop() == 0
    finally:
        sup.delete_namespace(kube, ns)


async def test_unusable_remote_kubeconfig_is_degraded_without_leaking_it(kube: Any) -> None:
    sup.install_crds(kube)
    ns = sup.unique("badkc")
    kube.kubectl("create", "namespace", ns)
    body = sup.example("ap-south-1")
    body["metadata"]["namespace"] = ns
    try:
        async with kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig)) as mgmt:
            ctx = region.Context(mgmt, desired.render)
            await mgmt.request("POST", f"/apis/{API}/namespaces/{ns}/checkoutregions", body=body)
            ref = index.Ref(ns, "ap-south-1")

            missing = await region.reconcile_region(ctx, ref)
            assert (missing.error_reason, missing.permanent) == ("RemoteClusterUnavailable", False)
            assert missing.error_message == (
                f"Secret {ns}/ap-south-1-kubeconfig (the remote cluster's kubeconfig) "
                "does not exist"
            )

            leaked = "token: SUPERSECRET-123\n  : [unbalanced"
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "ap-south-1-kubeconfig", "namespace": ns},
                "data": {"kubeconfig": base64.b64encode(leaked.encode()).decode()},
            }
            await mgmt.apply(secret)
            broken = await region.reconcile_region(ctx, ref)
            assert broken.error_reason == "RemoteClusterUnavailable"
            assert "not a valid YAML kubeconfig" in broken.error_message
            cr = await mgmt.get(API, "CheckoutRegion", ref.name, ns)
            events = await mgmt.list("v1", "Event", ns)
            for text in (repr(broken), str(cr["status"]), str(events)):
                assert "SUPERSECRET" not in text
            degraded = next(c for c in cr["status"]["conditions"] if c["type"] == "Degraded")
            assert (degraded["status"], degraded["reason"]) == ("True", "RemoteClusterUnavailable")
            assert ctx.remotes is not None
            await ctx.remotes.aclose()
    finally:
        sup.delete_namespace(kube, ns)


class Listener:
    """A plain TCP listener on loopback that records whatever connects (the 'attacker')."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def received(self) -> bytes:
        data = b""
        with contextlib.suppress(TimeoutError):
            while True:
                conn, _ = self.sock.accept()
                with conn:
                    conn.settimeout(1)
                    with contextlib.suppress(OSError):
                        data += conn.recv(65536) or b"<connected>"
        return data

    def close(self) -> None:
        self.sock.close()


@contextlib.asynccontextmanager
async def management(kube: Any, ns: str, body: dict[str, Any]) -> AsyncIterator[Any]:
    """(a reconcile context on the management cluster) with ``body`` created in ``ns``."""
    async with kclient.KubeClient(kconfig.from_kubeconfig_file(kube.kubeconfig)) as mgmt:
        ctx = region.Context(mgmt, desired.render)
        try:
            await mgmt.request("POST", f"/apis/{API}/namespaces/{ns}/checkoutregions", body=body)
            yield ctx
        finally:
            assert ctx.remotes is not None
            await ctx.remotes.aclose()


async def refused(ctx: region.Context, ref: index.Ref, message_start: str) -> region.Result:
    """Reconcile ``ref``: refused for its kubeconfig, with nothing applied."""
    result = await region.reconcile_region(ctx, ref)
    assert (result.error_reason, result.applied) == ("KubeconfigNotAllowed", ())
    assert result.error_message.startswith(message_start), result.error_message
    return result


def _kubeconfig_secret(ns: str, name: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "data": {"kubeconfig": base64.b64encode(json.dumps(doc).encode()).decode()},
    }


async def test_kubeconfig_secret_cannot_make_the_operator_send_its_token_anywhere(
    kube: Any, remote: Any, setup: tuple[str, str, dict[str, Any]], tmp_path: pathlib.Path
) -> None:
    """Issue 18 #1: `tokenFile` (the operator's own ServiceAccount token in a pod) with an
    `http://` server used to send that token to the server. Now: Degraded + Event naming the
    field, nothing read, nothing sent, nothing applied."""
    ns, remote_ns, body = setup
    canary = "operator-sa-token-" + sup.unique("c")
    token_file = tmp_path / "token"
    token_file.write_text(canary)
    thief = Listener()
    stolen = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "x", "cluster": {"server": f"http://127.0.0.1:{thief.port}"}}],
        "users": [{"name": "x", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "current-context": "x",
    }
    sup.apply_yaml(kube, _kubeconfig_secret(ns, "ap-south-1-kubeconfig", stolen))
    async with management(kube, ns, body) as ctx:
        mgmt = ctx.client
        try:
            ref = index.Ref(ns, "ap-south-1")
            result = await refused(
                ctx, ref, "spec.remoteCluster.kubeconfigSecretRef: clusters[0].cluster.server must"
            )
            # the same Secret over https: the token file is the next thing refused
            stolen["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{thief.port}"
            sup.apply_yaml(kube, _kubeconfig_secret(ns, "ap-south-1-kubeconfig", stolen))
            again = await region.reconcile_region(ctx, ref)
            assert again.error_message == (
                "spec.remoteCluster.kubeconfigSecretRef: users[0].user.tokenFile is not allowed "
                f"in a kubeconfig from a Secret (Secret {ns}/ap-south-1-kubeconfig key "
                "'kubeconfig')"
            )
            cr = await mgmt.get(API, "CheckoutRegion", ref.name, ns)
            degraded = next(c for c in cr["status"]["conditions"] if c["type"] == "Degraded")
            assert (degraded["status"], degraded["reason"]) == ("True", "KubeconfigNotAllowed")
            assert "spec.remoteCluster.kubeconfigSecretRef" in degraded["message"]
            events = await mgmt.list("v1", "Event", ns)
            warned = [e for e in events if e.get("reason") == "KubeconfigNotAllowed"]
            assert warned
            assert "spec.remoteCluster.kubeconfigSecretRef" in warned[0]["message"]
            assert thief.received() == b""  # nobody connected: the token went nowhere
            for text in (str(cr), str(events), repr(result), repr(again)):
                assert canary not in text
                assert str(token_file) not in text
            assert remote_children(remote, remote_ns) == []
        finally:
            thief.close()


async def test_lease_kubeconfig_with_exec_is_refused_before_anything_is_applied(
    kube: Any, remote: Any, setup: tuple[str, str, dict[str, Any]]
) -> None:
    """The lease kubeconfig is mounted into the services' pods: the operator checks it (in the
    remote namespace) before it applies anything."""
    ns, remote_ns, body = setup
    ref_name = body["spec"]["remoteCluster"]["leaseKubeconfigSecretRef"]["name"]
    lease_doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "m", "cluster": {"server": kube.server}}],
        "users": [{"name": "m", "user": {"exec": {"command": "sh", "apiVersion": "v1"}}}],
        "contexts": [{"name": "m", "context": {"cluster": "m", "user": "m"}}],
        "current-context": "m",
    }
    sup.apply_yaml(remote, _kubeconfig_secret(remote_ns, ref_name, lease_doc))
    async with management(kube, ns, body) as ctx:
        ref = index.Ref(ns, "ap-south-1")
        await refused(
            ctx, ref, "spec.remoteCluster.leaseKubeconfigSecretRef: users[0].user.exec is not"
        )
        assert remote_children(remote, remote_ns) == []
        # fixed (inline token, https): the region reconciles
        lease_doc["users"][0]["user"] = {"token": "lease-token"}
        sup.apply_yaml(remote, _kubeconfig_secret(remote_ns, ref_name, lease_doc))
        fixed = await region.reconcile_region(ctx, ref)
        assert fixed.error_reason == "", fixed.error_message
        assert len(remote_children(remote, remote_ns)) > 6
