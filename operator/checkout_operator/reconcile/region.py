"""One reconcile of one CheckoutRegion: render -> diff -> apply -> prune -> status.

This module holds the reconcile flow, its status write and the cleanup. The names, Context,
Desired and Result are in :mod:`.context`, the applies, prunes and error naming in
:mod:`.children`, the reconcile slots in :mod:`.slots`; the names callers use are re-exported
here (``__all__``).

All cluster I/O goes through ``checkout_kube``. A reconcile that finds nothing to do
makes reads only: zero write requests (no apply, no delete, no status patch, no event).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from checkout_kube import errors as kerrors
from checkout_operator import metrics
from checkout_operator.kube import remote as kremote
from checkout_operator.reconcile import children, errors, index, plan, status
from checkout_operator.reconcile.children import list_children
from checkout_operator.reconcile.context import (
    API_VERSION,
    BACKGROUND,
    GROUP,
    KNOWN_CHILD_KINDS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    REGION_KIND,
    REGION_LABEL,
    ROUTE_KIND,
    URGENT,
    Context,
    Desired,
    Obj,
    RemoteTarget,
    Renderer,
    Result,
    labels_for,
    owner_of,
    patch_region_status,
    placement_of,
    target_client,
)
from checkout_operator.reconcile.slots import Slots

__all__ = [
    "API_VERSION",
    "BACKGROUND",
    "GROUP",
    "KNOWN_CHILD_KINDS",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "REGION_KIND",
    "REGION_LABEL",
    "ROUTE_KIND",
    "STATUS_ATTEMPTS",
    "URGENT",
    "Context",
    "Desired",
    "Obj",
    "RemoteTarget",
    "Renderer",
    "Result",
    "Slots",
    "cleanup_region",
    "labels_for",
    "list_children",
    "owner_of",
    "patch_region_status",
    "placement_of",
    "reconcile_region",
    "target_client",
]

logger = logging.getLogger("checkout_operator.reconcile")

STATUS_ATTEMPTS: Final = 3
"""Status writes of one reconcile, when other writers changed the region since it was read."""


async def _write_status(
    ctx: Context, body: Mapping[str, Any], outcome: status.Outcome
) -> tuple[dict[str, Any], bool]:
    """Write the status ``outcome`` gives, computed from the region as it is: the patch holds
    only at the resourceVersion read, so conditions another writer added meanwhile (e.g.
    ``RemoteClusterReachable``) are read again and kept rather than overwritten."""
    api_version = str(body.get("apiVersion") or API_VERSION)
    kind = str(body.get("kind") or REGION_KIND)
    meta = body.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    for attempt in range(1, STATUS_ATTEMPTS + 1):
        previous = body.get("status") or {}
        new = status.compute(outcome, previous, ctx.clock())
        if not status.changed(previous, new):
            return new, False
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        try:
            await ctx.client.patch_status(
                api_version, kind, name, namespace, new, resource_version=version
            )
            break
        except kerrors.Conflict:
            if attempt == STATUS_ATTEMPTS:
                raise
            body = await ctx.client.get(api_version, kind, name, namespace)
    if status.degraded_transition(previous, new):
        await ctx.client.post_event(
            body, type_="Warning", reason=outcome.error_reason, message=outcome.error_message
        )
    return new, True


async def reconcile_region(
    ctx: Context,
    ref: index.Ref,
    *,
    on_start: Callable[[], object] | None = None,
    priority: int = URGENT,
) -> Result:
    """Bring the children of CheckoutRegion ``ref`` to its spec, then write its status.

    ``on_start`` is called once the reconcile holds its region's lock and a slot, just before
    it reads the cluster: a change seen after that needs another reconcile, one seen before
    does not. ``priority``: ``URGENT`` (a spec changed) or ``BACKGROUND`` (children moved,
    periodic resync), for the order in which waiting reconciles get a slot."""
    async with ctx.lock(ref), ctx.slot(priority):
        if on_start is not None:
            on_start()
        started = time.perf_counter()
        writes_before = _writes(ctx)
        try:
            result = await _reconcile(ctx, ref)
        finally:
            metrics.RECONCILE_SECONDS.labels(kind=REGION_KIND).observe(
                time.perf_counter() - started
            )
        writes = _writes(ctx) - writes_before
        if result.error_reason:
            metrics.RECONCILE_ERRORS.labels(kind=REGION_KIND, reason=result.error_reason).inc()
        if result.found:
            metrics.REGION_READY.labels(namespace=ref.namespace, name=ref.name).set(
                1 if result.ready else 0
            )
        return dataclasses.replace(result, writes=writes)


def _writes(ctx: Context) -> int:
    total = ctx.client.write_count
    if ctx.remotes is not None:
        total += ctx.remotes.write_count()
    return total


async def _reconcile(ctx: Context, ref: index.Ref) -> Result:
    # One list gives the region and its fleet peers (the fleet routing needs them all).
    regions = await ctx.client.list(API_VERSION, REGION_KIND, ref.namespace)
    body = next((r for r in regions if index.ref(r) == ref), None)
    if body is None:
        with contextlib.suppress(KeyError):
            metrics.REGION_READY.remove(ref.namespace, ref.name)
        return Result(ref, found=False)
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Result(ref)
    generation = int(meta.get("generation") or 0)
    routes = await children.list_optional(ctx.client, API_VERSION, ROUTE_KIND, ref.namespace)
    selected = index.routes_for(body, routes)

    try:
        desired = ctx.renderer(body, selected, regions)
    except errors.InvalidSpec as exc:
        outcome = status.Outcome(
            generation,
            error_reason="InvalidSpec",
            error_message=str(exc),
            permanent=True,
        )
        new, written = await _write_status(ctx, body, outcome)
        logger.warning("CheckoutRegion %s: invalid spec: %s", ref, exc)
        return Result(
            ref,
            status_written=written,
            error_reason="InvalidSpec",
            error_message=str(exc),
            permanent=True,
        )

    try:
        target = await target_client(ctx, desired)
        for name, key, field in desired.mounted_kubeconfigs:
            # not there yet: the pods wait for it (and the services check it when they read it)
            with contextlib.suppress(kremote.SecretMissing):
                await kremote.checked_kubeconfig(target, desired.namespace, name, key, field)
        owner = owner_of(body) if desired.remote is None else None
        objects = [plan.with_owner(o, owner) for o in desired.objects]
        kinds = plan.child_kinds(objects, ctx.known_kinds)
        live = await list_children(target, kinds, desired.namespace, labels_for(desired.region))
        todo = plan.plan(objects, live)
        done = await children.apply_and_prune(target, todo, body)
    except kerrors.KubeError as exc:
        reason, permanent = children.error_reason(exc)
        message = children.describe_api_error(exc)
        outcome = status.Outcome(
            generation,
            desired=len(desired.objects),
            error_reason=reason,
            error_message=message,
            permanent=permanent,
        )
        try:
            _, written = await _write_status(ctx, body, outcome)
        except kerrors.KubeError:
            written = False
        logger.warning("CheckoutRegion %s: %s: %s", ref, reason, message)
        return Result(
            ref,
            error_reason=reason,
            error_message=message,
            permanent=permanent,
            status_written=written,
        )

    health = [status.child_health(o) for o in (*done.applied_live, *todo.in_sync)]
    outcome = status.Outcome(
        generation,
        desired=len(objects),
        in_sync=len(objects),
        children=tuple(health),
    )
    applied, pruned = done.applied, done.pruned
    if applied or pruned:
        logger.info(
            "CheckoutRegion %s: applied %d, pruned %d: %s",
            ref,
            len(applied),
            len(pruned),
            ", ".join([*applied, *(f"{p} (pruned)" for p in pruned)]),
        )
    new, written = await _write_status(ctx, body, outcome)
    if applied or pruned:
        await ctx.client.post_event(
            body,
            type_="Normal",
            reason="Applied",
            message=f"applied {len(applied)} and pruned {len(pruned)} children"
            + (f": {', '.join([*applied, *pruned])}" if applied or pruned else ""),
        )
    return Result(
        ref,
        applied=applied,
        pruned=pruned,
        status_written=written,
        ready=new.get("phase") == "Ready",
    )


async def cleanup_region(ctx: Context, body: Mapping[str, Any]) -> list[str]:
    """Delete every child of the region in its target cluster (for remote regions: the
    finalizer's job; local children go with their owner through garbage collection)."""
    ref = index.ref(body)
    async with ctx.lock(ref):
        placement = placement_of(body)
        target = await target_client(ctx, placement)
        kinds = plan.child_kinds((), ctx.known_kinds)
        live = await list_children(target, kinds, placement.namespace, labels_for(placement.region))
        deleted: list[str] = []
        for obj in live:
            m = obj.get("metadata") or {}
            if await target.delete(
                str(obj["apiVersion"]), str(obj["kind"]), str(m["name"]), m.get("namespace")
            ):
                deleted.append(str(plan.key_of(obj)))
        metrics.REGION_READY.labels(namespace=ref.namespace, name=ref.name).set(0)
        return deleted
