"""Consume imperative requests (annotation ``checkout-operator.io/request``) in the failover
engine's round: each new request id is judged by :mod:`checkout_operator.failover.requests`
against the round's observation, its outcome written to ``status.request`` (+ an Event), and
the overrides in force (``status.overrides``) applied to the observation the round decides on.

The hook into the engine is one call, :func:`consume`, between building the observation and
deciding."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover import requests as freq
from checkout_operator.failover.decide import Observation
from checkout_operator.reconcile import region

logger = logging.getLogger(__name__)

Members = Mapping[str, tuple[dict[str, Any], CheckoutRegion]]


def _request_of(body: Mapping[str, Any]) -> freq.Request | freq.Verdict | None:
    """The annotation's request, a refusal of an unreadable one, or None."""
    text = ((body.get("metadata") or {}).get("annotations") or {}).get(freq.ANNOTATION)
    if not text:
        return None
    try:
        return freq.parse(text)
    except freq.BadRequest as exc:
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        req = freq.Request(f"invalid-{digest}", "invalid")
        return freq.Verdict(req, "Refused", str(exc), freq.Overrides())


def record(verdict: freq.Verdict, now: str) -> dict[str, Any]:
    req = verdict.request
    return {
        "id": req.id,
        "action": req.action,
        "target": req.target,
        "outcome": verdict.outcome,
        "message": verdict.message,
        "time": now,
        "requestedBy": req.requested_by,
    }


async def consume(
    client: kclient.KubeClient,
    obs: Observation,
    members: Members,
    now: str,
    post_event: Callable[[Mapping[str, Any], str, str, str], Awaitable[None]],
) -> Observation:
    """The observation with every region's overrides in force, after judging new requests."""
    overrides = {
        name: freq.Overrides.from_status(body.get("status")) for name, (body, _) in members.items()
    }
    spec_infos = dict(obs.regions)

    def applied(except_: str | None = None) -> Observation:
        infos = {
            n: info if n == except_ else freq.apply(info, info.targets, overrides[n])
            for n, info in spec_infos.items()
        }
        return Observation(obs.now, infos, obs.leases, obs.store_reachable)

    for name, (body, _) in sorted(members.items()):
        if not obs.store_reachable or name not in spec_infos:
            continue
        found = _request_of(body)
        last = ((body.get("status") or {}).get("request") or {}).get("id")
        new_status: dict[str, Any] = {}
        if found is not None:
            req = found.request if isinstance(found, freq.Verdict) else found
            if req.id != last:
                if isinstance(found, freq.Verdict):
                    verdict = replace(found, overrides=overrides[name])
                else:
                    trial = applied(except_=name)
                    verdict = freq.evaluate(trial, name, found, overrides[name])
                overrides[name] = verdict.overrides
                new_status["request"] = record(verdict, now)
                kind = "Normal" if verdict.outcome == "Accepted" else "Warning"
                await post_event(
                    body,
                    kind,
                    f"Request{verdict.outcome}",
                    f"{req.action} {req.id}: {verdict.message}",
                )
                logger.info("%s: request %s %s: %s", name, req.id, verdict.outcome, verdict.message)
        settled = freq.settle(obs, name, overrides[name])
        if settled != overrides[name] or "request" in new_status:
            overrides[name] = settled
            new_status["overrides"] = settled.to_status()
        if new_status:
            try:
                await region.patch_region_status(client, body, new_status)
            except kerrors.KubeError as exc:
                logger.warning("request status of %s not written: %s", name, exc)
    return applied()
