"""Who may write for a market right now: the write leases, as the gateway sees them.

The routing table says which region *should* write for a market (writer, epoch, state). With
write leases, a region writes only while it holds an unexpired lease for the current epoch: the
gateway then sends a market's writes to the region that holds that lease, and answers 503 +
Retry-After while nobody holds it (the old writer was fenced, the new one is not promoted yet).

:class:`LeaseView` is that question as an interface. :class:`RoutingLeases` answers it from the
routing table alone (the writer named there, while the market is Serving): the behaviour when
the lease store is not configured. :class:`StoreLeases` answers it from the market Leases on the
management cluster (``common/leasestore.py``: ``CHECKOUT_LEASE_NAMESPACE`` plus
``CHECKOUT_LEASE_KUBECONFIG`` or the pod's service account), re-listed every ``poll_s``: the
lease's holder while it is Serving and unexpired, nobody while it is Fencing or expired. A
market without a Lease, or a view older than ``stale_after_s`` (the lease store is unreachable:
the control plane failing is not the region failing), falls back to the routing table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import checkout_tasks
from checkout_contract import routing
from checkout_contract.lease import WriteLease
from checkout_services.common import leasestore

log = logging.getLogger("checkout_services.gateway.leases")


class LeaseView(Protocol):
    async def holder(self, route: routing.MarketRoute) -> str | None:
        """The region that may write for ``route.market`` at ``route.epoch`` now, or None while
        no region may (its lease is not yet granted)."""
        ...


class RoutingLeases:
    """The routing table's writer holds the market while its state is Serving."""

    async def holder(self, route: routing.MarketRoute) -> str | None:
        return route.writer if route.state == "Serving" else None


class StoreLeases:
    """The market Leases of one fleet, followed by a watch (a change is seen at once) and
    listed again every third of ``stale_after_s`` (what keeps the view's age honest when no
    lease changes, and what catches up if the watch is down: ``poll_s`` between retries).
    Older than ``stale_after_s``: the routing table decides. Before the watch, the view listed
    every 0.5 s per gateway: most of an idle fleet's apiserver requests."""

    def __init__(
        self,
        store: leasestore.LeaseStore,
        fleet: str,
        *,
        poll_s: float = 0.5,
        stale_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.fleet = fleet
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.wall = wall
        self.leases: dict[str, WriteLease] = {}
        self.listed_at: float | None = None
        self.errors = 0
        self._fallback = RoutingLeases()
        self._task: checkout_tasks.Guarded | None = None

    async def refresh(self) -> bool:
        try:
            found = await self.store.list(self.fleet)
        except leasestore.LeaseStoreError as exc:
            self.errors += 1
            log.warning("lease store unreachable: %s (routing table used when stale)", exc)
            return False
        self.leases = {item.market: item for item in found}
        self.listed_at = self.clock()
        return True

    def fresh(self) -> bool:
        return self.listed_at is not None and self.clock() - self.listed_at < self.stale_after_s

    async def holder(self, route: routing.MarketRoute) -> str | None:
        current = self.leases.get(route.market)
        if current is None or not self.fresh():
            return await self._fallback.holder(route)
        if current.state != "Serving" or not current.holder:
            return None
        if current.expired(self.wall()):
            return None  # the holder stopped renewing: it stopped writing too
        return current.holder

    async def follow(self) -> None:
        """Apply the watch's events until it fails (the store's watch resumes and relists by
        itself; this returns only on what it cannot handle, e.g. a refused ``watch`` verb)."""
        async for lease in self.store.watch(self.fleet):
            if lease.market:
                self.leases[lease.market] = lease
                self.listed_at = self.clock()

    async def relist(self) -> None:
        while True:
            await asyncio.sleep(self.stale_after_s / 3)
            await self.refresh()

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self.follow())
                    group.create_task(self.relist())
            except Exception as exc:  # the view falls back to listing; this never ends
                self.errors += 1
                log.warning("lease watch failed: %s (listing meanwhile)", exc)
            await self.refresh()
            await asyncio.sleep(self.poll_s)

    async def start(self) -> None:
        await self.refresh()
        if self._task is None:
            self._task = checkout_tasks.start(
                "gateway lease view",
                self.run,
                policy=checkout_tasks.Policy(finishable=False),
                logger=log,
            )

    async def aclose(self) -> None:
        if self._task is not None:
            await self._task.stop()
            self._task = None
        await self.store.aclose()


def from_env(fleet: str, poll_s: float) -> StoreLeases | None:
    """A lease-backed view when ``CHECKOUT_LEASE_NAMESPACE`` is set, else None."""
    store = leasestore.store_from_env()
    return None if store is None else StoreLeases(store, fleet, poll_s=poll_s)
