"""Deciding: what the engine knows (the regions from the index, their probed health, the
market Leases) turned into the pure decision's :class:`~checkout_operator.failover.decide.
Observation`, and :func:`~checkout_operator.failover.decide.decide` asked. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checkout_operator.api.residency import market_residency
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.reconcile import leases
from checkout_operator.reconcile.failover.recording import Member
from checkout_services.common import lease as contract


def lag_from(body: Mapping[str, Any], peers: Sequence[str]) -> dict[str, int | None]:
    """Replication lag per peer from ``status.replication`` (None: not known)."""
    out: dict[str, int | None] = {}
    for peer in (body.get("status") or {}).get("replication") or ():
        name = str(peer.get("peer") or "")
        if not name:
            continue
        known = not peer.get("message") and peer.get("observedAt")
        out[name] = int(peer.get("lagMessages") or 0) if known else None
    for name in peers:
        out.setdefault(name, None)
    return out


def region_info(member: Member, health: fh.Health) -> fd.RegionInfo:
    body, parsed = member
    spec = parsed.spec
    fo = spec.failover
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
        dry_run=fo.dry_run,
        accept_data_loss=fo.accept_data_loss,
        max_lag=spec.replication.max_lag_on_failover,
        lag_from=lag_from(body, [p.region for p in spec.replication.peers]),
    )


@dataclass(frozen=True)
class FleetView:
    """One fleet as the engine sees it in a round."""

    infos: Mapping[str, fd.RegionInfo]
    by_name: Mapping[str, Member]
    home_of: Mapping[str, str]
    """Market -> its home region."""

    @classmethod
    def of(cls, members: Sequence[Member], health_of: Callable[[str], fh.Health]) -> FleetView:
        return cls(
            infos={
                p.spec.region: region_info((b, p), health_of(p.spec.region)) for b, p in members
            },
            by_name={p.spec.region: (b, p) for b, p in members},
            home_of={m.country: p.spec.region for _, p in members for m in p.spec.home_markets},
        )

    def home(self, market: str) -> Member:
        """The CheckoutRegion whose home market ``market`` is."""
        return self.by_name[self.home_of[market]]

    def decide(
        self, now: float, current: Mapping[str, contract.WriteLease], reachable: bool
    ) -> fd.Decision:
        obs = fd.Observation(
            now,
            self.infos,
            {m: leases.to_decision(current[m]) if m in current else None for m in self.home_of},
            reachable,
        )
        return fd.decide(obs)
