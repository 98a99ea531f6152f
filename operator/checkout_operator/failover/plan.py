"""The plan of a failover or switchover, without doing it (``checkout-operator plan``). Pure.

From the fleet's CheckoutRegions (spec, and status when read from a cluster), the current
leases and a scenario (a region failing, or the moves the specs ask for: ``drain``,
``returnHome``), list per market: the steps (fence, drain, wait for lag 0, promote,
re-render), the blockers and the residency check of every candidate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.residency import market_residency
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh


def region_info(
    region: CheckoutRegion,
    health: fh.Health,
    *,
    dry_run: bool = False,
    lag_from: Mapping[str, int | None] | None = None,
) -> fd.RegionInfo:
    """What the decision knows of a region. ``lag_from`` (peer -> replication lag, None: not
    known) defaults to the region's parsed ``status.replication``; every peer has an entry."""
    spec = region.spec
    fo = spec.failover
    lag: dict[str, int | None] = dict(lag_from or {})
    if lag_from is None and region.status is not None:
        for peer in region.status.replication:
            known = not peer.message and bool(peer.observed_at)
            lag[peer.peer] = peer.lag_messages if known else None
    for p in spec.replication.peers:
        lag.setdefault(p.region, None)
    return fd.RegionInfo(
        name=spec.region,
        jurisdiction=spec.jurisdiction,
        health=health,
        home_markets={
            m.country: market_residency(
                m.country, spec.region, spec.jurisdiction, m.allowed_jurisdictions
            )
            for m in spec.home_markets
        },
        targets=fo.targets,
        policy=fo.policy,
        failback=fo.failback,
        soak_seconds=fo.soak_seconds,
        min_dwell_seconds=fo.min_dwell_seconds,
        drain=fo.drain,
        return_home=fo.return_home,
        dry_run=dry_run,
        accept_data_loss=fo.accept_data_loss,
        max_lag=spec.replication.max_lag_on_failover,
        lag_from=lag,
    )


@dataclass(frozen=True)
class MarketSteps:
    market: str
    writer: str
    epoch: int
    target: str
    reason: str
    steps: tuple[str, ...]
    blockers: tuple[str, ...]
    checks: tuple[str, ...]


def _health_of(region: CheckoutRegion, failing: str | None, now: float) -> fh.Health:
    name = region.spec.region
    thresholds = region.spec.health_probe
    if name == failing:
        return fh.Health("Unhealthy", failures=thresholds.failure_threshold, since=now)
    if failing is None and region.status is not None and region.status.health.state != "Unknown":
        return fh.Health(region.status.health.state, since=now - 10**9)
    return fh.Health("Healthy", successes=thresholds.success_threshold, since=now - 10**9)


def plan(
    regions: Sequence[CheckoutRegion],
    leases: Mapping[str, fd.Lease],
    *,
    failing: str | None = None,
    now: float = 0.0,
) -> list[MarketSteps]:
    """What would happen now if ``failing`` failed (None: the moves the specs ask for)."""
    by_name = {r.spec.region: r for r in regions}
    infos = {n: region_info(r, _health_of(r, failing, now)) for n, r in by_name.items()}
    full: dict[str, fd.Lease | None] = {}
    for r in regions:
        for m in r.spec.home_markets:
            lease = leases.get(m.country)
            if lease is None:
                lease = fd.Lease(
                    m.country, r.spec.region, 1, now, r.spec.failover.write_lease_seconds
                )
            # A plan ignores the dwell: it says what would move and what blocks it.
            full[m.country] = dataclasses.replace(lease, moved_at=None)
    decision = fd.decide(fd.Observation(now, infos, full))
    fences = {a.market: a for a in decision.actions if isinstance(a, fd.Fence)}
    out: list[MarketSteps] = []
    readers = ", ".join(sorted(by_name))
    for p in decision.markets:
        fence = fences.get(p.market)
        lease = full[p.market]
        assert lease is not None
        if fence is None:
            if p.blockers or failing in (p.writer,) or p.state == "Down":
                out.append(
                    MarketSteps(p.market, p.writer, p.epoch, "", "", (), p.blockers, p.checks)
                )
            continue
        home = by_name[p.home]
        wait = home.spec.failover.write_lease_seconds
        steps = [
            f"fence {fence.holder} for {p.market} at epoch {fence.epoch}: the lease goes "
            f"Fencing, {fence.holder} stops taking new writes"
            + (", finishes or voids in-flight authorizations" if fence.reason == "Drain" else "")
            + f" and acknowledges (or its {wait} s lease expires)",
        ]
        if fence.reason == "Drain":
            steps.append(
                f"wait for the replication lag of {fence.holder}'s data in {fence.to} to be 0"
            )
        steps += [
            f"promote {fence.to} at epoch {fence.epoch + 1} (compare-and-swap on the Lease)",
            f"re-render checkout-fleet-routing in {readers}: {p.market} -> {fence.to}",
        ]
        out.append(
            MarketSteps(
                p.market,
                fence.holder,
                fence.epoch,
                fence.to,
                fence.reason,
                tuple(steps),
                p.blockers,
                p.checks,
            )
        )
    return out


def describe(plans: Sequence[MarketSteps], scenario: str) -> str:
    lines = [f"plan: {scenario}"]
    if not plans:
        lines.append("  nothing moves")
    for p in plans:
        head = f"- market {p.market}: {p.writer} (epoch {p.epoch})"
        head += f" -> {p.target} [{p.reason}]" if p.target else ": stays"
        lines.append(head)
        lines += [f"    {i}. {s}" for i, s in enumerate(p.steps, start=1)]
        lines += [f"    blocked: {b}" for b in p.blockers]
        lines += [f"    check: {c}" for c in p.checks]
    return "\n".join(lines) + "\n"
