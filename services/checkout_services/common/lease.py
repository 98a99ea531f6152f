"""The services' side of the market write leases: :class:`LeaseKeeper` renews this region's
leases, acknowledges their fencing, and answers ``may I write market M?`` for
:mod:`checkout_services.common.write_guard`. It reads and compare-and-swaps the Leases through
:class:`checkout_services.common.leasestore.LeaseStore` (the project's one Kubernetes client).

Who a keeper is, what it holds and records, and why it may not write are the pure functions
of :mod:`checkout_services.common.leaseholder` (re-exported here: ``lease.LeaseLost``, ...).
The contract itself (names, annotations, the keeper records, the expiry arithmetic, why a
keeper may ignore a silent sibling) is :mod:`checkout_contract.lease`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from checkout_contract.lease import FENCED_ACK, KEEPER, WriteLease, valid_until
from checkout_contract.timeutil import micro_time
from checkout_services.common import leaseholder as holder
from checkout_services.common import leasestore
from checkout_services.common.leaseholder import Held, LeaseLost, keeper_id
from checkout_services.common.leasestore import Conflict, LeaseStore, LeaseStoreError
from checkout_tasks import FULL_JITTER, Retries

__all__ = ["Held", "LeaseKeeper", "LeaseLost", "keeper_from_env", "keeper_id"]

log = logging.getLogger("checkout_services.common.lease")


class LeaseKeeper:
    """Renews this region's market leases and acknowledges their fencing.

    It renews every ``interval`` seconds (default a quarter of the shortest lease) and, with
    ``watch`` on (the default), also reacts at once when one of its leases is fenced, promoted
    to it or handed to another region (a watch on the fleet's Leases; renewals of other
    regions do not wake it). Without the ``watch`` verb it polls only.
    """

    def __init__(
        self,
        region: str,
        fleet: str,
        store: LeaseStore,
        *,
        skew: float = 1.0,
        interval: float | None = None,
        in_flight: Callable[[str], int] = lambda market: 0,
        acknowledge: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        watch: bool = True,
        service: str = "",
        identity: str | None = None,
        conflict_retries: int = 5,
        list_every: int = 4,
    ) -> None:
        self.region = region
        self.identity = identity or keeper_id(service)
        """This keeper's annotation is ``checkout-operator.io/keeper.<identity>``."""
        self.key = KEEPER + self.identity
        self.conflict_retries = conflict_retries
        self.conflicts = 0
        self.fleet = fleet
        self.store = store
        self.skew = skew
        self.interval = interval
        self.in_flight = in_flight
        self.acknowledge = acknowledge
        """False: this keeper stops writing on Fencing but leaves the ``fenced-ack`` to the
        region's acknowledging keeper (several services of a region keep the same leases)."""
        self.clock = clock
        self.wall = wall
        self.held: dict[str, Held] = {}
        self.seen: dict[str, WriteLease] = {}
        self.renewals = 0
        self.errors = 0
        self.watch = watch
        self.wakeups = 0
        self.list_every = max(1, list_every)
        """With the watch on, a pass LISTs the fleet's Leases only every ``list_every`` passes
        (at least once per lease duration, at the default interval); the others use what the
        watch and this keeper's own writes last showed. A stale copy costs one conflict (every
        write is a compare-and-swap at the read resourceVersion), never a wrong write."""
        self.lists = 0
        self._passes = 0
        self._live: dict[str, WriteLease] = {}
        self._task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def may_write(self, market: str) -> bool:
        held = self.held.get(market)
        return held is not None and not held.fenced and self.clock() < held.valid_until

    def check(self, market: str) -> int:
        """The epoch this region holds for ``market``; raises :class:`LeaseLost` otherwise."""
        held = self.held.get(market)
        if held is not None and not held.fenced and self.clock() < held.valid_until:
            return held.epoch
        raise holder.lost(self.region, market, held, self.seen.get(market))

    async def step(self) -> None:
        """One pass: renew what this region holds, acknowledge fencing, forget what it lost."""
        started = self.clock()
        self._passes += 1
        leases = self._cached()
        if leases is None:
            try:
                leases = await self.store.list(self.fleet)
            except LeaseStoreError as exc:
                self.errors += 1
                log.warning(
                    "lease store unreachable: %s (writes stop when the leases run out)", exc
                )
                return
            self.lists += 1
            self._live = {lease.market: lease for lease in leases}
        self.seen = {lease.market: lease for lease in leases}
        for lease in leases:
            if lease.holder != self.region:
                self.held.pop(lease.market, None)
                continue
            await self._keep_retrying(lease, started)

    def _cached(self) -> list[WriteLease] | None:
        """The Leases as the live watch and this keeper's writes last showed them, or None
        when this pass must LIST (no watch running, nothing seen yet, or its turn)."""
        task = self._watch_task
        if not self.watch or task is None or task.done() or not self._live:
            return None
        if (self._passes - 1) % self.list_every == 0:  # the first pass, then every Nth
            return None
        return list(self._live.values())

    def _remember(self, lease: WriteLease) -> None:
        """Keep the newer of two copies of a market's Lease (by resourceVersion)."""
        if not lease.market:
            return
        old = self._live.get(lease.market)
        if old is None or holder.version(lease) >= holder.version(old):
            self._live[lease.market] = lease

    async def _keep_retrying(self, lease: WriteLease, started: float) -> None:
        """``_keep``, re-reading and deciding again after a lost compare-and-swap: the region's
        other keepers patch the same Lease, and losing a race to them must not stop writes.
        ``started`` stays the time before the first read (the conservative start)."""
        name = str((lease.raw.get("metadata") or {}).get("name") or "")
        for _ in range(self.conflict_retries + 1):
            try:
                await self._keep(lease, started)
                return
            except Conflict:
                self.conflicts += 1
            if not name:
                return
            await asyncio.sleep(0.01 + 0.04 * random.random())  # let the sibling's patch land
            try:
                lease = await self.store.get(name)
            except LeaseStoreError as exc:
                self.errors += 1
                log.warning("re-reading %s after a conflict failed: %s", name, exc)
                return
            self.seen[lease.market] = lease
            self._remember(lease)
            if lease.holder != self.region:
                self.held.pop(lease.market, None)
                return
        log.info("lease %s: still conflicting after %d retries", name, self.conflict_retries)

    def _record(self, lease: WriteLease, now: float, stopped: int) -> dict[str, str | None]:
        """The annotations this keeper patches: its own record, and removal of stale ones."""
        return holder.keeper_notes(lease, self.key, self.region, now, stopped)

    def siblings_busy(self, lease: WriteLease, now: float | None = None) -> list[str]:
        """The other keepers of the holder region that block the ``fenced-ack``
        (:func:`holder.siblings_busy`)."""
        return holder.siblings_busy(lease, self.key, self.wall() if now is None else now, self.skew)

    async def _patch(
        self, lease: WriteLease, notes: dict[str, str | None], renew: bool
    ) -> WriteLease:
        obj = json.loads(json.dumps(lease.raw))
        # only what this keeper changes (its keys, maybe renewTime), at the read resourceVersion
        obj["metadata"]["annotations"] = notes
        if renew:
            obj["spec"] = {"renewTime": micro_time(self.wall())}
        else:
            obj["spec"] = {}
        return await self.store.replace(obj)

    async def _write(
        self, lease: WriteLease, notes: dict[str, str | None], *, renew: bool, what: str
    ) -> WriteLease | None:
        """:meth:`_patch`, or None (counted and logged) when the store failed; a lost
        compare-and-swap (:class:`Conflict`) goes up to :meth:`_keep_retrying`."""
        try:
            written = await self._patch(lease, notes, renew)
        except Conflict:
            raise
        except LeaseStoreError as exc:
            self.errors += 1
            log.warning("%s of %s failed: %s", what, lease.market, exc)
            return None
        return written

    async def _keep(self, lease: WriteLease, started: float) -> None:
        held = self.held.get(lease.market)
        if held is not None and held.epoch != lease.epoch:
            held = None
        now = self.wall()
        if lease.state == "Fencing":
            # Stop taking writes first; record "stopped" once the in-flight ones are done, and
            # acknowledge (one keeper per region) when every live sibling did too. While some
            # are still in flight, keep renewing: they finish under a valid lease, and the
            # operator waits for the acknowledgement instead of the expiry.
            if held is None:
                held = self.held[lease.market] = Held(lease.epoch, 0.0, fenced=True)
            held.fenced = True
            if lease.acked_epoch == lease.epoch:
                return
            busy = self.in_flight(lease.market)
            mine = lease.keepers.get(self.key)
            notes = self._record(lease, now, 0 if busy else lease.epoch)
            ack = not busy and self.acknowledge and not self.siblings_busy(lease, now)
            if ack:
                notes[FENCED_ACK] = str(lease.epoch)
            elif not busy and mine is not None and mine.stopped == lease.epoch:
                return  # already said so; waiting for the siblings (or for nothing)
            written = await self._write(lease, notes, renew=bool(busy), what="fencing ack")
            if written is not None:
                self.seen[lease.market] = written
                self._remember(written)
            return
        renewed = await self._write(lease, self._record(lease, now, 0), renew=True, what="renewal")
        if renewed is None:
            return
        self.renewals += 1
        self.seen[lease.market] = renewed
        self._remember(renewed)
        self.held[lease.market] = Held(
            lease.epoch, valid_until(started, renewed.duration, self.skew)
        )

    def _concerns_me(self, lease: WriteLease) -> bool:
        """A change this region must act on now: its lease fenced (acknowledge), a lease
        promoted to it (start writing), or a lease it held gone to another region (stop)."""
        held = self.held.get(lease.market)
        if lease.holder != self.region:
            if held is not None:
                self.held.pop(lease.market, None)  # stop writing at once
                self.seen[lease.market] = lease
                return True
            return False
        if lease.state == "Fencing":
            # Only the first sight of the fencing: while in-flight writes finish, the keeper's
            # own renewals would wake it again and again (the acknowledgement then follows at
            # the next interval).
            if lease.acked_epoch == lease.epoch:
                return False
            if held is None or not held.fenced or held.epoch != lease.epoch:
                return True
            # the last sibling just recorded that it stopped: acknowledge now, not next interval
            return (
                self.acknowledge
                and not self.in_flight(lease.market)
                and not self.siblings_busy(lease)
            )
        return held is None or held.epoch != lease.epoch or held.fenced

    async def _watch_loop(self) -> None:
        """Wake :meth:`run` when a lease concerns this region (the store's watch resumes,
        relists and backs off by itself; this loop only survives what it cannot know)."""
        backoff = Retries()
        while True:
            try:
                async for lease in self.store.watch(self.fleet):
                    backoff.reset()
                    self._remember(lease)
                    if lease.market and self._concerns_me(lease):
                        self.wakeups += 1
                        self._wake.set()
            except Exception as exc:
                self.errors += 1
                log.warning("lease watch failed: %s (polling meanwhile)", exc)
            await backoff.sleep()

    async def run(self) -> None:
        """Renew until cancelled. A pass that fails in any way (an unreadable answer included)
        is logged and retried after a jittered backoff, never ends the loop: writes stop when
        the leases run out and start again with the first good renewal."""
        if self.watch and self._watch_task is None:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch_loop())
        backoff = Retries(replace(FULL_JITTER, initial=0.2, maximum=5.0))
        while True:
            self._wake.clear()
            try:
                await self.step()
                backoff.reset()
            except Exception as exc:
                self.errors += 1
                log.warning("lease keeper pass failed: %s: %s", type(exc).__name__, exc)
                await backoff.sleep()
                continue
            interval = self.interval
            if interval is None:
                durations = [s.duration for s in self.seen.values() if s.duration > 0]
                interval = max(0.2, min(durations, default=15.0) / 4)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def aclose(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        self._watch_task = None


def keeper_from_env(region: str, fleet: str, *, service: str = "") -> LeaseKeeper | None:
    """A keeper of the store from :func:`store_from_env` (None without one). Call ``start()``
    in the app's lifespan and ``aclose()`` at its end."""
    store = leasestore.store_from_env()
    if store is None:
        return None
    return LeaseKeeper(region, fleet, store, service=service)
