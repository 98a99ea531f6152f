"""Imperative failover requests (switchover, drain, return-home, pause, resume). Pure.

A request arrives as the annotation ``checkout-operator.io/request`` on a CheckoutRegion, a JSON
object ``{"id", "action", "target"?, "requestedBy"?}`` written by ``kubectl checkout`` or an
Argo CD resource action. The spec is never rewritten (Argo CD self-heal would revert it): an
accepted request is kept in force in ``status.overrides``, on top of the spec, and the outcome
of the last one in ``status.request``. A request is consumed once per id, so re-applying the
same annotation (or a Git sync that leaves it alone) neither repeats nor undoes it.

Whether a move is accepted is the failover decision's own answer: the request is applied to a
copy of the observation and :func:`decide` plans it; every market the region writes must then be
fenced towards the asked region, else the request is refused with the plan's blockers
(residency, lag budget, minimum dwell, target unhealthy or draining).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover.decide import (
    Fence,
    Lease,
    MarketPlan,
    Observation,
    RegionInfo,
    decide,
)
from checkout_operator.failover.health import Health
from checkout_operator.failover.plan import region_info

ANNOTATION: Final = "checkout-operator.io/request"
ACTIONS: Final = ("switchover", "drain", "return-home", "pause", "resume")
MAX_ID: Final = 128

Outcome = Literal["Accepted", "Refused"]


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    action: str
    target: str = ""
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class Overrides:
    """``status.overrides``: what accepted requests keep in force."""

    automatic_failover_paused: bool = False
    drain: bool = False
    target: str = ""
    return_home: bool = False
    request_id: str = ""

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> Overrides:
        raw = (status or {}).get("overrides") or {}
        return cls(
            automatic_failover_paused=bool(raw.get("automaticFailoverPaused")),
            drain=bool(raw.get("drain")),
            target=str(raw.get("target") or ""),
            return_home=bool(raw.get("returnHome")),
            request_id=str(raw.get("requestId") or ""),
        )

    def to_status(self) -> dict[str, Any]:
        return {
            "automaticFailoverPaused": self.automatic_failover_paused,
            "drain": self.drain,
            "target": self.target,
            "returnHome": self.return_home,
            "requestId": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    request: Request
    outcome: Outcome
    message: str
    overrides: Overrides
    """In force after the request (unchanged when refused)."""


class BadRequest(ValueError):
    """The annotation is not a request: the message says which field."""


def parse(text: str) -> Request:
    """The request in an annotation value; :class:`BadRequest` names what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"{ANNOTATION} is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadRequest(f"{ANNOTATION} must be a JSON object")
    rid, action = raw.get("id"), raw.get("action")
    if not isinstance(rid, str) or not rid or len(rid) > MAX_ID:
        raise BadRequest(f"{ANNOTATION}.id must be a string of 1 to {MAX_ID} characters")
    target = raw.get("target", "")
    by = raw.get("requestedBy", "")
    if not isinstance(target, str) or not isinstance(by, str):
        raise BadRequest(f"{ANNOTATION}.target and .requestedBy must be strings")
    return Request(rid, str(action), target, by[:256])


def apply(info: RegionInfo, spec_targets: tuple[str, ...], ov: Overrides) -> RegionInfo:
    """The region as the decision sees it with the overrides in force."""
    targets = spec_targets
    if ov.target:
        targets = (ov.target, *(t for t in spec_targets if t != ov.target))
    by_request = (ov.drain and not info.drain) or (ov.return_home and not info.return_home)
    return replace(
        info,
        actor=f"request {ov.request_id}" if by_request and ov.request_id else info.actor,
        policy="Manual" if ov.automatic_failover_paused else info.policy,
        drain=info.drain or ov.drain,
        return_home=info.return_home or ov.return_home,
        targets=targets,
    )


def with_region(obs: Observation, info: RegionInfo) -> Observation:
    return replace(obs, regions={**obs.regions, info.name: info})


def _fences(obs: Observation) -> dict[str, Fence]:
    return {a.market: a for a in decide(obs).actions if isinstance(a, Fence)}


def _why(plan: MarketPlan | None, target: str = "") -> str:
    if plan is None:
        return "no plan"
    about_target = [c for c in plan.checks if target and c.startswith(f"{target}:")]
    if about_target and not (plan.blockers and plan.state != "Fencing"):
        return "; ".join(about_target)
    if plan.blockers:
        return "; ".join(plan.blockers)
    return plan.message


def _plans(obs: Observation) -> dict[str, MarketPlan]:
    return {p.market: p for p in decide(obs).markets}


