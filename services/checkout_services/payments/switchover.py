"""Payments' part in fencing a market (the write leases of :mod:`checkout_services.common.lease`).

Payments is the service of a region that acknowledges fencing (``fenced-ack``), because money
may still be moving when the operator fences a market:

* A new authorization for a market whose lease this region does not hold (fenced, taken away,
  not renewed) is refused with 409 ``not-lease-holder`` naming the writer. Markets without a
  Lease in the fleet are not checked.
* Authorizations in progress count as the market's in-flight writes: the acknowledgement waits
  until they finished.
* On a planned move (reason Drain, Failback or ReturnHome: a spec edit, the region is healthy)
  it then voids the market's authorizations that are still only authorized
  ``void_after_s`` after they were authorized (their checkout did not capture them: it stopped),
  before acknowledging. Younger ones are left to their checkout to capture or void (a capture
  in the old region after the move is still a single capture: the PSP call keys are
  deterministic). An automatic failover (ProbeFailures) voids nothing: the region is failing.
"""

from __future__ import annotations

import logging
from typing import Final

import checkout_tasks
from checkout_services.common import fencing, lease
from checkout_services.payments import exceptions
from checkout_services.payments.operations import void
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S

PLANNED: Final = frozenset({"Drain", "Failback", "ReturnHome"})
log = logging.getLogger("checkout_services.payments.switchover")


class Switchover:
    def __init__(self, svc: PaymentsService, keeper: lease.LeaseKeeper | None, void_after_s: float):
        self.svc = svc
        self.keeper = keeper
        self.void_after_s = void_after_s
        self.authorizing = fencing.InFlight()
        self.voided: dict[str, int] = {}
        """market -> the epoch whose planned-move voids are done."""
        self._tasks = checkout_tasks.Supervisor(log)
        self.voids = 0

    def check(self, market: str) -> None:
        """Before a new authorization: raise 409 unless this region may write ``market``."""
        if self.keeper is None or market not in self.keeper.seen:
            return
        try:
            self.keeper.check(market)
        except lease.LeaseLost as exc:
            raise exceptions.NotLeaseHolder(
                f"{exc}; authorize in {exc.writer or 'the writing region'}",
                market=market,
                writer=exc.writer,
                epoch=exc.epoch,
            ) from exc

    def in_flight(self, market: str) -> int:
        """The keeper's ``in_flight``: authorizations in progress, then the planned-move voids."""
        busy = self.authorizing(market)
        if busy or self.keeper is None:
            return busy
        seen = self.keeper.seen.get(market)
        if (
            seen is None
            or seen.state != "Fencing"
            or seen.holder != self.keeper.region
            or seen.fencing_reason not in PLANNED
            or self.voided.get(market) == seen.epoch
        ):
            return 0
        if self._tasks.get(market) is None:
            # one-shot: the keeper's next pass asks again while the voids are not done
            epoch = seen.epoch
            self._tasks.start(
                market, lambda: self._void_left(market, epoch), policy=checkout_tasks.ONCE
            )
        return 1

    async def _void_left(self, market: str, epoch: int) -> None:
        left = [
            p
            for p in await self.svc.repo.stale((S.AUTHORIZED,), self.void_after_s, 10_000)
            if p.country == market
        ]
        failed = 0
        for payment in left:
            try:
                await void.void(self.svc, payment.checkout_id)
                self.voids += 1
            except exceptions.IllegalTransitionError:
                pass  # captured meanwhile
            except Exception as exc:
                failed += 1
                log.warning("switchover void of a %s payment: %s", market, type(exc).__name__)
        if failed:
            return  # the next keeper pass tries again; the ack waits (or the lease expires)
        self.voided[market] = epoch
        log.warning(
            "market %s planned move (epoch %d): %d authorization(s) left uncaptured voided",
            market,
            epoch,
            len(left),
        )

    async def aclose(self) -> None:
        await self._tasks.aclose()
