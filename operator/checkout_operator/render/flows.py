"""What crosses from region to region: the replication flows residency allows, as a table.

Pure: from the fleet's CheckoutRegions (the same filters :mod:`render.mirrormaker` renders)
to rows of (source, target, topic family, class, markets replicated, markets blocked), one row
per flow into a region that pulls from peers and per topic family. ``checkout-operator flows``
prints it; a plan view can reuse :func:`flow_rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from checkout_contract import classification
from checkout_operator.api import fleet as fleet_rules
from checkout_operator.api import residency
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.render import mirrormaker

HEADER = ("SOURCE", "TARGET", "TOPIC", "CLASS", "REPLICATED", "BLOCKED")


@dataclass(frozen=True, slots=True)
class FlowRow:
    source: str
    target: str
    topic: str
    data_class: str
    replicated: str
    blocked: str

    def cells(self) -> tuple[str, str, str, str, str, str]:
        return (
            self.source,
            self.target,
            self.topic,
            self.data_class,
            self.replicated,
            self.blocked,
        )


def _blocked(barred: Sequence[residency.MarketResidency]) -> str:
    if not barred:
        return "-"
    return " ".join(f"{r.market}(allowed: {r.describe_allowed()})" for r in barred)


def flow_rows(regions: Sequence[CheckoutRegion]) -> list[FlowRow]:
    """Every flow source -> target (target pulls from source), by fleet, target, source."""
    rows: list[FlowRow] = []
    fleets: dict[str, list[CheckoutRegion]] = {}
    for region in regions:
        fleets.setdefault(region.spec.fleet, []).append(region)
    for name in sorted(fleets):
        members = sorted(fleets[name], key=lambda r: r.spec.region)
        residencies = fleet_rules.market_residencies(members)
        for target in members:
            allowed = mirrormaker.allowed_markets(target, members)
            barred = residency.markets_barred_from(residencies, target.spec.jurisdiction)
            for peer in sorted(p.region for p in target.spec.replication.peers):
                for family in classification.TOPICS:
                    if family.scope == "market":
                        topic = f"{family.base}.<MARKET>"
                        replicated = " ".join(allowed) or "-"
                        blocked = _blocked(barred)
                    elif family.scope == "fleet":
                        topic, replicated, blocked = family.base, "all", "-"
                    else:
                        topic, replicated, blocked = family.base, "-", "all (local only)"
                    rows.append(
                        FlowRow(
                            peer,
                            target.spec.region,
                            topic,
                            family.data_class,
                            replicated,
                            blocked,
                        )
                    )
    return rows


def table(rows: Sequence[FlowRow]) -> str:
    """Rows as a fixed-width text table (header first), one line each."""
    cells = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if not rows:
        lines.append("(no replication flows: no region lists replication.peers)")
    return "\n".join(lines) + "\n"