def _move(obs: Observation, region: str, req: Request, ov: Overrides) -> Verdict:
    info = obs.regions[region]
    if req.target and req.target not in obs.regions:
        return _refuse(req, ov, f"{req.target} is not a region of the fleet")
    if req.target == region:
        return _refuse(req, ov, f"{region} cannot switch over to itself")
    if req.action == "switchover" and not req.target:
        return _refuse(req, ov, "switchover needs a target region")
    written = sorted(m for m, lease in obs.leases.items() if lease and lease.holder == region)
    if not written:
        return _refuse(req, ov, f"{region} writes no market: nothing to move")
    moving = lease_states(obs, written)
    if moving:
        return _refuse(req, ov, f"a move is in progress ({moving}): wait for it to finish")
    new = replace(ov, drain=True, target=req.target, return_home=False, request_id=req.id)
    trial = with_region(obs, apply(info, info.targets, new))
    fences, plans = _fences(trial), _plans(trial)
    blocked = [
        f"{m}: {_why(plans.get(m), req.target)}"
        for m in written
        if m not in fences or (req.target and fences[m].to != req.target)
    ]
    if blocked:
        return _refuse(req, ov, "; ".join(blocked))
    where = req.target or ", ".join(sorted({fences[m].to for m in written}))
    return Verdict(req, "Accepted", f"moving {', '.join(written)} from {region} to {where}", new)


def lease_states(obs: Observation, markets: list[str]) -> str:
    return ", ".join(
        m for m in markets if (lease := obs.leases.get(m)) is not None and lease.state != "Serving"
    )


def _return_home(obs: Observation, region: str, req: Request, ov: Overrides) -> Verdict:
    info = obs.regions[region]
    away = sorted(
        m
        for m in info.home_markets
        if (lease := obs.leases.get(m)) is not None and lease.holder != region
    )
    new = replace(ov, drain=False, target="", return_home=True, request_id=req.id)
    if info.drain:
        return _refuse(req, ov, "spec.failover.drain is true (in Git): remove it to return home")
    if not away:
        return Verdict(
            req,
            "Accepted",
            f"every market of {region} is home already",
            replace(new, return_home=False),
        )
    trial = with_region(obs, apply(info, info.targets, new))
    fences, plans = _fences(trial), _plans(trial)
    blocked = [
        f"{m}: {_why(plans.get(m))}" for m in away if m not in fences or fences[m].to != region
    ]
    if blocked:
        return _refuse(req, ov, "; ".join(blocked))
    return Verdict(req, "Accepted", f"moving {', '.join(away)} back to {region}", new)


def _refuse(req: Request, ov: Overrides, why: str) -> Verdict:
    return Verdict(req, "Refused", why, ov)


def evaluate(obs: Observation, region: str, req: Request, ov: Overrides) -> Verdict:
    """Accept or refuse ``req`` on ``region`` (whose RegionInfo in ``obs`` is the spec's)."""
    if region not in obs.regions:
        return _refuse(req, ov, f"{region} is not in the fleet's observation")
    if req.action == "pause":
        new = replace(ov, automatic_failover_paused=True, request_id=req.id)
        return Verdict(req, "Accepted", "automatic failover paused", new)
    if req.action == "resume":
        new = replace(ov, automatic_failover_paused=False, request_id=req.id)
        return Verdict(req, "Accepted", "automatic failover resumed", new)
    if req.action in ("switchover", "drain"):
        return _move(obs, region, req, ov)
    if req.action == "return-home":
        return _return_home(obs, region, req, ov)
    return _refuse(req, ov, f"unknown action {req.action!r} (one of {', '.join(ACTIONS)})")


def settle(obs: Observation, region: str, ov: Overrides) -> Overrides:
    """Drop a return-home once every home market is written at home again."""
    info = obs.regions.get(region)
    if info is None or not ov.return_home:
        return ov
    home = [obs.leases.get(m) for m in info.home_markets]
    if all(
        lease is not None and lease.holder == region and lease.state == "Serving" for lease in home
    ):
        return replace(ov, return_home=False)
    return ov


def overrides_of(region: CheckoutRegion) -> Overrides:
    if region.status is None:
        return Overrides()
    return Overrides.from_status(region.status.model_dump(by_alias=True, mode="json"))


def preview(
    regions: Sequence[CheckoutRegion],
    leases: Mapping[str, Lease],
    name: str,
    req: Request,
    now: float,
) -> Verdict:
    """What the operator would answer to ``req`` on region ``name`` (``--dry-run``): the same
    judgement, on the fleet as its status shows it (health as last probed)."""
    me = next((r for r in regions if r.spec.region == name), None)
    if me is None:
        return _refuse(req, Overrides(), f"no region {name}")
    fleet = [r for r in regions if r.spec.fleet == me.spec.fleet]
    infos: dict[str, RegionInfo] = {}
    for r in fleet:
        state = r.status.health.state if r.status is not None else "Unknown"
        health = Health(state if state != "Unknown" else "Healthy", since=now - 10**9)
        info = region_info(r, health)
        infos[r.spec.region] = (
            info if r.spec.region == name else apply(info, info.targets, overrides_of(r))
        )
    markets = {m.country for r in fleet for m in r.spec.home_markets}
    obs = Observation(now, infos, {m: leases.get(m) for m in sorted(markets)})
    return evaluate(obs, name, req, overrides_of(me))
