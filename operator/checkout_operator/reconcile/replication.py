"""Replication lag into CheckoutRegion status: read MM2's offsets, fold, patch (level-based).

For a region with peers: read the bootstrap addresses from the Secrets its MirrorMaker 2 uses
(in the cluster and namespace of its children), measure the lag of every flow peer -> region
(``checkout_operator.replication.lag``), record the gauges, and merge-patch ``status.replication``
and the ``ReplicationLagging`` condition. It holds the region's lock, so it never interleaves
with a reconcile's own status write (both patch ``conditions``). Secret values never reach the
status or logs: a missing Secret is reported by name and key.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.status import CheckoutRegionStatus
from checkout_operator.failover import summary
from checkout_operator.reconcile import index, region
from checkout_operator.render import mirrormaker
from checkout_operator.replication import lag, metrics
from checkout_operator.replication import status as rstatus

logger = logging.getLogger(__name__)

Measure = Callable[[str, Mapping[str, str], Sequence[str]], Awaitable[list[lag.PeerLag]]]
OWNED_KEYS: Final = ("replication", "conditions", "maxReplicationLagMessages")


class SecretMissing(Exception):
    pass


async def _secret_value(client: kclient.KubeClient, namespace: str, name: str, key: str) -> str:
    try:
        secret = await client.get("v1", "Secret", name, namespace)
    except kerrors.NotFound as exc:
        raise SecretMissing(f"Secret {namespace}/{name} not found") from exc
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        raise SecretMissing(f"Secret {namespace}/{name} has no key {key!r}")
    try:
        return base64.b64decode(raw).decode().strip()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SecretMissing(f"Secret {namespace}/{name} key {key!r} is not text") from exc


def fold(
    previous: Mapping[str, Any],
    lags: Sequence[lag.PeerLag],
    max_lag: int,
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The owned part of the new status (``replication`` and every condition, ours replaced)."""
    current = CheckoutRegionStatus.model_validate(
        {
            "replication": previous.get("replication") or [],
            "conditions": previous.get("conditions") or [],
        }
    )
    new = rstatus.apply(current, lags, max_lag, generation, now)
    dumped = new.model_dump(by_alias=True, mode="json")
    dumped["maxReplicationLagMessages"] = summary.max_lag(dumped["replication"])
    return {k: dumped[k] for k in OWNED_KEYS}


def _without_times(st: Mapping[str, Any]) -> Any:
    return [{k: v for k, v in p.items() if k != "observedAt"} for p in st.get("replication") or []]


def changed(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Lag or conditions moved (a new observedAt alone is not worth a write)."""
    return bool(
        _without_times(previous) != _without_times(new)
        or (previous.get("conditions") or []) != new["conditions"]
    )


async def _fleet_of(
    ctx: region.Context, me: CheckoutRegion, namespace: str
) -> list[CheckoutRegion]:
    """The valid CheckoutRegions of ``me``'s fleet in its namespace (residency of the filters)."""
    out = [me]
    for body in await ctx.client.list(region.API_VERSION, region.REGION_KIND, namespace):
        try:
            other = load.parse({k: v for k, v in body.items() if k != "status"})
        except (ValidationError, ValueError):
            continue
        if (
            isinstance(other, CheckoutRegion)
            and other.spec.fleet == me.spec.fleet
            and other.spec.region != me.spec.region
        ):
            out.append(other)
    return out


async def observe(
    ctx: region.Context, ref: index.Ref, measure: Measure = lag.measure
) -> dict[str, Any] | None:
    """Measure and record the replication lag of region ``ref``; the status written, if any."""
    async with ctx.lock(ref):
        body = await ctx.client.get_or_none(
            region.API_VERSION, region.REGION_KIND, ref.name, ref.namespace
        )
        if body is None:
            return None
        try:
            parsed = load.parse({k: v for k, v in body.items() if k != "status"})
        except (ValidationError, ValueError):
            return None  # the reconcile reports an invalid spec
        if not isinstance(parsed, CheckoutRegion) or not parsed.spec.replication.peers:
            return None
        rep = parsed.spec.replication
        placement = region.placement_of(body)
        target = await region.target_client(ctx, placement)
        bootstraps: dict[str, str] = {}
        problem = ""
        try:
            for alias, secret in mirrormaker.bootstrap_secrets(parsed):
                bootstraps[alias] = await _secret_value(
                    target, placement.namespace, secret.name, secret.key
                )
        except SecretMissing as exc:
            problem = str(exc)
        own = parsed.spec.region
        peers = {p.region: bootstraps.get(p.region, "") for p in rep.peers}
        if problem:
            lags = [lag.PeerLag(p, error=f"lag from {p} unknown: {problem}") for p in sorted(peers)]
        else:
            fleet = await _fleet_of(ctx, parsed, ref.namespace)
            patterns = mirrormaker.effective_topic_patterns(parsed, fleet)
            lags = await measure(bootstraps[own], peers, patterns)
        metrics.record(own, lags, rep.max_lag_on_failover)
        previous = body.get("status") or {}
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        new = fold(previous, lags, rep.max_lag_on_failover, generation, ctx.clock())
        if not changed(previous, new):
            return None
        await ctx.client.patch_status(
            region.API_VERSION, region.REGION_KIND, ref.name, ref.namespace, new
        )
        return new
