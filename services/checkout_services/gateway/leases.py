"""Who may write for a market right now: the seam for the failover work's write leases.

The routing table says which region *should* write for a market (writer, epoch, state). With
write leases, a region writes only while it holds an unexpired lease for the current epoch: the
gateway then sends a market's writes to the region that holds that lease, and answers 503 +
Retry-After while nobody holds it (the old writer was fenced, the new one is not promoted yet).

:class:`LeaseView` is that question as an interface. :class:`RoutingLeases` answers it from the
routing table alone (the writer named there, while the market is Serving); a lease-backed view
(``common/lease.py``) plugs in through :func:`checkout_services.gateway.app.create_app`.
"""

from __future__ import annotations

from typing import Protocol

from checkout_services.common import routing


class LeaseView(Protocol):
    async def holder(self, route: routing.MarketRoute) -> str | None:
        """The region that may write for ``route.market`` at ``route.epoch`` now, or None while
        no region may (its lease is not yet granted)."""
        ...


class RoutingLeases:
    """The routing table's writer holds the market while its state is Serving."""

    async def holder(self, route: routing.MarketRoute) -> str | None:
        return route.writer if route.state == "Serving" else None
