"""Clients for remote clusters, built from a kubeconfig kept in a Secret (data key ``kubeconfig``).

The kubeconfig text is decoded in memory, never logged, never put into an error message.
Clients are cached per Secret and rebuilt when the Secret's resourceVersion changes.

Whoever can write a Secret in a watched namespace writes the kubeconfig: it may carry only
inline credentials and ``https`` servers (``checkout_kube.policy``),
checked before anything in it is used (no file it names is read, no server it names is called).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any, Final

import yaml

from checkout_kube import client, config, errors
from checkout_kube import policy as kubeconfig_policy

KUBECONFIG_KEY: Final = "kubeconfig"
REMOTE_FIELD: Final = "spec.remoteCluster.kubeconfigSecretRef"
LEASE_FIELD: Final = "spec.remoteCluster.leaseKubeconfigSecretRef"


class KubeconfigNotAllowed(errors.ConfigError):
    """A kubeconfig from a Secret uses a file, a program, plain http or skips TLS checks."""


class SecretMissing(errors.ConfigError):
    """The Secret that should hold the kubeconfig does not exist."""


async def checked_kubeconfig(
    kube: client.KubeClient, namespace: str, name: str, key: str, field: str
) -> tuple[str, str]:
    """(kubeconfig text, the Secret's resourceVersion) of Secret ``name`` key ``key``, read
    with ``kube``, after the policy check; errors name ``field`` and never quote the text."""
    try:
        secret = await kube.get("v1", "Secret", name, namespace)
    except errors.NotFound:
        what = "the remote cluster's kubeconfig" if field == REMOTE_FIELD else field
        raise SecretMissing(f"Secret {namespace}/{name} ({what}) does not exist") from None
    data = secret.get("data") or {}
    raw = data.get(key)
    if not raw:
        raise errors.ConfigError(f"Secret {namespace}/{name} has no data key {key!r}")
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise errors.ConfigError(
            f"Secret {namespace}/{name} key {key!r} is not base64-encoded UTF-8"
        ) from None
    source = f"Secret {namespace}/{name} key {key!r}"
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        raise errors.ConfigError(f"{source}: not a valid YAML kubeconfig") from None
    try:
        kubeconfig_policy.check(doc, field)
    except kubeconfig_policy.NotAllowed as exc:
        raise KubeconfigNotAllowed(f"{exc} ({source})") from exc
    return text, str((secret.get("metadata") or {}).get("resourceVersion", ""))


async def credentials_from_secret(
    local: client.KubeClient,
    namespace: str,
    name: str,
    key: str = KUBECONFIG_KEY,
    field: str = REMOTE_FIELD,
) -> tuple[config.Credentials, str]:
    """(credentials, the Secret's resourceVersion) for the kubeconfig in Secret ``name``."""
    text, version = await checked_kubeconfig(local, namespace, name, key, field)
    creds = config.from_kubeconfig_text(text, source=f"Secret {namespace}/{name} key {key!r}")
    return creds, version


class RemoteClients:
    """A cache of remote-cluster clients keyed by the Secret that holds their kubeconfig."""

    def __init__(self, local: client.KubeClient) -> None:
        self._local = local
        self._clients: dict[tuple[str, str, str], tuple[str, client.KubeClient]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def get(self, namespace: str, name: str, key: str = KUBECONFIG_KEY) -> client.KubeClient:
        """The client of the kubeconfig now in the Secret: a changed Secret (resourceVersion)
        builds a new one and closes the old one's connections. One caller at a time per
        Secret (reconciles and the remote watches ask concurrently): one client per version."""
        ident = (namespace, name, key)
        async with self._locks.setdefault(ident, asyncio.Lock()):
            creds, version = await credentials_from_secret(self._local, namespace, name, key)
            cached = self._clients.get(ident)
            if cached is not None and cached[0] == version:
                return cached[1]
            remote = client.KubeClient(
                creds,
                field_manager=self._local.field_manager,
                name=f"remote ({namespace}/{name})",
                on_write=self._local.on_write,
            )
            self._clients[ident] = (version, remote)
            if cached is not None:
                await cached[1].aclose()
            return remote

    def write_count(self) -> int:
        """Write requests sent to every remote cluster so far."""
        return sum(remote.write_count for _, remote in self._clients.values())

    async def aclose(self) -> None:
        for _, remote in self._clients.values():
            await remote.aclose()
        self._clients.clear()
