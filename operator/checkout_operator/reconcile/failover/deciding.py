"""Deciding: what the engine knows (the regions from the index, their probed health, the
market Leases) turned into the pure decision's :class:`~checkout_operator.failover.decide.
Observation`, and :func:`~checkout_operator.failover.decide.decide` asked. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checkout_contract import lease as contract
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.failover import plan as fplan
from checkout_operator.reconcile import leases
from checkout_operator.reconcile.failover.recording import Member


def lag_from(body: Mapping[str, Any]) -> dict[str, int | None]:
    """Replication lag per peer from the raw ``status.replication`` (None: not known); the
    index parses specs only, so the status is read from the body as the watch last saw it."""
    out: dict[str, int | None] = {}
    for peer in (body.get("status") or {}).get("replication") or ():
        name = str(peer.get("peer") or "")
        if not name:
            continue
        known = not peer.get("message") and peer.get("observedAt")
        out[name] = int(peer.get("lagMessages") or 0) if known else None
    return out


def region_info(member: Member, health: fh.Health) -> fd.RegionInfo:
    body, parsed = member
    return fplan.region_info(
        parsed, health, dry_run=parsed.spec.failover.dry_run, lag_from=lag_from(body)
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

    def observe(
        self, now: float, current: Mapping[str, contract.WriteLease], reachable: bool
    ) -> fd.Observation:
        """What the pure decision is asked about (before the regions' overrides in force)."""
        return fd.Observation(
            now,
            self.infos,
            {m: leases.to_decision(current[m]) if m in current else None for m in self.home_of},
            reachable,
        )
