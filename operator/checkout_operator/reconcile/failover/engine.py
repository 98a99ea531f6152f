"""The failover engine's loop: decide every ``tick``, or at once when something changed.

A round, per fleet: the regions from the watch's index (:mod:`.watching`), their probed health
(:mod:`.probing`), the market Leases read from the lease store; the pure decision
(:mod:`.deciding`); the actions carried out on the Leases, all markets at once (:mod:`.moving`);
then statuses, routing, history and Events queued for the recorder (:mod:`.recording`). A lost
compare-and-swap wakes the loop again at once. The lease store unreachable freezes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import checkout_tasks as tasks
from checkout_contract import lease as contract
from checkout_kube import errors as kerrors
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.probes import http as probes
from checkout_operator.reconcile import index, leases, region, requests
from checkout_operator.reconcile.failover import recording
from checkout_operator.reconcile.failover.deciding import FleetView
from checkout_operator.reconcile.failover.moving import Move, Mover
from checkout_operator.reconcile.failover.probing import Probing
from checkout_operator.reconcile.failover.recording import Member
from checkout_operator.reconcile.failover.watching import Watcher, fleets

logger = logging.getLogger("checkout_operator.failover")

RoutingHook = Callable[[Sequence[index.Ref]], Awaitable[Any]]


class Engine:
    def __init__(
        self,
        ctx: region.Context,
        prober: probes.Prober | None = None,
        on_routing: RoutingHook | None = None,
        clock: Callable[[], float] = time.time,
        tick: float = 0.5,
        *,
        watch_leases: bool = True,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self.ctx = ctx
        self.on_routing = on_routing
        self.clock = clock
        self.tick = tick
        self.watch_leases = watch_leases
        """React to a Lease's holder / epoch / state / acknowledgement changing (a watch)
        instead of waiting for the next tick; the tick stays as the safety net."""
        self.is_leader = is_leader
        self.decisions = 0
        self._wake = asyncio.Event()
        self._tasks = tasks.Supervisor(logger)
        self.probing = Probing(prober or probes.Prober(), self._wake.set, self._tasks)
        self.recorder = recording.Recorder()
        self.mover = Mover(ctx.client, clock, self.probing.health_of)
        self.statuses = recording.StatusWriter(ctx.client)
        self.watcher: Watcher | None = None
        self._frozen: dict[str, bool] = {}
        self._expiries: dict[str, float] = {}
        """Lease name -> when a fenced, unacknowledged lease runs out (wall clock): the loop
        wakes then instead of at its next tick."""

    @property
    def health(self) -> dict[tuple[str, str], fh.Health]:
        return self.probing.health

    @property
    def moves(self) -> list[Move]:
        return self.mover.moves

    # -- a round --------------------------------------------------------------------------------

    async def _members(self, namespace: str) -> list[Member]:
        if self.watcher is not None and self.watcher.regions.synced:
            return self.watcher.regions.members(namespace)
        # Not started (a single round called directly): read them once.
        watcher = Watcher(self.ctx.client, namespace, lambda: None)
        await watcher.list_regions()
        return watcher.regions.members(namespace)

    async def step(
        self, namespace: str, *, decide: bool = True, wait_records: bool = True
    ) -> list[fd.Decision]:
        """One decision round over every fleet of ``namespace`` (``decide`` False: only keep
        the probes in line with the CheckoutRegions, as a standby replica does).

        The leases are written in the round; statuses, routing, history and Events by the
        background recorder (``wait_records``: wait until it has written them)."""
        members = await self._members(namespace)
        for _, parsed in members:
            self.probing.ensure(namespace, parsed)
        self.probing.keep_only({(namespace, p.spec.region) for _, p in members}, namespace)
        if not decide:
            return []
        by_fleet = fleets(members)
        out = [await self.fleet_step(namespace, f, by_fleet[f]) for f in sorted(by_fleet)]
        if wait_records:
            await self.flush()
        return out

    async def fleet_step(
        self, namespace: str, fleet: str, members: Sequence[Member]
    ) -> fd.Decision:
        self.decisions += 1
        view = FleetView.of(members, lambda name: self.probing.health_of(namespace, name))
        reachable = True
        current: dict[str, contract.WriteLease] = {}
        try:
            current = await leases.read(self.ctx.client, namespace, fleet)
        except kerrors.KubeError as exc:
            reachable = False
            logger.warning(
                "fleet %s/%s: lease store unreachable, frozen: %s", namespace, fleet, exc
            )
        now = self.clock()
        obs = view.observe(now, current, reachable)
        # imperative requests (annotation) judged against this round's observation
        obs = await requests.consume(
            self.ctx.client,
            obs,
            view.by_name,
            recording.rfc3339(now),
            functools.partial(recording.post_event, self.ctx.client),
        )
        decision = fd.decide(obs)
        if not reachable:
            self._frozen[namespace] = True
            return decision  # nothing can be written anyway; status waits for the store
        if self._frozen.pop(namespace, False):
            logger.info("fleet %s/%s: lease store reachable again", namespace, fleet)
        # The lease writes first, all markets at once (each its own compare-and-swap): the
        # history, Events and logs of a move wait until every market has its new writer.
        outcomes = await asyncio.gather(
            *(
                self.mover.carry_out(namespace, fleet, action, current, view)
                for action in decision.actions
            ),
            return_exceptions=True,
        )
        routing_changed = False
        follow_ups: list[recording.Job] = []
        for action, outcome in zip(decision.actions, outcomes, strict=True):
            if isinstance(outcome, kerrors.Conflict):
                logger.info("fleet %s/%s: %s lost a race; deciding again", namespace, fleet, action)
                # At once, not at the next tick: every keeper of a region patches the Lease
                # (its own record), so a fence or promotion loses races to renewals; the lease
                # watch does not wake the loop for renewals.
                self._wake.set()
            elif isinstance(outcome, kerrors.KubeError):
                logger.warning("fleet %s/%s: %s failed: %s", namespace, fleet, action, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                routing_changed |= outcome[0]
                if outcome[1] is not None:
                    follow_ups.append(outcome[1])
        self._watch_expiry(current)
        job = self._statuses_job(
            namespace,
            fleet,
            decision,
            current,
            view,
            reread=routing_changed or bool(decision.actions),
            routing_changed=routing_changed,
        )
        self.recorder.record(((namespace, fleet), job), follow_ups)
        return decision

    def _statuses_job(
        self,
        namespace: str,
        fleet: str,
        decision: fd.Decision,
        current: Mapping[str, contract.WriteLease],
        view: FleetView,
        *,
        reread: bool,
        routing_changed: bool,
    ) -> recording.Job:
        """Statuses and routing follow the leases (latest state wins); none of it holds up the
        next decision round."""
        written = dict(current)

        async def statuses() -> None:
            now_current: Mapping[str, contract.WriteLease] = written
            if reread:
                with contextlib.suppress(kerrors.KubeError):
                    now_current = await leases.read(self.ctx.client, namespace, fleet)
            changed = await self.statuses.write(
                namespace,
                fleet,
                decision,
                now_current,
                view.by_name,
                lambda name: self.probing.health_of(namespace, name),
            )
            if (routing_changed or changed) and self.on_routing is not None:
                await self.on_routing(sorted(index.ref(b) for b, _ in view.by_name.values()))

        return statuses

    def _watch_expiry(self, current: Mapping[str, contract.WriteLease]) -> None:
        for lease in current.values():
            name = str((lease.raw.get("metadata") or {}).get("name") or lease.market)
            if lease.state == "Fencing" and lease.acked_epoch != lease.epoch:
                self._expiries[name] = contract.expires_at(lease.renewed_at, lease.duration)
            else:
                self._expiries.pop(name, None)

    async def flush(self) -> None:
        """Until every status, routing change, history entry and Event queued so far is
        written (or failed and logged)."""
        await self.recorder.flush()

    # -- the loop -------------------------------------------------------------------------------

    def _timeout(self) -> float:
        """Until the next tick, or just past the earliest expiry of a fenced lease."""
        now = self.clock()
        ahead = [at - now + 0.005 for at in self._expiries.values() if at + 0.005 > now]
        return max(0.0, min([self.tick, *ahead]))

    async def run(self, namespaces: Sequence[str] | None) -> None:
        """Decide every ``tick`` seconds, or at once when a probe changes a region's health, a
        region comes, goes or changes its spec, a market Lease changes hands / state /
        acknowledgement, or a fenced lease expires. ``namespaces`` None: every namespace.

        A standby replica (``is_leader`` False) keeps probing (every region's history is warm
        when it takes over) but decides nothing."""
        only = set(namespaces) if namespaces is not None else None
        if self.watcher is None:
            # one watch per watched namespace (cluster-wide only when every namespace is
            # watched): the operator's RBAC may be per namespace
            scopes: list[str | None] = list(namespaces) if namespaces else [None]
            self.watcher = Watcher(self.ctx.client, scopes[0], self._wake.set)
            for ns in scopes:
                watcher = (
                    self.watcher
                    if ns == scopes[0]
                    else Watcher(self.ctx.client, ns, self._wake.set, self.watcher.regions)
                )
                where = ns or "all namespaces"
                self._tasks.start(f"failover region watch ({where})", watcher.watch_regions)
                if self.watch_leases:
                    self._tasks.start(f"failover lease watch ({where})", watcher.watch_leases)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout()):
                    await self._wake.wait()
            self._wake.clear()
            if not self.watcher.regions.synced:
                continue  # the watch's first list has not come yet
            leading = self.is_leader()
            names = self.watcher.regions.namespaces()
            for gone in self.probing.namespaces() - set(names):
                self.probing.keep_only(set(), gone)  # its last region was deleted
            for ns in names if only is None else sorted(only.intersection(names)):
                try:
                    await self.step(ns, decide=leading, wait_records=False)
                except kerrors.KubeError as exc:
                    logger.warning("failover step of namespace %s failed: %s", ns, exc)
                except Exception:
                    # one namespace's failure (a bug) must not stop failover in the others
                    logger.exception("failover step of namespace %s failed", ns)

    def start(self, namespaces: Sequence[str] | None) -> None:
        if self._tasks.get("failover loop") is None:
            self._tasks.start(
                "failover loop", lambda: self.run(namespaces), policy=tasks.Policy(finishable=False)
            )

    async def aclose(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.flush()
        await self.recorder.aclose()
        await self._tasks.aclose()
        self.watcher = None
        await self.probing.prober.aclose()
