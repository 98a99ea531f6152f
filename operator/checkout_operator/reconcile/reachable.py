"""The ``RemoteClusterReachable`` condition of one CheckoutRegion: written (with an Event and
the ``checkout_operator_remote_cluster_reachable`` gauge) only when it changes."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final

from checkout_kube import client as kclient
from checkout_operator import metrics
from checkout_operator.kube import reachability
from checkout_operator.reconcile import index, region, status

CONDITION: Final = "RemoteClusterReachable"


def current(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (body.get("status") or {}).get("conditions") or ():
        if cond.get("type") == CONDITION:
            return cond  # type: ignore[no-any-return]
    return None


def conditions_with(
    body: Mapping[str, Any], state: reachability.Reachability, ctx: region.Context
) -> list[dict[str, Any]] | None:
    """The region's conditions with ``state`` in place; None when it is already there."""
    prev = list((body.get("status") or {}).get("conditions") or ())
    old = current(body)
    want: status.Status = "True" if state.reachable else "False"
    if (
        old is not None
        and old.get("status") == want
        and old.get("reason") == state.reason
        and old.get("message") == state.message
    ):
        return None
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    new = status.condition(
        prev, CONDITION, want, state.reason, state.message, generation, ctx.clock()
    )
    return [dict(c) for c in prev if c.get("type") != CONDITION] + [new]


async def record(ctx: region.Context, ref: index.Ref, state: reachability.Reachability) -> bool:
    """Put ``state`` on region ``ref``; True when the status was written (it changed)."""
    metrics.REMOTE_REACHABLE.labels(namespace=ref.namespace, name=ref.name).set(
        1 if state.reachable else 0
    )
    client: kclient.KubeClient = ctx.client
    body = await client.get_or_none(region.API_VERSION, region.REGION_KIND, ref.name, ref.namespace)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = conditions_with(body, state, ctx)
    if conditions is None:
        return False
    old = current(body)
    # at the version read: a status another writer put there since is not overwritten (a
    # Conflict is logged by the caller and this state written again on the next probe)
    await client.patch_status(
        region.API_VERSION,
        region.REGION_KIND,
        ref.name,
        ref.namespace,
        {"conditions": conditions},
        resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""),
    )
    if old is None or (old.get("status") == "True") != state.reachable:
        await client.post_event(
            body,
            type_="Normal" if state.reachable else "Warning",
            reason=CONDITION if state.reachable else f"RemoteCluster{state.reason}",
            message=state.message,
        )
    return True


def forget(ref: index.Ref) -> None:
    """The region left its remote cluster: drop its gauge."""
    with contextlib.suppress(KeyError):
        metrics.REMOTE_REACHABLE.remove(ref.namespace, ref.name)
