"""Read a fleet from a cluster for the CLI (``status``, ``history``, ``plan --context``)."""

from __future__ import annotations

from pydantic import ValidationError

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover import decide as fd
from checkout_operator.reconcile import leases, region


async def read_regions(creds: kconfig.Credentials, namespace: str) -> list[CheckoutRegion]:
    """The valid CheckoutRegions of ``namespace``, with their status."""
    async with kclient.KubeClient(creds) as client:
        bodies = await client.list(region.API_VERSION, region.REGION_KIND, namespace)
    out = []
    for body in bodies:
        try:
            parsed = load.parse(body)
        except (load.InvalidObject, ValidationError, ValueError):
            try:
                parsed = load.parse({k: v for k, v in body.items() if k != "status"})
            except (load.InvalidObject, ValidationError, ValueError):
                continue
        if isinstance(parsed, CheckoutRegion):
            out.append(parsed)
    return out


async def read_leases(
    creds: kconfig.Credentials, namespace: str, fleets: set[str]
) -> dict[str, fd.Lease]:
    out: dict[str, fd.Lease] = {}
    async with kclient.KubeClient(creds) as client:
        for fleet in sorted(fleets):
            for market, lease in (await leases.read(client, namespace, fleet)).items():
                out[market] = leases.to_decision(lease)
    return out
