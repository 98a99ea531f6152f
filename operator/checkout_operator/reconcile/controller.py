"""What the kopf handlers call: one object per operator process, holding the clients.

- ``region_changed``: reconcile a CheckoutRegion now, then its fleet peers soon (their fleet
  routing ConfigMap lists every region of the fleet).
- ``child_event``: a watched child changed (drift, deletion, rollout progress): reconcile its
  region soon. Bursts are coalesced (one reconcile per region per ``debounce`` seconds).
- ``route_changed``: re-reconcile exactly the regions a PSPRoute selected or selects, then
  write the route's status.
- remote clusters: ``remote_watches`` (one watch per remote cluster and child kind, shared by
  the regions using it) pokes a region on its remote children's events and keeps its
  ``RemoteClusterReachable`` condition.
- ``region_deleted``: clean up the children of a remote region (local ones are garbage
  collected through their owner references).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import checkout_tasks as tasks
from checkout_kube import errors as kerrors
from checkout_operator.api import load
from checkout_operator.reconcile import (
    failover,
    index,
    leader,
    region,
    remote_watch,
    replication,
    status,
)

logger = logging.getLogger("checkout_operator.reconcile")

_LOOP = tasks.Policy(finishable=False)
"""A periodic loop: a failed pass is logged and the loop restarted after a backoff."""


Started = Callable[[], object]
"""Called by a run when it starts its work (after waiting for a lock or a slot)."""


class Debouncer:
    """Runs ``run(ref, started)`` once, ``delay`` seconds after the first of a burst of pokes.

    A ref stays pending until its run calls ``started``: pokes that arrive while the run
    still waits (for its region's lock, or for a free reconcile slot) are folded into it
    rather than queueing a second run behind it."""

    def __init__(self, run: Callable[[index.Ref, Started], Awaitable[Any]], delay: float) -> None:
        self._run = run
        self._delay = delay
        self._pending: set[index.Ref] = set()
        self._tasks = tasks.Supervisor(logger)
        self._runs = 0

    def poke(self, ref: index.Ref) -> bool:
        """Schedule a run for ``ref``; False if one is already pending."""
        if ref in self._pending:
            return False
        self._pending.add(ref)
        self._runs += 1
        # one-shot: a failed run is logged; the next poke (or the resync) tries again
        self._tasks.start(
            f"reconcile {ref} #{self._runs}", lambda: self._later(ref), policy=tasks.ONCE
        )
        return True

    async def _later(self, ref: index.Ref) -> None:
        started = False

        def start() -> None:
            nonlocal started
            if not started:
                started = True
                self._pending.discard(ref)

        try:
            await asyncio.sleep(self._delay)
            await self._run(ref, start)
        finally:
            start()  # a run that failed or was cancelled before it started

    async def drain(self) -> None:
        """Wait for every scheduled run (tests)."""
        await self._tasks.drain()

    async def aclose(self) -> None:
        await self._tasks.aclose()


def region_of_child(child: Mapping[str, Any], regions: list[dict[str, Any]]) -> index.Ref | None:
    """The CheckoutRegion a child belongs to: its controller owner reference, else the region
    label matched against the regions of its namespace."""
    meta = child.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == region.REGION_KIND and str(ref.get("apiVersion", "")).startswith(
            region.GROUP + "/"
        ):
            return index.Ref(namespace, str(ref.get("name")))
    label = (meta.get("labels") or {}).get(region.REGION_LABEL)
    for body in regions:
        if index.region_name(body) == label and index.ref(body).namespace == namespace:
            return index.ref(body)
    return None


class Controller:
    def __init__(self, ctx: region.Context, *, debounce: float = 0.5) -> None:
        self.ctx = ctx
        self.debouncer = Debouncer(self._deferred, debounce)
        self.routes = index.RouteIndex()
        self._loops = tasks.Supervisor(logger)
        self.failover: failover.Engine | None = None
        self.leader: leader.Leader | None = None
        self.remote_watches = remote_watch.RemoteWatches(ctx, self.debouncer.poke)

    async def reconcile(self, ref: index.Ref) -> region.Result:
        return await region.reconcile_region(self.ctx, ref)

    async def _deferred(self, ref: index.Ref, started: Started) -> region.Result:
        return await region.reconcile_region(
            self.ctx, ref, on_start=started, priority=region.BACKGROUND
        )

    async def _fleet_peers(self, body: Mapping[str, Any]) -> list[index.Ref]:
        ref = index.ref(body)
        fleet = (body.get("spec") or {}).get("fleet")
        regions = await self.ctx.client.list(region.API_VERSION, region.REGION_KIND, ref.namespace)
        return sorted(
            index.ref(r)
            for r in regions
            if index.ref(r) != ref and (r.get("spec") or {}).get("fleet") == fleet
        )

    async def region_changed(self, body: Mapping[str, Any], *, peers: bool = True) -> region.Result:
        self.remote_watches.track(body)
        result = await self.reconcile(index.ref(body))
        if peers:
            for peer in await self._fleet_peers(body):
                self.debouncer.poke(peer)
        return result

    async def region_deleted(self, body: Mapping[str, Any]) -> list[str]:
        deleted: list[str] = []
        if region.placement_of(body).remote is not None:
            deleted = await region.cleanup_region(self.ctx, body)
        return deleted

    async def region_gone(self, body: Mapping[str, Any]) -> None:
        """A region is gone: its fleet peers' routing changes; its remote cluster may go
        unwatched."""
        self.remote_watches.forget(index.ref(body))
        for peer in await self._fleet_peers(body):
            self.debouncer.poke(peer)

    async def child_event(self, child: Mapping[str, Any]) -> index.Ref | None:
        meta = child.get("metadata") or {}
        regions: list[dict[str, Any]] = []
        if not any(r.get("kind") == region.REGION_KIND for r in meta.get("ownerReferences") or ()):
            regions = await self.ctx.client.list(
                region.API_VERSION, region.REGION_KIND, str(meta.get("namespace") or "")
            )
        ref = region_of_child(child, regions)
        if ref is not None:
            self.debouncer.poke(ref)
        return ref

    async def route_changed(
        self,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        *,
        reconcile_regions: bool = True,
    ) -> list[region.Result]:
        """Re-reconcile the regions ``old`` selected or ``new`` selects; write ``new``'s status."""
        route = new or old
        assert route is not None
        if old is not None and new is not None:
            # kopf's ``old`` is the last handled essence: spec, labels, annotations.
            old = {**old, "metadata": {**(old.get("metadata") or {}), **new["metadata"]}}
        ref = index.ref(route)
        regions = await self.ctx.client.list(region.API_VERSION, region.REGION_KIND, ref.namespace)
        affected = set(index.affected_regions(old, new, regions))
        if new is None:
            affected |= set(self.routes.remove(route))
        else:
            affected |= set(self.routes.update(new, regions))
        results = []
        if reconcile_regions:
            results = [await self.reconcile(r) for r in sorted(affected)]
        if new is not None:
            await self.write_route_status(new, regions)
        return results

    async def write_route_status(
        self, route: Mapping[str, Any], regions: list[dict[str, Any]]
    ) -> bool:
        ref = index.ref(route)
        fresh = await self.ctx.client.get_or_none(
            region.API_VERSION, region.ROUTE_KIND, ref.name, ref.namespace
        )
        if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
            return False
        error = ""
        try:
            load.parse({k: v for k, v in fresh.items() if k != "status"})
        except load.InvalidObject as exc:
            error = str(exc)
        names = sorted({index.region_name(r) for r in regions if index.selects(fresh, r)})
        previous = fresh.get("status") or {}
        generation = int((fresh.get("metadata") or {}).get("generation") or 0)
        new = status.route_status(generation, previous, names, self.ctx.clock(), error)
        if not status.changed(previous, new):
            return False
        await self.ctx.client.patch_status(
            region.API_VERSION, region.ROUTE_KIND, ref.name, ref.namespace, new
        )
        if error and status.degraded_transition(previous, new):
            await self.ctx.client.post_event(
                fresh, type_="Warning", reason="InvalidSpec", message=error
            )
        return True

    async def resync_all(self, namespaces: Sequence[str] | None) -> list[region.Result]:
        """Reconcile every CheckoutRegion of ``namespaces`` (None: all namespaces), one by one.

        The periodic safety net for what no watch reports: drift of kinds the operator does not
        watch, children in remote clusters, rollouts finishing there.
        """
        bodies: list[dict[str, Any]] = []
        for ns in namespaces if namespaces is not None else [None]:
            bodies += await self.ctx.client.list(region.API_VERSION, region.REGION_KIND, ns)
        self.remote_watches.sync(bodies)
        return [
            await region.reconcile_region(self.ctx, r, priority=region.BACKGROUND)
            for r in sorted(index.ref(b) for b in bodies)
        ]

    def start_resync(self, namespaces: Sequence[str] | None, interval: float) -> None:
        """Run ``resync_all`` every ``interval`` seconds until ``aclose``.

        One loop for the operator rather than a kopf timer per object: kopf puts its finalizer
        on every object that has a timer, and only remote regions need one.
        """

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                await self.resync_all(namespaces)

        if self._loops.get("periodic resync") is None:
            self._loops.start("periodic resync", loop, policy=_LOOP)

    async def observe_replication_all(self, namespaces: Sequence[str] | None) -> int:
        """Measure the replication lag of every CheckoutRegion with peers; statuses written."""
        bodies: list[dict[str, Any]] = []
        for ns in namespaces if namespaces is not None else [None]:
            bodies += await self.ctx.client.list(region.API_VERSION, region.REGION_KIND, ns)
        written = 0
        for ref in sorted(index.ref(b) for b in bodies):
            try:
                if await replication.observe(self.ctx, ref) is not None:
                    written += 1
            except kerrors.KubeError:
                logger.exception("replication lag of %s not recorded", ref)
        return written

    def start_replication_monitor(self, namespaces: Sequence[str] | None, interval: float) -> None:
        """Run ``observe_replication_all`` every ``interval`` seconds until ``aclose``."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                await self.observe_replication_all(namespaces)

        if self._loops.get("replication lag monitor") is None:
            self._loops.start("replication lag monitor", loop, policy=_LOOP)

    def start_failover(
        self,
        engine_ctx: region.Context,
        namespaces: Sequence[str] | None,
        *,
        tick: float = 0.5,
        leader_namespace: str = "default",
        elected: leader.Leader | None = None,
    ) -> failover.Engine:
        """Probe the regions and move markets (only while this replica holds the leader
        Lease). ``engine_ctx`` has its own client, so reconcile write counts stay the
        reconciler's own. ``elected``: the process's leader (``run --leader-elect``, owned by
        the caller), which then gates the engine too; else the engine's own Lease
        ``checkout-operator-failover`` in ``leader_namespace``."""

        async def rerender(refs: Sequence[index.Ref]) -> None:
            for ref in refs:
                self.debouncer.poke(ref)

        gate = elected or leader.Leader(engine_ctx.client, leader_namespace)
        self.failover = failover.Engine(
            engine_ctx, on_routing=rerender, tick=tick, is_leader=gate.is_leader
        )
        if elected is None:
            self.leader = gate
            gate.start()
        self.failover.start(namespaces)
        return self.failover

    async def aclose(self) -> None:
        if self.failover is not None:
            await self.failover.aclose()
        if self.leader is not None:
            await self.leader.aclose()
        if self.failover is not None:
            await self.failover.ctx.client.aclose()
        await self._loops.aclose()
        await self.remote_watches.aclose()
        await self.debouncer.aclose()
        if self.ctx.remotes is not None:
            await self.ctx.remotes.aclose()
        await self.ctx.client.aclose()


def is_transient(exc: BaseException) -> bool:
    """Cluster errors worth a retry (unreachable, throttled, conflicts, 5xx)."""
    return isinstance(
        exc,
        kerrors.TransportError | kerrors.ServerError | kerrors.TooManyRequests | kerrors.Conflict,
    )
