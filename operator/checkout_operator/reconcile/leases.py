"""The operator's side of the market write leases (contract: ``checkout_contract.lease``).

Every change is a compare-and-swap (a merge patch with the resourceVersion that was read): a
lost race raises ``kube.errors.Conflict`` and the engine decides again from a fresh read. The
operator never renews a lease (the holder region does) and never promotes unless the pure
decision said the old writer acknowledged its fencing or its lease expired.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_operator.failover import decide as fd

KIND: Final = "Lease"


def to_decision(lease: contract.WriteLease) -> fd.Lease:
    return fd.Lease(
        market=lease.market,
        holder=lease.holder,
        epoch=lease.epoch,
        renewed_at=lease.renewed_at,
        duration=lease.duration,
        state=lease.state,
        fencing_to=lease.fencing_to,
        fencing_reason=lease.fencing_reason,
        acked_epoch=lease.acked_epoch,
        moved_at=lease.moved_at,
    )


async def read(
    client: kclient.KubeClient, namespace: str, fleet: str
) -> dict[str, contract.WriteLease]:
    """Market -> its lease, for one fleet."""
    items = await client.list(contract.API_VERSION, KIND, namespace, {contract.FLEET_LABEL: fleet})
    out: dict[str, contract.WriteLease] = {}
    for item in items:
        parsed = contract.WriteLease.parse(item)
        if parsed.market:
            out[parsed.market] = parsed
    return out


async def _put(client: kclient.KubeClient, obj: dict[str, Any]) -> contract.WriteLease:
    """Compare-and-swap: a merge patch with the resourceVersion ``obj`` was read at (annotations
    set to None are removed)."""
    meta = obj["metadata"]
    patch = {
        "metadata": {
            "resourceVersion": meta["resourceVersion"],
            "annotations": meta.get("annotations") or {},
            "labels": meta.get("labels") or {},
        },
        "spec": obj["spec"],
    }
    body = await client.merge_patch(
        contract.API_VERSION, KIND, meta["name"], meta["namespace"], patch
    )
    return contract.WriteLease.parse(body)


async def create(
    client: kclient.KubeClient,
    namespace: str,
    fleet: str,
    market: str,
    holder: str,
    duration: int,
    now: float,
) -> contract.WriteLease:
    """A Serving lease at epoch 1 (409 AlreadyExists -> ``kube.errors.Conflict``)."""
    obj = contract.build(fleet, namespace, market, holder, 1, duration, now)
    res = await client.resource(contract.API_VERSION, KIND)
    body = await client.request(
        "POST", res.path(namespace), body=obj, target=f"Lease {namespace}", kind=KIND
    )
    return contract.WriteLease.parse(body)


async def fence(
    client: kclient.KubeClient, lease: contract.WriteLease, to: str, reason: str
) -> contract.WriteLease:
    """Mark the lease Fencing towards ``to`` (CAS). The holder stops and acknowledges."""
    obj = copy.deepcopy(dict(lease.raw))
    notes = obj["metadata"].setdefault("annotations", {})
    notes[contract.STATE] = "Fencing"
    notes[contract.FENCING_TO] = to
    notes[contract.FENCING_REASON] = reason
    return await _put(client, obj)


async def promote(
    client: kclient.KubeClient,
    lease: contract.WriteLease,
    to: str,
    epoch: int,
    duration: int,
    now: float,
) -> contract.WriteLease:
    """Hand the lease to ``to`` at ``epoch`` (CAS on the fenced lease's resourceVersion)."""
    meta = lease.raw["metadata"]
    labels = meta.get("labels") or {}
    obj = contract.build(
        str(labels.get(contract.FLEET_LABEL, "")),
        str(meta["namespace"]),
        lease.market,
        to,
        epoch,
        duration,
        now,
        moved_at=now,
    )
    obj["metadata"]["resourceVersion"] = lease.resource_version
    # The previous fencing (and its acknowledgement) does not carry over to the new epoch.
    for key in (contract.FENCING_TO, contract.FENCING_REASON, contract.FENCED_ACK):
        obj["metadata"]["annotations"][key] = None
    return await _put(client, obj)
