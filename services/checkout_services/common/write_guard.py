"""One writer per market: refuse writes for a market this region does not hold.

The FleetRouting file (``FLEET_ROUTING_FILE``) names each market's writer, epoch and state.
A write is allowed only when ``writer == this region`` and ``state == Serving``; otherwise a
409 problem names the writer (or 503 + Retry-After while the market is Fencing). The file is
re-read when it changes (a ConfigMap update).

With a :class:`checkout_services.common.lease.LeaseKeeper` (``keeper``), a write also needs
this region's unexpired write lease for the market, at the routing's epoch or later: a region
that was fenced, or could not renew, gets 409 ``not-lease-holder`` naming the region that
writes (the lease contract is in :mod:`checkout_services.common.lease`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from checkout_contract import routing
from checkout_services.common import errors, fencing, lease, settings


class NotWriter(errors.ProblemError):
    status, slug, title = 409, "not-write-primary", "This region does not write for the market"


class NotLeaseHolder(errors.ProblemError):
    status, slug, title = 409, "not-lease-holder", "This region holds no write lease for the market"


class MarketFencing(errors.ProblemError):
    status, slug, title = 503, "market-fencing", "The market is moving to another region"
    retry_after = 2


class MarketDown(errors.ProblemError):
    status, slug, title = 503, "market-down", "No region may write for the market"
    retry_after = 30


class UnknownMarket(errors.ProblemError):
    status, slug, title = 422, "unknown-market", "Unknown market"


class WriteGuard:
    def __init__(
        self, region: str, routing_file: str | Path, keeper: lease.LeaseKeeper | None = None
    ) -> None:
        self.region = region
        self.keeper = keeper
        self.in_flight = fencing.InFlight()
        """Writes admitted by :meth:`writing` and not finished (the keeper's ``in_flight``: a
        fenced keeper records that it stopped only once its count is 0)."""
        self.path = Path(routing_file)
        self._mtime: float = -1.0
        self._routing: routing.FleetRouting | None = None

    def current(self) -> routing.FleetRouting:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            mtime = self._mtime
        if self._routing is None or mtime != self._mtime:
            self._routing = settings.load_fleet_routing(self.path)
            self._mtime = mtime
        return self._routing

    def check(self, market: str) -> routing.MarketRoute:
        """Return the market's route if this region may write for it, else raise a problem."""
        route = self.current().route_for(market)
        if route is None:
            raise UnknownMarket(f"market {market!r} is not in the fleet routing", field="market")
        if route.state == "Fencing":
            raise MarketFencing(
                f"market {market} is being fenced (epoch {route.epoch}); retry shortly",
                market=market,
                writer=route.writer,
                epoch=route.epoch,
            )
        if route.state == "Down":
            raise MarketDown(f"market {market} has no legal healthy writer", market=market)
        if route.writer != self.region:
            raise NotWriter(
                f"region {self.region} does not write for market {market}; "
                f"its write-primary is {route.writer} (epoch {route.epoch})",
                market=market,
                writer=route.writer,
                epoch=route.epoch,
            )
        if self.keeper is not None:
            try:
                held = self.keeper.check(market)
            except lease.LeaseLost as exc:
                raise NotLeaseHolder(
                    f"{exc}; write to {exc.writer or route.writer}",
                    market=market,
                    writer=exc.writer or route.writer,
                    epoch=exc.epoch or route.epoch,
                ) from None
            if held < route.epoch:
                raise NotLeaseHolder(
                    f"region {self.region} holds epoch {held} of market {market}, but the "
                    f"routing is at epoch {route.epoch}",
                    market=market,
                    writer=route.writer,
                    epoch=route.epoch,
                )
        return route

    @contextlib.contextmanager
    def writing(self, market: str) -> Iterator[routing.MarketRoute]:
        """:meth:`check`, then count the write as in flight until the block ends (no await in
        between, so a keeper that sees Fencing either refused it or counts it)."""
        route = self.check(market)
        with self.in_flight.track(market):
            yield route
