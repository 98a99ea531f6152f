"""Helpers for the Argo CD stack tests: requests on a running fleet, and dumping the
CheckoutRegion objects the operator wrote as Argo CD testdata."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from checkout_operator.failover import requests as freq
from checkout_operator.reconcile import region
from failover.fleet_env import Fleet
from stack import operator_support as sup

DROPPED_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp")
NAMESPACE = "checkout"


async def request(fleet: Fleet, name: str, action: str, target: str = "") -> str:
    """Annotate region ``name`` with a request (what ``kubectl checkout`` and the Argo CD
    actions write); its id."""
    rid = f"test-{uuid.uuid4().hex[:8]}"
    body = {"id": rid, "action": action, "requestedBy": "test"}
    if target:
        body["target"] = target
    await fleet.client.merge_patch(
        region.API_VERSION,
        region.REGION_KIND,
        name,
        fleet.ns,
        {"metadata": {"annotations": {freq.ANNOTATION: json.dumps(body)}}},
    )
    return rid


async def outcome(fleet: Fleet, name: str, rid: str) -> dict[str, Any]:
    """The recorded outcome of request ``rid`` (waits for the operator to consume it)."""

    async def recorded() -> dict[str, Any] | None:
        st = (await fleet.body(name)).get("status") or {}
        rec: dict[str, Any] | None = st.get("request")
        return rec if rec and rec.get("id") == rid else None

    return await sup.eventually(recorded, within=30, what=f"request {rid} consumed")


def sanitized(body: dict[str, Any], namespaces: dict[str, str]) -> dict[str, Any]:
    """A dumped object without server bookkeeping, its random namespaces renamed."""
    obj = json.loads(json.dumps(body))
    meta = obj["metadata"]
    for key in DROPPED_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        meta.pop("annotations", None)
    text = json.dumps(obj)
    for old, new in sorted(namespaces.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    out: dict[str, Any] = json.loads(text)
    return out


def write_yaml(path: Path, obj: dict[str, Any], header: str) -> None:
    path.write_text(header + yaml.safe_dump(obj, sort_keys=False, width=100))
