"""Kubeconfig / in-cluster credentials, typed API errors, discovery parsing and caching."""

from __future__ import annotations

import base64
import json
import pathlib
import socket
from typing import Any

import pytest

from checkout_kube import client, config, discovery, errors

SECRET_TOKEN = "tok-3f9a-very-secret"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(user: dict[str, Any], *, current: str | None = "ctx", **cluster: Any) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "ns1"}}],
    }
    if current:
        doc["current-context"] = current
    return json.dumps(doc)


def test_token_kubeconfig() -> None:
    creds = config.from_kubeconfig_text(
        kubeconfig({"token": SECRET_TOKEN}, **{"certificate-authority-data": b64(b"CA")})
    )
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_pem == b"CA"
    assert creds.current_token() == SECRET_TOKEN
    assert creds.default_namespace == "ns1"
    assert SECRET_TOKEN not in repr(creds)


def test_client_cert_data_and_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "c.crt").write_bytes(b"CERT")
    (tmp_path / "c.key").write_bytes(b"KEY")
    (tmp_path / "ca.crt").write_bytes(b"CAFILE")
    path = tmp_path / "kc"
    path.write_text(
        kubeconfig(
            {"client-certificate": "c.crt", "client-key": "c.key"},
            **{"certificate-authority": "ca.crt"},
        )
    )
    creds = config.from_kubeconfig_file(path)
    assert (creds.client_cert_pem, creds.client_key_pem, creds.ca_pem) == (
        b"CERT",
        b"KEY",
        b"CAFILE",
    )
    assert "KEY" not in repr(creds)
    data = config.from_kubeconfig_text(
        kubeconfig({"client-certificate-data": b64(b"C2"), "client-key-data": b64(b"K2")})
    )
    assert (data.client_cert_pem, data.client_key_pem) == (b"C2", b"K2")


def test_token_file_is_reread(tmp_path: pathlib.Path) -> None:
    (tmp_path / "token").write_text("one\n")
    path = tmp_path / "kc"
    path.write_text(kubeconfig({"tokenFile": "token"}))
    creds = config.from_kubeconfig_file(path)
    assert creds.current_token() == "one"
    (tmp_path / "token").write_text("two\n")
    assert creds.current_token() == "two"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (kubeconfig({}, current=None), "no current-context"),
        (kubeconfig({"exec": {"command": "aws"}}), "exec plugin"),
        (kubeconfig({"username": "a", "password": "b"}), "basic auth"),
        (kubeconfig({"client-certificate-data": b64(b"C")}), "without a key"),
        (
            kubeconfig({"client-key-data": "***not base64***"}),
            "client-key-data is not valid base64",
        ),
        ("[1, 2]", "expected a mapping"),
        # what the services' own reader once answered with KeyError / StopIteration
        ('{"current-context": "x", "contexts": 5}', "contexts is not a list"),
        ('{"current-context": "x", "contexts": []}', "no context named 'x'"),
        ('{"current-context": "x", "contexts": [{"name": "x"}]}', "no cluster named ''"),
        (
            '{"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c"}}],'
            ' "clusters": [{"name": "c", "cluster": {}}]}',
            "cluster 'c' has no server",
        ),
    ],
)
def test_bad_kubeconfigs_are_named(text: str, message: str) -> None:
    with pytest.raises(errors.ConfigError, match=message):
        config.from_kubeconfig_text(text, source="kc.yaml")


def test_invalid_yaml_error_never_quotes_the_document() -> None:
    text = f"token: {SECRET_TOKEN}\n  : [unbalanced"
    with pytest.raises(errors.ConfigError) as exc:
        config.from_kubeconfig_text(text, source="kc.yaml")
    assert SECRET_TOKEN not in str(exc.value)
    assert str(exc.value) == "kc.yaml: not a valid YAML kubeconfig"


def test_missing_file() -> None:
    with pytest.raises(errors.ConfigError, match="cannot read the kubeconfig /nonexistent/kc"):
        config.from_kubeconfig_file("/nonexistent/kc")


