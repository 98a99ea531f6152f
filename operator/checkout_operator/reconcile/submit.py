"""Imperative requests from the CLI (``kubectl checkout switchover|drain|return-home|pause|
resume``): the same request path as the Argo CD actions, the annotation
``checkout-operator.io/request`` that the failover engine consumes (reconcile/requests.py)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from checkout_kube import client as kclient
from checkout_kube import config as kconfig
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover import requests as freq
from checkout_operator.reconcile import inspect, region


class NotFound(Exception):
    """No such CheckoutRegion (the message says where it looked)."""


@dataclass(frozen=True)
class Located:
    namespace: str
    name: str
    """The object's name (what the annotation goes on)."""
    region: str
    """Its spec.region (what the failover decision calls it)."""


async def locate(creds: kconfig.Credentials, namespace: str | None, name: str) -> Located:
    """The CheckoutRegion named ``name`` (object name or spec.region) in ``namespace``, or in
    any namespace when ``namespace`` is None (it must then be unique)."""
    async with kclient.KubeClient(creds) as client:
        bodies = await client.list(region.API_VERSION, region.REGION_KIND, namespace)
    found = [
        b for b in bodies if name in (b["metadata"]["name"], (b.get("spec") or {}).get("region"))
    ]
    where = f"namespace {namespace}" if namespace else "any namespace"
    if not found:
        raise NotFound(f"no CheckoutRegion {name} in {where}")
    if len(found) > 1:
        spots = ", ".join(
            sorted(f"{b['metadata']['namespace']}/{b['metadata']['name']}" for b in found)
        )
        raise NotFound(f"CheckoutRegion {name} is ambiguous in {where} ({spots}): pass -n")
    meta = found[0]["metadata"]
    return Located(meta["namespace"], meta["name"], str(found[0]["spec"].get("region") or name))


def new_request(action: str, target: str, by: str) -> freq.Request:
    return freq.Request(f"{by}-{uuid.uuid4().hex[:12]}", action, target, by)


def annotation(req: freq.Request) -> str:
    body: dict[str, str] = {"id": req.id, "action": req.action}
    if req.target:
        body["target"] = req.target
    body["requestedBy"] = req.requested_by
    return json.dumps(body, separators=(",", ":"))


async def preview(creds: kconfig.Credentials, at: Located, req: freq.Request) -> freq.Verdict:
    """What the operator would answer, judged here on the fleet's live status and leases."""
    regions: list[CheckoutRegion] = await inspect.read_regions(creds, at.namespace)
    leases = await inspect.read_leases(creds, at.namespace, {r.spec.fleet for r in regions})
    return freq.preview(regions, leases, at.region, req, time.time())


async def submit(
    creds: kconfig.Credentials, at: Located, req: freq.Request, wait_seconds: float
) -> dict[str, Any] | None:
    """Write the request, then wait up to ``wait_seconds`` for the operator's recorded outcome
    (``status.request``); None when it did not answer in time."""
    patch = {"metadata": {"annotations": {freq.ANNOTATION: annotation(req)}}}
    async with kclient.KubeClient(creds) as client:
        await client.merge_patch(
            region.API_VERSION, region.REGION_KIND, at.name, at.namespace, patch
        )
        try:
            async with asyncio.timeout(wait_seconds):
                return await _outcome(client, at, req.id)
        except TimeoutError:
            return None


async def _outcome(client: kclient.KubeClient, at: Located, rid: str) -> dict[str, Any]:
    while True:
        body = await client.get(region.API_VERSION, region.REGION_KIND, at.name, at.namespace)
        record: dict[str, Any] | None = (body.get("status") or {}).get("request") or None
        if record is not None and record.get("id") == rid:
            return record
        await asyncio.sleep(0.5)
