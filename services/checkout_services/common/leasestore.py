"""The market write Leases on the management cluster, as the services read and write them:
:class:`LeaseStore` lists, watches and compare-and-swaps them through the project's one
Kubernetes client (:mod:`checkout_kube`); :func:`store_from_env` builds it from the pod's env.
The contract is :mod:`checkout_contract.lease`; the keeper :mod:`checkout_services.common.lease`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from checkout_contract import env
from checkout_contract.lease import API_VERSION, FLEET_LABEL, LeaseFormatError, WriteLease
from checkout_kube import config as kconfig
from checkout_kube import errors as kerrors
from checkout_kube import policy
from checkout_kube.client import MERGE_PATCH, KubeClient
from checkout_kube.watch import list_watch

KIND: Final = "Lease"
FIELD_MANAGER: Final = "checkout-services"
log = logging.getLogger("checkout_services.common.leasestore")

LeaseStoreError = kerrors.KubeError
"""The lease store did not answer, refused, or answered something unreadable."""
Conflict = kerrors.Conflict
"""Compare-and-swap lost: the Lease changed since it was read."""


def _parse(obj: Mapping[str, Any], call: str) -> WriteLease:
    try:
        return WriteLease.parse(obj)
    except LeaseFormatError as exc:
        raise kerrors.UnreadableAnswer(f"{call}: {exc}") from exc


class LeaseStore:
    """List, watch and compare-and-swap the market Leases of one namespace."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    @classmethod
    def connect(
        cls, creds: kconfig.Credentials, namespace: str, *, timeout: float = 2.0
    ) -> LeaseStore:
        """A store with its own client: short timeouts and few retries (a keeper that cannot
        renew must learn it well within the lease; its next pass tries again)."""
        client = KubeClient(
            creds, field_manager=FIELD_MANAGER, timeout=timeout, name="lease store", retries=2
        )
        return cls(client, namespace)

    @classmethod
    def from_kubeconfig(
        cls, path: str | Path, namespace: str, *, timeout: float = 2.0
    ) -> LeaseStore:
        """A store from the kubeconfig at ``path``. It comes from a Secret (the region's
        ``leaseKubeconfigSecretRef``), so it may carry only inline credentials and an https
        server: :func:`checkout_kube.policy.check` runs first and raises its ``NotAllowed``
        naming the field (never a value)."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise kerrors.ConfigError(f"{path}: not a valid YAML kubeconfig") from exc
        policy.check(doc, env.LEASE_KUBECONFIG)
        creds = kconfig.from_kubeconfig_text(text, source=str(path))
        return cls.connect(creds, namespace, timeout=timeout)

    @property
    def server(self) -> str:
        return self.client.creds.server

    async def aclose(self) -> None:
        await self.client.aclose()

    async def list(self, fleet: str) -> list[WriteLease]:
        items = await self.client.list(API_VERSION, KIND, self.namespace, {FLEET_LABEL: fleet})
        return [_parse(item, f"list of the Leases of fleet {fleet}") for item in items]

    async def get(self, name: str) -> WriteLease:
        """One Lease by name (re-read after a lost compare-and-swap)."""
        return _parse(await self.client.get(API_VERSION, KIND, name, self.namespace), name)

    async def watch(self, fleet: str, *, timeout_seconds: int = 60) -> AsyncIterator[WriteLease]:
        """The fleet's Leases as they change, forever (:func:`checkout_kube.watch.list_watch`:
        resumes, relists on 410, backs off on errors). Needs the ``watch`` verb on leases;
        a Lease that does not parse is logged and skipped."""
        async for type_, obj in list_watch(
            self.client,
            API_VERSION,
            KIND,
            self.namespace,
            {FLEET_LABEL: fleet},
            timeout_seconds=timeout_seconds,
        ):
            if type_ not in ("ADDED", "MODIFIED"):
                continue
            try:
                yield WriteLease.parse(obj)
            except LeaseFormatError as exc:
                log.warning("lease watch: %s (skipped)", exc)

    async def replace(self, obj: Mapping[str, Any]) -> WriteLease:
        """Write ``obj`` (which carries the resourceVersion it was read at): compare-and-swap,
        as a JSON merge patch (verb ``patch``) whose resourceVersion the server checks."""
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "annotations": meta.get("annotations") or {},
            },
            "spec": obj["spec"],
        }
        res = await self.client.resource(API_VERSION, KIND)
        body = await self.client.request(
            "PATCH",
            res.path(self.namespace, meta["name"]),
            body=patch,
            content_type=MERGE_PATCH,
            target=f"Lease {self.namespace}/{meta['name']}",
            kind=KIND,
        )
        return _parse(body, f"patch of Lease {meta['name']}")


def store_from_env() -> LeaseStore | None:
    """The lease store named by ``CHECKOUT_LEASE_NAMESPACE`` (unset: None, no lease check) and
    ``CHECKOUT_LEASE_KUBECONFIG`` (a kubeconfig for the management cluster; unset: the pod's
    service account). Raises ``checkout_kube.errors.ConfigError`` naming what is wrong."""
    namespace = os.environ.get(env.LEASE_NAMESPACE)
    if not namespace:
        return None
    path = os.environ.get(env.LEASE_KUBECONFIG)
    if path:
        return LeaseStore.from_kubeconfig(path, namespace)
    return LeaseStore.connect(kconfig.in_cluster(), namespace)
