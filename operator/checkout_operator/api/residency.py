"""Data residency: which jurisdictions may hold a market's data. Pure functions.

The rule: a market's data may live in the jurisdiction of its home region (the region that lists
it in ``spec.homeMarkets``) plus any jurisdiction the market lists in ``allowedJurisdictions``.
Example: BR homed in ``us-east-1`` (jurisdiction US) may live in US; IN homed in ``ap-south-1``
(IN) with no extra jurisdiction may live only in IN, so ap-south-1 has no legal failover target
outside India.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarketResidency:
    """Where one market's data may be stored."""

    market: str
    home_region: str
    allowed: frozenset[str]

    def allows(self, jurisdiction: str) -> bool:
        return jurisdiction in self.allowed

    def describe_allowed(self) -> str:
        return ", ".join(sorted(self.allowed))


def market_residency(
    market: str, home_region: str, home_jurisdiction: str, extra: Iterable[str]
) -> MarketResidency:
    """The residency of ``market``: its home region's jurisdiction plus the listed extras."""
    return MarketResidency(market, home_region, frozenset({home_jurisdiction, *extra}))


def violations(
    residencies: Iterable[MarketResidency], region: str, jurisdiction: str
) -> list[MarketResidency]:
    """The markets whose data ``region`` (in ``jurisdiction``) may not hold, sorted by market."""
    bad = [r for r in residencies if not r.allows(jurisdiction)]
    return sorted(bad, key=lambda r: r.market)


def violation_message(region: str, jurisdiction: str, residency: MarketResidency) -> str:
    """E.g. ``region ap-x (jurisdiction EU) may not hold data of market IN (allowed: IN)``."""
    return (
        f"region {region} (jurisdiction {jurisdiction}) may not hold data of market "
        f"{residency.market} (allowed: {residency.describe_allowed()})"
    )


def markets_allowed_in(residencies: Iterable[MarketResidency], jurisdiction: str) -> list[str]:
    """The markets whose data a region in ``jurisdiction`` may hold, sorted."""
    return sorted({r.market for r in residencies if r.allows(jurisdiction)})


def markets_barred_from(
    residencies: Iterable[MarketResidency], jurisdiction: str
) -> list[MarketResidency]:
    """The markets whose data a region in ``jurisdiction`` may not hold, sorted by market."""
    return violations(residencies, "", jurisdiction)
