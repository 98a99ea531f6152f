"""A region's children in its target cluster: list them, apply and prune a plan, name errors.

The cluster-facing half of a reconcile (:mod:`.region` holds the flow and the status): one list
request per served kind, applies one rank (kind group) at a time with the objects of a rank in
parallel, prunes the same way, and the condition reason a cluster error maps to.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator import metrics
from checkout_operator.kube import remote as kremote
from checkout_operator.reconcile import plan

Obj = dict[str, Any]
T = TypeVar("T")


async def list_optional(
    client: kclient.KubeClient, api_version: str, kind: str, namespace: str | None
) -> list[Obj]:
    if not await client.serves(api_version, kind):
        return []
    return await client.list(api_version, kind, namespace)


async def gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``aws`` concurrently; wait for all of them, then raise the first error if any."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


async def list_children(
    client: kclient.KubeClient,
    kinds: Sequence[tuple[str, str]],
    namespace: str,
    labels: Mapping[str, str],
) -> list[Obj]:
    """Live objects of ``kinds`` with ``labels`` in ``namespace`` (kinds not served are skipped).

    One list request per kind, concurrently."""
    served = [k for k in kinds if await client.serves(*k)]
    lists = await gather(client.list(av, kind, namespace, labels) for av, kind in served)
    return [obj for items in lists for obj in items]


def describe_api_error(exc: kerrors.KubeError) -> str:
    text = str(exc)
    if isinstance(exc, kerrors.ApiError) and exc.causes:
        causes = "; ".join(str(c) for c in exc.causes)
        if causes not in text:
            text = f"{text} ({causes})"
    return text


def error_reason(exc: kerrors.KubeError) -> tuple[str, bool]:
    """(condition reason, permanent?) of a cluster error."""
    if isinstance(exc, kerrors.Invalid):
        return "ApplyRejected", True
    if isinstance(exc, kerrors.Forbidden | kerrors.Unauthorized):
        return "Forbidden", False
    if isinstance(exc, kremote.KubeconfigNotAllowed):
        return "KubeconfigNotAllowed", False
    if isinstance(exc, kerrors.ConfigError):
        return "RemoteClusterUnavailable", False
    if isinstance(exc, kerrors.TransportError):
        return "ClusterUnreachable", False
    if isinstance(exc, kerrors.KindNotServed):
        return "KindNotServed", False
    return "ApplyFailed", False


def was_ready(body: Mapping[str, Any]) -> bool:
    st = body.get("status") or {}
    return st.get("phase") == "Ready" and st.get("observedGeneration") == (
        body.get("metadata") or {}
    ).get("generation")


@dataclass(frozen=True)
class Converged:
    """What :func:`apply_and_prune` did."""

    applied_live: tuple[Obj, ...]
    """The objects as the server answered the applies."""
    applied: tuple[str, ...]
    """``Kind/name (reason)`` of each child applied: ``Deployment/x (drift: spec.replicas)``."""
    pruned: tuple[str, ...]


async def apply_and_prune(
    target: kclient.KubeClient, todo: plan.Plan, body: Mapping[str, Any]
) -> Converged:
    """Apply ``todo.apply`` and delete ``todo.prune`` in ``target`` (``body``: the region, for
    telling a drift correction from a first apply); a refusal raises the client's error."""
    applied_live: list[Obj] = []
    applied: list[str] = []
    # One rank (kind group) at a time, in order; the objects of a rank in parallel.
    for _, group in itertools.groupby(todo.apply, key=lambda a: plan.apply_rank(a.obj)):
        items = list(group)
        responses = await gather(target.apply(item.obj) for item in items)
        for item, response in zip(items, responses, strict=True):
            applied_live.append(response)
            kind = str(item.obj.get("kind"))
            metrics.OBJECTS_APPLIED.labels(kind=kind).inc()
            if item.reason == "drift" or (item.reason == "missing" and was_ready(body)):
                metrics.DRIFT_CORRECTIONS.labels(kind=kind).inc()
            name = str(plan.key_of(item.obj))
            applied.append(
                f"{name} ({item.reason}: {item.detail})"
                if item.detail
                else f"{name} ({item.reason})"
            )
    pruned: list[str] = []
    for _, doomed in itertools.groupby(todo.prune, key=plan.apply_rank):
        objs = list(doomed)
        await gather(
            target.delete(
                str(o["apiVersion"]),
                str(o["kind"]),
                str((o.get("metadata") or {})["name"]),
                (o.get("metadata") or {}).get("namespace"),
            )
            for o in objs
        )
        for o in objs:
            metrics.OBJECTS_PRUNED.labels(kind=str(o["kind"])).inc()
            pruned.append(str(plan.key_of(o)))
    return Converged(tuple(applied_live), tuple(applied), tuple(pruned))
