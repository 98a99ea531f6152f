"""A kubeconfig from a Secret may carry only inline credentials and https servers
(``checkout_kube.policy``), and every reader of one applies the check."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from checkout_kube import errors as kerrors
from checkout_kube import policy as kubeconfig_policy
from checkout_services.common import leasestore

FIELD = "spec.remoteCluster.kubeconfigSecretRef"
SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def doc(user: dict[str, Any] | None = None, **cluster: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://10.0.0.1:6443",
                    "certificate-authority-data": "Q0E=",
                    **cluster,
                },
            }
        ],
        "users": [{"name": "u", "user": user if user is not None else {"token": "t0k"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "n"}}],
        "current-context": "x",
    }


@pytest.mark.parametrize(
    "user",
    [
        {"token": "t0k"},
        {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"},
        {"token": "t0k", "extensions": [{"name": "x", "extension": {}}]},
    ],
)
def test_inline_credentials_and_https_pass(user: dict[str, Any]) -> None:
    kubeconfig_policy.check(doc(user), FIELD)
    kubeconfig_policy.check(
        doc(user, **{"tls-server-name": "kube", "insecure-skip-tls-verify": False})
    )


@pytest.mark.parametrize(
    ("user", "cluster", "path"),
    [
        ({"tokenFile": SA_TOKEN}, {}, "users[0].user.tokenFile"),
        ({"client-certificate": "/etc/c.crt", "client-key": "/etc/c.key"}, {},
         "users[0].user.client-certificate"),
        ({"client-key-data": "S0VZ", "client-key": "/etc/k"}, {}, "users[0].user.client-key"),
        ({"exec": {"command": "/bin/sh"}}, {}, "users[0].user.exec"),
        ({"auth-provider": {"name": "gcp"}}, {}, "users[0].user.auth-provider"),
        ({"username": "a", "password": "b"}, {}, "users[0].user.username"),
        ({"token": "t", "as": "system:admin"}, {}, "users[0].user.as"),
        (None, {"certificate-authority": "/etc/ca.crt"},
         "clusters[0].cluster.certificate-authority"),
        (None, {"proxy-url": "http://proxy:3128"}, "clusters[0].cluster.proxy-url"),
        (None, {"server": "http://attacker.example:80"}, "clusters[0].cluster.server"),
        (None, {"server": "HTTP://attacker.example"}, "clusters[0].cluster.server"),
        (None, {"insecure-skip-tls-verify": True}, "clusters[0].cluster.insecure-skip-tls-verify"),
    ],
)  # fmt: skip
def test_files_programs_http_and_skipped_tls_are_refused_naming_the_field(
    user: dict[str, Any] | None, cluster: dict[str, Any], path: str
) -> None:
    with pytest.raises(kubeconfig_policy.NotAllowed) as caught:
        kubeconfig_policy.check(doc(user, **cluster), FIELD)
    message = str(caught.value)
    assert message.startswith(f"{FIELD}: {path} ")
    assert message.endswith("in a kubeconfig from a Secret")
    assert caught.value.path == path
    # never a value: not the path it points at, not the URL, not a token
    for secret in (SA_TOKEN, "/etc/", "attacker", "/bin/sh", "t0k"):
        assert secret not in message


def test_exact_message_of_the_token_file_case() -> None:
    with pytest.raises(kubeconfig_policy.NotAllowed) as caught:
        kubeconfig_policy.check(doc({"tokenFile": SA_TOKEN}), FIELD)
    assert str(caught.value) == (
        "spec.remoteCluster.kubeconfigSecretRef: users[0].user.tokenFile is not allowed in a "
        "kubeconfig from a Secret"
    )


def test_every_entry_is_checked_not_only_the_current_context() -> None:
    bad = doc()
    bad["users"].append({"name": "spare", "user": {"tokenFile": SA_TOKEN}})
    with pytest.raises(kubeconfig_policy.NotAllowed, match=r"users\[1\]\.user\.tokenFile"):
        kubeconfig_policy.check(bad, FIELD)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("a string", "the document"),
        ({"clusters": {"c": {}}}, "clusters"),
        ({"users": ["u"]}, "users[0]"),
        ({"users": [{"name": "u", "user": "tok"}]}, "users[0].user"),
        ({"contexts": [{"name": "x", "context": {"cluster": "c", "token": "t"}}]},
         "contexts[0].context.token"),
        ({"clusters": [], "exec": {}}, "exec"),
    ],
)  # fmt: skip
def test_malformed_documents_are_refused(value: Any, path: str) -> None:
    with pytest.raises(kubeconfig_policy.NotAllowed) as caught:
        kubeconfig_policy.check(value, FIELD)
    assert caught.value.path == path


def test_services_lease_store_refuses_a_token_file_kubeconfig(tmp_path: pathlib.Path) -> None:
    """The mounted leaseKubeconfigSecretRef: the services read it with the same check."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(doc({"client-key": "/var/run/secrets/x", "client-certificate": "c"}))
    )
    with pytest.raises(kubeconfig_policy.NotAllowed, match=r"CHECKOUT_LEASE_KUBECONFIG: users"):
        leasestore.LeaseStore.from_kubeconfig(path, "fleet")
    path.write_text(json.dumps(doc(server="http://127.0.0.1:1")))
    with pytest.raises(kubeconfig_policy.NotAllowed, match=r"clusters\[0\]\.cluster\.server"):
        leasestore.LeaseStore.from_kubeconfig(path, "fleet")
    path.write_text(json.dumps(doc({"token": "t0k"})))
    # allowed by the policy: what fails next is the one client's TLS check of the fake CA
    with pytest.raises(kerrors.ConfigError, match=r"TLS material .* is unusable"):
        leasestore.LeaseStore.from_kubeconfig(path, "fleet")
