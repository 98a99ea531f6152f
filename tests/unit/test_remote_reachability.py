"""Why a remote cluster cannot be reached, in words: real failed connections (no server, a
server that does not speak TLS, a name that does not resolve) classified by
``kube.reachability``; and the child -> region mapping of the remote watches."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_kube import errors
from checkout_operator.kube import reachability
from checkout_operator.reconcile import index, remote_watch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _failure(server: str) -> errors.KubeError:
    creds = kconfig.Credentials(server=server, source="test")
    async with kclient.KubeClient(creds, retries=0, timeout=2.0) as kube:
        with pytest.raises(errors.KubeError) as caught:
            await kube.request("GET", "/version")
    return caught.value


async def test_nothing_listening_is_connection_refused() -> None:
    state = reachability.classify(await _failure(f"https://127.0.0.1:{_free_port()}"))
    assert (state.reachable, state.reason) == (False, "ConnectionRefused")
    assert "refused the connection" in state.message


@pytest.fixture
async def not_tls() -> AsyncIterator[int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\nthis is not TLS\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_a_server_without_tls_is_a_tls_error(not_tls: int) -> None:
    state = reachability.classify(await _failure(f"https://127.0.0.1:{not_tls}"))
    assert (state.reachable, state.reason) == (False, "TLSError")
    assert "TLS handshake" in state.message


async def test_a_name_that_does_not_resolve_is_dns() -> None:
    state = reachability.classify(await _failure("https://cluster.checkout-test.invalid:6443"))
    assert (state.reachable, state.reason) == (False, "DNSError")


def test_answers_in_words() -> None:
    unauthorized = errors.from_response(401, {"message": "Unauthorized"}, verb="GET")
    forbidden = errors.from_response(403, {"message": "configmaps is forbidden"}, verb="GET")
    timeout = errors.TransportError("GET /version: timed out talking to remote cluster")
    cases = {
        unauthorized: "Unauthorized",
        forbidden: "Forbidden",
        timeout: "Timeout",
        errors.ConfigError("Secret ns/x has no data key 'kubeconfig'"): "KubeconfigUnusable",
        errors.from_response(404, {"message": "not found"}): "Reachable",
    }
    assert [reachability.classify(e).reason for e in cases] == list(cases.values())
    assert "401" in reachability.classify(unauthorized).message
    assert "403" in reachability.classify(forbidden).message


def _region(name: str, secret: str, remote_ns: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "mgmt"},
        "spec": {
            "region": name,
            "remoteCluster": {"namespace": remote_ns, "kubeconfigSecretRef": {"name": secret}},
        },
    }


def test_regions_sharing_a_secret_share_one_cluster() -> None:
    a = remote_watch.cluster_of(_region("ap-south-1", "kc", "ap"))
    b = remote_watch.cluster_of(_region("eu-west-1", "kc", "eu"))
    assert a is not None
    assert b is not None
    assert a[0] == b[0] == ("mgmt", "kc", "kubeconfig")
    assert (
        remote_watch.cluster_of({"metadata": {"name": "x", "namespace": "n"}, "spec": {}}) is None
    )

    cluster = remote_watch.Cluster(a[0])
    cluster.regions[index.Ref("mgmt", "ap-south-1")] = (a[1], a[2])
    cluster.regions[index.Ref("mgmt", "eu-west-1")] = (b[1], b[2])
    child = {
        "metadata": {"namespace": "eu", "labels": {"checkout-operator.io/region": "eu-west-1"}}
    }
    assert cluster.region_of(child) == index.Ref("mgmt", "eu-west-1")
    stray = {
        "metadata": {"namespace": "ap", "labels": {"checkout-operator.io/region": "eu-west-1"}}
    }
    assert cluster.region_of(stray) is None
