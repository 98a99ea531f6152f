"""Who should write each market next, and what to do about it. Pure and deterministic.

Input: an :class:`Observation` (the time, every region's health and failover spec, the current
write lease of every market, whether the lease store answered). Output: a :class:`Decision`,
the actions to carry out (create a lease, fence the writer, promote the target) and, per
market, its state and the reasons nothing moves (blockers).

The rules (design section 3):

* The lease store unreachable -> freeze: no action at all.
* A writer counts as down only when it is Unhealthy (``failureThreshold`` failed probes in a
  row) *and* at least one other region of the fleet is Healthy from here (a witness: the
  operator itself is not the one cut off), and its home region's policy is Automatic.
* A market moves to the first candidate that is Healthy, not draining, legal for the market's
  residency and within the lag budget (``maxLagOnFailover``; 0 for a planned drain) unless
  ``acceptDataLoss``. Candidates: for a market at home, the home region's ``failover.targets``
  in order; for a market away, its home region first, then the targets.
* No move of a market within ``minDwellSeconds`` of its previous move.
* Failback (market away, home Healthy): ``Automatic`` after ``soakSeconds`` of health, or
  ``returnHome`` in spec (a Git commit) once Healthy; ``Manual`` otherwise.
* A move is two steps: fence (the lease goes Fencing: the writer stops taking writes), then
  promote (holder = target, epoch + 1) only after the old writer acknowledged the fencing or
  its lease expired.
* ``dryRun``: the actions are computed and reported, never carried out.

Over 400 lines on purpose: the rules above are one pure function of one Observation, and they
read top to bottom here in the order they apply; the watching, probing, moving and recording
around it live in their own modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from checkout_contract import lease as contract
from checkout_operator.api.residency import MarketResidency
from checkout_operator.failover.health import Health

LeaseState = Literal["Serving", "Fencing"]
MarketState = Literal["Serving", "Fencing", "Down"]
Reason = Literal["ProbeFailures", "Drain", "Failback", "ReturnHome"]


@dataclass(frozen=True, slots=True)
class RegionInfo:
    """What the decision needs of one region: spec and the operator's view of its health."""

    name: str
    jurisdiction: str
    health: Health
    home_markets: Mapping[str, MarketResidency] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    policy: Literal["Automatic", "Manual"] = "Automatic"
    failback: Literal["Manual", "Automatic"] = "Manual"
    soak_seconds: float = 600
    min_dwell_seconds: float = 300
    drain: bool = False
    return_home: bool = False
    dry_run: bool = False
    accept_data_loss: bool = False
    max_lag: int = 100
    lag_from: Mapping[str, int | None] = field(default_factory=dict)
    """Replication lag (messages) of each peer's data into this region; None: not measured.
    A peer absent from the map does not replicate into this region (no lag to wait for)."""
    actor: str = ""
    """Who asked for ``drain`` / ``returnHome`` when not the spec (e.g. ``request <id>``)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """The write lease of one market (a coordination.k8s.io Lease)."""

    market: str
    holder: str
    epoch: int
    renewed_at: float
    duration: float
    state: LeaseState = "Serving"
    fencing_to: str = ""
    fencing_reason: str = ""
    acked_epoch: int = 0
    """The epoch whose fencing the holder acknowledged (it stopped writing)."""
    moved_at: float | None = None
    """When the market last moved (None: never)."""

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    @property
    def expires_at(self) -> float:
        return contract.expires_at(self.renewed_at, self.duration)

    @property
    def acknowledged(self) -> bool:
        return self.state == "Fencing" and self.acked_epoch == self.epoch


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    regions: Mapping[str, RegionInfo]
    leases: Mapping[str, Lease | None]
    """Every market of the fleet (home markets of ``regions``) -> its lease (None: none yet)."""
    store_reachable: bool = True


@dataclass(frozen=True, slots=True)
class CreateLease:
    market: str
    holder: str
    epoch: int = 1


@dataclass(frozen=True, slots=True)
class Fence:
    """Ask the writer to stop: the lease goes Fencing towards ``to``."""

    market: str
    holder: str
    epoch: int
    to: str
    reason: Reason
    actor: str
    evidence: tuple[str, ...]
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Promote:
    """Make ``to`` the writer at ``epoch`` (the old epoch + 1)."""

    market: str
    from_region: str
    to: str
    epoch: int
    reason: Reason
    actor: str
    evidence: tuple[str, ...]
    fenced_by: Literal["acknowledged", "expired"]
    dry_run: bool = False


Action = CreateLease | Fence | Promote


@dataclass(frozen=True, slots=True)
class MarketPlan:
    """The decision about one market, for status and ``plan``."""

    market: str
    home: str
    writer: str
    epoch: int
    state: MarketState
    message: str = ""
    blockers: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    """Residency and lag checks of each candidate, e.g. ``us-east-1: residency ok, lag 0``."""


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...]
    markets: tuple[MarketPlan, ...]
    frozen: bool = False
    message: str = ""


@dataclass(frozen=True, slots=True)
class _Candidate:
    name: str
    ok: bool
    check: str


def _witnesses(obs: Observation, down: str) -> list[str]:
    return sorted(n for n, r in obs.regions.items() if n != down and r.health.state == "Healthy")


def _is_down(obs: Observation, region: str) -> tuple[bool, tuple[str, ...]]:
    info = obs.regions.get(region)
    if info is None or info.health.state != "Unhealthy":
        return False, ()
    witnesses = _witnesses(obs, region)
    if not witnesses:
        return False, ()
    evidence = (
        f"{region}: {info.health.describe()}",
        f"witnesses healthy from the operator: {', '.join(witnesses)}",
    )
    return True, evidence


def _check(
    obs: Observation, home: RegionInfo, rule: MarketResidency, writer: str, name: str, drain: bool
) -> _Candidate:
    info = obs.regions.get(name)
    if info is None:
        return _Candidate(name, False, f"{name}: not in the fleet")
    if not rule.allows(info.jurisdiction):
        return _Candidate(
            name,
            False,
            f"{name}: residency forbids (jurisdiction {info.jurisdiction}, "
            f"allowed: {rule.describe_allowed()})",
        )
    if info.drain:
        return _Candidate(name, False, f"{name}: residency ok, draining")
    if info.health.state != "Healthy":
        return _Candidate(name, False, f"{name}: residency ok, {info.health.state}")
    budget = 0 if drain else home.max_lag
    if writer in info.lag_from:
        lag = info.lag_from[writer]
        if lag is None and not home.accept_data_loss:
            return _Candidate(
                name, False, f"{name}: residency ok, lag from {writer} unknown (acceptDataLoss?)"
            )
        if lag is not None and lag > budget and not home.accept_data_loss:
            return _Candidate(
                name,
                False,
                f"{name}: residency ok, lag {lag} > {budget} messages "
                "(set acceptDataLoss to override)",
            )
        lag_text = "unknown" if lag is None else str(lag)
        return _Candidate(name, True, f"{name}: residency ok, healthy, lag {lag_text}")
    return _Candidate(name, True, f"{name}: residency ok, healthy")


def _candidates(
    obs: Observation,
    home: RegionInfo,
    rule: MarketResidency,
    writer: str,
    order: tuple[str, ...],
    drain: bool,
) -> list[_Candidate]:
    seen: list[str] = []
    for name in order:
        if name != writer and name not in seen:
            seen.append(name)
    return [_check(obs, home, rule, writer, name, drain) for name in seen]


def _want_move(
    obs: Observation, home: RegionInfo, lease: Lease
) -> tuple[Reason | None, tuple[str, ...], str, tuple[str, ...]]:
    """(reason, candidate order, actor, evidence) when the market should leave its writer."""
    writer = lease.holder
    winfo = obs.regions.get(writer)
    away_order = (home.name, *home.targets)
    if winfo is not None and winfo.drain:
        order = home.targets if writer == home.name else away_order
        return "Drain", order, winfo.actor or f"spec: {writer} spec.failover.drain", ()
    down, evidence = _is_down(obs, writer)
    if down and home.policy == "Automatic":
        order = home.targets if writer == home.name else away_order
        return "ProbeFailures", order, "operator", evidence
    if writer != home.name and home.health.state == "Healthy" and not home.drain:
        if home.return_home:
            actor = home.actor or f"spec: {home.name} spec.failover.returnHome"
            return "ReturnHome", (home.name,), actor, ()
        soaked = obs.now - home.health.since
        if home.failback == "Automatic" and soaked >= home.soak_seconds:
            evidence = (f"{home.name} healthy for {soaked:.0f} s >= soak {home.soak_seconds:g} s",)
            return "Failback", (home.name,), "operator", evidence
    return None, (), "", ()


def _decide_market(
    obs: Observation, home: RegionInfo, rule: MarketResidency, lease: Lease
) -> tuple[list[Action], MarketPlan]:
    market = rule.market
    now = obs.now
    if lease.state == "Fencing":
        reason: Reason = (
            lease.fencing_reason
            if lease.fencing_reason
            in (  # type: ignore[assignment]
                "ProbeFailures",
                "Drain",
                "Failback",
                "ReturnHome",
            )
            else "ProbeFailures"
        )
        drain = reason == "Drain"
        target = _check(obs, home, rule, lease.holder, lease.fencing_to, drain)
        fenced = lease.acknowledged or lease.expired(now)
        if not target.ok:
            # The target went bad while fencing: pick the next good candidate.
            order = (home.name, *home.targets) if lease.holder != home.name else home.targets
            cands = _candidates(obs, home, rule, lease.holder, order, drain)
            good = [c for c in cands if c.ok]
            if not good:
                return [], MarketPlan(
                    market,
                    home.name,
                    lease.holder,
                    lease.epoch,
                    "Down",
                    f"fenced towards {lease.fencing_to}, but no healthy legal target",
                    tuple(c.check for c in cands if not c.ok),
                    tuple(c.check for c in cands),
                )
            return [
                Fence(
                    market,
                    lease.holder,
                    lease.epoch,
                    good[0].name,
                    reason,
                    "operator",
                    (f"previous target: {target.check}",),
                    dry_run=home.dry_run,
                )
            ], MarketPlan(
                market,
                home.name,
                lease.holder,
                lease.epoch,
                "Fencing",
                f"retargeting to {good[0].name}",
                (),
                tuple(c.check for c in cands),
            )
        if not fenced:
            left = lease.expires_at - now
            return [], MarketPlan(
                market,
                home.name,
                lease.holder,
                lease.epoch,
                "Fencing",
                f"waiting for {lease.holder} to acknowledge fencing or its lease to expire "
                f"(in {max(left, 0):.1f} s)",
                checks=(target.check,),
            )
        how: Literal["acknowledged", "expired"] = (
            "acknowledged" if lease.acknowledged else "expired"
        )
        return [
            Promote(
                market,
                lease.holder,
                lease.fencing_to,
                lease.epoch + 1,
                reason,
                "operator",
                (f"{lease.holder} fencing {how} at epoch {lease.epoch}", target.check),
                fenced_by=how,
                dry_run=home.dry_run,
            )
        ], MarketPlan(
            market,
            home.name,
            lease.holder,
            lease.epoch,
            "Fencing",
            f"promoting {lease.fencing_to} at epoch {lease.epoch + 1}",
            checks=(target.check,),
        )

    reason_or_none, order, actor, evidence = _want_move(obs, home, lease)
    writer_down, _ = _is_down(obs, lease.holder)
    serving_state: MarketState = "Down" if writer_down else "Serving"
    if reason_or_none is None:
        message = f"{lease.holder} writes at epoch {lease.epoch}"
        blockers: tuple[str, ...] = ()
        if writer_down and home.policy == "Manual":
            blockers = ("failover policy is Manual: set spec.failover.drain to move",)
        elif obs.regions.get(lease.holder) is not None and (
            obs.regions[lease.holder].health.state == "Unhealthy"
        ):
            blockers = ("no healthy witness region: the operator may be the one cut off",)
        return [], MarketPlan(
            market, home.name, lease.holder, lease.epoch, serving_state, message, blockers
        )
    drain = reason_or_none == "Drain"
    cands = _candidates(obs, home, rule, lease.holder, order, drain)
    checks = tuple(c.check for c in cands)
    good = [c for c in cands if c.ok]
    if not good:
        return [], MarketPlan(
            market,
            home.name,
            lease.holder,
            lease.epoch,
            serving_state,
            f"{reason_or_none}: no healthy legal target within the lag budget",
            tuple(c.check for c in cands) or ("no failover targets configured",),
            checks,
        )
    if lease.moved_at is not None and now - lease.moved_at < home.min_dwell_seconds:
        wait = home.min_dwell_seconds - (now - lease.moved_at)
        return [], MarketPlan(
            market,
            home.name,
            lease.holder,
            lease.epoch,
            serving_state,
            f"{reason_or_none}: would move to {good[0].name}",
            (
                f"minimum dwell: the market moved {now - lease.moved_at:.0f} s ago "
                f"(wait {wait:.0f} s more)",
            ),
            checks,
        )
    return [
        Fence(
            market,
            lease.holder,
            lease.epoch,
            good[0].name,
            reason_or_none,
            actor,
            evidence,
            dry_run=home.dry_run,
        )
    ], MarketPlan(
        market,
        home.name,
        lease.holder,
        lease.epoch,
        "Fencing",
        f"{reason_or_none}: fencing {lease.holder}, then promoting {good[0].name}",
        (),
        checks,
    )


def decide(obs: Observation) -> Decision:
    """The next actions and each market's plan."""
    actions: list[Action] = []
    plans: list[MarketPlan] = []
    homes = sorted(
        ((m, r) for r in obs.regions.values() for m in r.home_markets), key=lambda x: x[0]
    )
    for market, home in homes:
        rule = home.home_markets[market]
        lease = obs.leases.get(market)
        if not obs.store_reachable:
            plans.append(
                MarketPlan(
                    market,
                    home.name,
                    lease.holder if lease else home.name,
                    lease.epoch if lease else 0,
                    "Serving" if lease is None or lease.state == "Serving" else "Fencing",
                    "frozen: the lease store is unreachable (no demotion, no promotion)",
                    ("lease store unreachable",),
                )
            )
            continue
        if lease is None:
            actions.append(CreateLease(market, home.name, 1))
            plans.append(MarketPlan(market, home.name, home.name, 1, "Serving", "lease created"))
            continue
        acts, plan = _decide_market(obs, home, rule, lease)
        actions += acts
        plans.append(plan)
    if not obs.store_reachable:
        return Decision((), tuple(plans), frozen=True, message="lease store unreachable: frozen")
    return Decision(tuple(actions), tuple(plans))