def test_in_cluster(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text(SECRET_TOKEN)
    (tmp_path / "ca.crt").write_bytes(b"CA")
    (tmp_path / "namespace").write_text("operators\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    creds = config.in_cluster(tmp_path)
    assert creds.server == "https://[fd00::1]:443"
    assert creds.current_token() == SECRET_TOKEN
    assert creds.default_namespace == "operators"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(errors.ConfigError, match="KUBERNETES_SERVICE_HOST is unset"):
        config.in_cluster(tmp_path)


def test_load_prefers_path_then_kubeconfig_env(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kc"
    path.write_text(kubeconfig({"token": "t"}))
    monkeypatch.setenv("KUBECONFIG", f"{path}:/other")
    assert config.load().source == str(path)
    with pytest.raises(errors.ConfigError, match="/nope"):
        config.load("/nope")


def test_errors_from_status_bodies() -> None:
    invalid = errors.from_response(
        422,
        {
            "kind": "Status",
            "reason": "Invalid",
            "message": 'Deployment.apps "x" is invalid',
            "details": {
                "causes": [
                    {"field": "spec.replicas", "reason": "FieldValueInvalid", "message": "bad"}
                ]
            },
        },
        verb="PATCH",
        target="Deployment.apps/v1 ns/x",
    )
    assert isinstance(invalid, errors.Invalid)
    assert invalid.causes == (errors.Cause("spec.replicas", "FieldValueInvalid", "bad"),)
    assert str(invalid) == 'PATCH Deployment.apps/v1 ns/x: Deployment.apps "x" is invalid'
    assert isinstance(errors.from_response(404, None), errors.NotFound)
    assert isinstance(errors.from_response(409, {}), errors.Conflict)
    assert isinstance(errors.from_response(403, {}), errors.Forbidden)
    assert isinstance(errors.from_response(503, "oops"), errors.ServerError)
    assert type(errors.from_response(418, {})) is errors.ApiError


APPS = {
    "kind": "APIResourceList",
    "resources": [
        {"name": "deployments", "kind": "Deployment", "namespaced": True},
        {"name": "deployments/status", "kind": "Deployment", "namespaced": True},
        {"name": "deployments/scale", "kind": "Scale", "namespaced": True},
        {"name": "controllerrevisions", "kind": "ControllerRevision", "namespaced": True},
    ],
}


def test_parse_resource_list() -> None:
    kinds = discovery.parse_resource_list("apps/v1", APPS)
    assert kinds == {
        "Deployment": discovery.Resource(
            "apps", "v1", "Deployment", "deployments", True, frozenset({"status", "scale"})
        ),
        "ControllerRevision": discovery.Resource(
            "apps", "v1", "ControllerRevision", "controllerrevisions", True
        ),
    }
    dep = kinds["Deployment"]
    assert dep.path("ns", "x", "status") == "/apis/apps/v1/namespaces/ns/deployments/x/status"
    assert dep.path(None) == "/apis/apps/v1/deployments"
    core = discovery.Resource("", "v1", "Namespace", "namespaces", False)
    assert core.path("ignored", "a") == "/api/v1/namespaces/a"


async def test_discovery_caches_and_rechecks_misses_after_ttl() -> None:
    calls: list[str] = []
    now = [0.0]
    served: dict[str, Any] = {"/apis/apps/v1": APPS}

    async def fetch(path: str) -> Any:
        calls.append(path)
        return served.get(path)

    disco = discovery.Discovery(fetch, miss_ttl=10, clock=lambda: now[0])
    assert (await disco.resource("apps/v1", "Deployment")).plural == "deployments"
    assert (await disco.resource("apps/v1", "Deployment")).plural == "deployments"
    assert calls == ["/apis/apps/v1"]
    assert await disco.find("kafka.strimzi.io/v1", "KafkaMirrorMaker2") is None
    assert await disco.find("kafka.strimzi.io/v1", "KafkaMirrorMaker2") is None
    assert calls == ["/apis/apps/v1", "/apis/kafka.strimzi.io/v1"]
    # the CRD gets installed: seen after the miss TTL
    served["/apis/kafka.strimzi.io/v1"] = {
        "resources": [
            {"name": "kafkamirrormaker2s", "kind": "KafkaMirrorMaker2", "namespaced": True}
        ]
    }
    now[0] = 11
    found = await disco.resource("kafka.strimzi.io/v1", "KafkaMirrorMaker2")
    assert found.plural == "kafkamirrormaker2s"
    with pytest.raises(errors.KindNotServed, match="does not serve Nope in apps/v1"):
        await disco.resource("apps/v1", "Nope")


def test_selector() -> None:
    assert client.selector({"b": "2", "a": "1"}) == "a=1,b=2"
    assert client.selector("x in (a)") == "x in (a)"
    assert client.selector(None) is None


async def test_unreachable_server_error_names_server_not_token() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creds = config.Credentials(server=f"https://127.0.0.1:{port}", token=SECRET_TOKEN)
    async with client.KubeClient(creds) as kube:
        with pytest.raises(errors.TransportError) as exc:
            await kube.get("v1", "ConfigMap", "x", "ns")
    assert f"127.0.0.1:{port}" in str(exc.value)
    assert SECRET_TOKEN not in str(exc.value)
