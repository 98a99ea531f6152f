"""The failover engine: probe every region, decide (pure), carry the decision out, record why.

One loop per operator: a probe task per region (its own ``periodSeconds`` and
``timeoutSeconds``) folds results into the region's health and wakes the decision loop, which,
per fleet, reads the CheckoutRegions and the market Leases, asks
:func:`checkout_operator.failover.decide.decide`, and then:

* creates missing leases, fences and promotes by compare-and-swap
  (:mod:`checkout_operator.reconcile.leases`); a lost race is simply decided again;
* writes the home regions' ``status.markets`` (writer, epoch, state, lease expiry, why),
  ``health``, ``expectedFailoverSeconds``, ``lastFailover`` and ``history``: the renderer turns
  ``status.markets`` into the fleet routing ConfigMap of every region, which this engine asks
  the controller to re-render whenever a writer or state changes;
* posts Events (Fencing, FailedOver, MarketDown, LeaseStoreUnreachable) and records metrics.

Automatic failover never writes ``spec`` (GitOps): only status, Leases and Events. The lease
store unreachable freezes everything. With ``spec.failover.dryRun`` the moves are computed and
shown in ``status.markets[].message`` and an Event, never carried out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from checkout_contract import lease as contract
from checkout_kube import errors as kerrors
from checkout_operator import metrics
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.residency import market_residency
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.failover import summary
from checkout_operator.probes import http as probes
from checkout_operator.reconcile import index, leases, region, requests
from checkout_operator.render import configmaps

logger = logging.getLogger("checkout_operator.failover")

HISTORY_LIMIT: Final = 20
STANDBY_REFRESH: Final = 5.0
"""Seconds between a standby replica's re-reads of the CheckoutRegions (for its probes)."""
OWNED_KEYS: Final = ("markets", "health", "expectedFailoverSeconds", "lastFailover", "history")

RoutingHook = Callable[[Sequence[index.Ref]], Awaitable[Any]]


def rfc3339(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def health_url(parsed: CheckoutRegion) -> str:
    base = parsed.spec.gateway_url or configmaps.gateway_url(parsed)
    return base.rstrip("/") + parsed.spec.health_probe.path


@dataclass(frozen=True)
class ProbeSpec:
    url: str
    period: float
    timeout: float
    thresholds: fh.Thresholds


@dataclass
class Move:
    """A completed promotion, for the record and the benchmark."""

    namespace: str
    fleet: str
    market: str
    from_region: str
    to: str
    epoch: int
    reason: str
    first_failure_at: float | None
    fenced_at: float
    promoted_at: float
    """When the promoting compare-and-swap returned (the new writer's lease exists)."""
    fenced_by: str
    old_lease_expiry: float | None = None
    """When the old writer's lease ran out (its last renewal + duration), for the floor of an
    unreachable region."""


@dataclass
class _Pending:
    """A fence this operator carried out, waiting for promotion (evidence kept for the record)."""

    fence: fd.Fence
    at: float
    first_failure_at: float | None


@dataclass
class Engine:
    ctx: region.Context
    prober: probes.Prober = field(default_factory=probes.Prober)
    on_routing: RoutingHook | None = None
    clock: Callable[[], float] = time.time
    tick: float = 0.5
    health: dict[tuple[str, str], fh.Health] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)
    decisions: int = 0
    _specs: dict[tuple[str, str], ProbeSpec] = field(default_factory=dict)
    _tasks: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    _pending: dict[tuple[str, str], _Pending] = field(default_factory=dict)
    _frozen: dict[str, bool] = field(default_factory=dict)
    _down: dict[tuple[str, str], bool] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.Task[None] | None = None
    _watch: asyncio.Task[None] | None = None
    _expiries: dict[str, float] = field(default_factory=dict)
    """Lease name -> when a fenced, unacknowledged lease runs out (wall clock): the loop
    wakes then instead of at its next tick."""
    _lease_states: dict[str, tuple[str, int, str, int]] = field(default_factory=dict)
    _standby_refreshed: float = -1e9
    watch_leases: bool = True
    """React to a Lease's holder / epoch / state / acknowledgement changing (a watch) instead of
    waiting for the next tick; the tick stays as the safety net."""
    is_leader: Callable[[], bool] = lambda: True
    _latest: dict[tuple[str, str], Callable[[], Awaitable[None]]] = field(default_factory=dict)
    """(namespace, fleet) -> its newest status / routing write (latest state wins)."""
    _records: collections.deque[Callable[[], Awaitable[None]]] = field(
        default_factory=collections.deque
    )
    """History, Events and logs of each move, in the order the moves happened (never dropped)."""
    _more: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _recorder: asyncio.Task[None] | None = None

    # -- probes -------------------------------------------------------------------------------

    def _ensure_probe(self, namespace: str, parsed: CheckoutRegion) -> None:
        key = (namespace, parsed.spec.region)
        hp = parsed.spec.health_probe
        spec = ProbeSpec(
            health_url(parsed),
            float(hp.period_seconds),
            float(hp.timeout_seconds),
            fh.Thresholds(hp.failure_threshold, hp.success_threshold),
        )
        if self._specs.get(key) == spec and key in self._tasks:
            return
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()
        self._specs[key] = spec
        self._tasks[key] = asyncio.get_running_loop().create_task(self._probe_loop(key, spec))

    def _drop_probes(self, keep: set[tuple[str, str]], namespace: str) -> None:
        for key in [k for k in self._tasks if k[0] == namespace and k not in keep]:
            self._tasks.pop(key).cancel()
            self._specs.pop(key, None)
            self.health.pop(key, None)

    async def _probe_loop(self, key: tuple[str, str], spec: ProbeSpec) -> None:
        while True:
            started = time.monotonic()
            result = await self.prober.probe(spec.url, spec.timeout)
            metrics.PROBE_SECONDS.labels(region=key[1], outcome=result.outcome).observe(
                result.latency
            )
            before = self.health.get(key, fh.Health())
            after = fh.observe(before, result, spec.thresholds)
            self.health[key] = after
            if after.state != before.state:
                # The threshold-th failure (or success) is a decision at once; the probes in
                # between only change the status, which the next tick writes (a round per
                # failed probe kept the loop busy when the deciding probe came).
                self._wake.set()
            await asyncio.sleep(max(0.0, spec.period - (time.monotonic() - started)))

    # -- the decision loop --------------------------------------------------------------------

    async def step(
        self, namespace: str, *, decide: bool = True, wait_records: bool = True
    ) -> list[fd.Decision]:
        """One decision round over every fleet of ``namespace`` (``decide`` False: only keep
        the probes in line with the CheckoutRegions, as a standby replica does).

        The leases are written in the round; statuses, routing, history and Events by the
        background recorder (``wait_records``: wait until it has written them)."""
        bodies = await self.ctx.client.list(region.API_VERSION, region.REGION_KIND, namespace)
        fleets: dict[str, list[tuple[dict[str, Any], CheckoutRegion]]] = {}
        keep: set[tuple[str, str]] = set()
        for body in bodies:
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            try:
                parsed = load.parse({k: v for k, v in body.items() if k != "status"})
            except (load.InvalidObject, ValidationError, ValueError):
                continue
            if not isinstance(parsed, CheckoutRegion):
                continue
            fleets.setdefault(parsed.spec.fleet, []).append((body, parsed))
            self._ensure_probe(namespace, parsed)
            keep.add((namespace, parsed.spec.region))
        self._drop_probes(keep, namespace)
        if not decide:
            return []
        out = []
        for fleet in sorted(fleets):
            out.append(await self.fleet_step(namespace, fleet, fleets[fleet]))
        if wait_records:
            await self.flush()
        return out

    # -- the recorder: what follows the leases, off the decision path --------------------------

    def _record(
        self,
        status: tuple[tuple[str, str], Callable[[], Awaitable[None]]] | None,
        records: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        if status is not None:
            self._latest[status[0]] = status[1]
        self._records.extend(records)
        if not self._latest and not self._records:
            return
        self._idle.clear()
        self._more.set()
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.get_running_loop().create_task(self._record_loop())

    async def _record_loop(self) -> None:
        """Write the newest status of each fleet, then every move's records in order; the
        decision loop (probes, fences, promotions) never waits for these writes."""
        while True:
            await self._more.wait()
            self._more.clear()
            while self._latest or self._records:
                if self._latest:
                    job = self._latest.pop(next(iter(self._latest)))
                else:
                    job = self._records.popleft()
                try:
                    await job()
                except kerrors.KubeError as exc:
                    logger.warning("failover record not written: %s", exc)
                except Exception:
                    logger.exception("failover record not written")
            if not self._more.is_set():
                self._idle.set()

    async def flush(self) -> None:
        """Until every status, routing change, history entry and Event queued so far is
        written (or failed and logged)."""
        while self._latest or self._records or not self._idle.is_set():
            if self._recorder is None or self._recorder.done():
                if not self._latest and not self._records:
                    return
                self._record(None)
            await self._idle.wait()

    def _info(
        self, namespace: str, body: Mapping[str, Any], parsed: CheckoutRegion
    ) -> fd.RegionInfo:
        spec = parsed.spec
        fo = spec.failover
        lag_from: dict[str, int | None] = {}
        for peer in (body.get("status") or {}).get("replication") or ():
            name = str(peer.get("peer") or "")
            if not name:
                continue
            known = not peer.get("message") and peer.get("observedAt")
            lag_from[name] = int(peer.get("lagMessages") or 0) if known else None
        for peer in spec.replication.peers:
            lag_from.setdefault(peer.region, None)
        return fd.RegionInfo(
            name=spec.region,
            jurisdiction=spec.jurisdiction,
            health=self.health.get((namespace, spec.region), fh.Health()),
            home_markets={
                m.country: market_residency(
                    m.country, spec.region, spec.jurisdiction, m.allowed_jurisdictions
                )
                for m in spec.home_markets
            },
            targets=fo.targets,
            policy=fo.policy,
            failback=fo.failback,
            soak_seconds=fo.soak_seconds,
            min_dwell_seconds=fo.min_dwell_seconds,
            drain=fo.drain,
            return_home=fo.return_home,
            dry_run=fo.dry_run,
            accept_data_loss=fo.accept_data_loss,
            max_lag=spec.replication.max_lag_on_failover,
            lag_from=lag_from,
        )

    async def fleet_step(
        self, namespace: str, fleet: str, members: Sequence[tuple[dict[str, Any], CheckoutRegion]]
    ) -> fd.Decision:
        self.decisions += 1
        infos = {p.spec.region: self._info(namespace, b, p) for b, p in members}
        by_name = {p.spec.region: (b, p) for b, p in members}
        home_of = {m.country: p.spec.region for _, p in members for m in p.spec.home_markets}
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
        obs = fd.Observation(
            now,
            infos,
            {m: leases.to_decision(current[m]) if m in current else None for m in home_of},
            reachable,
        )
        obs = await requests.consume(self.ctx.client, obs, by_name, rfc3339(now), self._event)
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
                self._carry_out(namespace, fleet, action, current, infos, by_name)
                for action in decision.actions
            ),
            return_exceptions=True,
        )
        routing_changed = False
        follow_ups: list[Callable[[], Awaitable[None]]] = []
        for action, outcome in zip(decision.actions, outcomes, strict=True):
            if isinstance(outcome, kerrors.Conflict):
                logger.info("fleet %s/%s: %s lost a race; deciding again", namespace, fleet, action)
                # At once, not at the next tick: every keeper of a region now patches the
                # Lease (its own record), so a fence or promotion loses races to renewals; the
                # lease watch does not wake the loop for renewals.
                self._wake.set()
            elif isinstance(outcome, kerrors.KubeError):
                logger.warning("fleet %s/%s: %s failed: %s", namespace, fleet, action, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                changed_routing, follow_up = outcome
                routing_changed |= changed_routing
                if follow_up is not None:
                    follow_ups.append(follow_up)
        self._watch_expiry(current)
        # Statuses and routing follow the leases (latest state wins), then each move's
        # history and Events (in order): none of it holds up the next decision round.
        reread = bool(routing_changed or decision.actions)
        written = dict(current)

        async def statuses() -> None:
            now_current = written
            if reread:
                with contextlib.suppress(kerrors.KubeError):
                    now_current = await leases.read(self.ctx.client, namespace, fleet)
            changed = await self._write_statuses(namespace, fleet, decision, now_current, by_name)
            if (routing_changed or changed) and self.on_routing is not None:
                await self.on_routing(sorted(index.ref(b) for b, _ in members))

        self._record(((namespace, fleet), statuses), follow_ups)
        return decision

    def _watch_expiry(self, current: Mapping[str, contract.WriteLease]) -> None:
        for lease in current.values():
            name = str((lease.raw.get("metadata") or {}).get("name") or lease.market)
            if lease.state == "Fencing" and lease.acked_epoch != lease.epoch:
                self._expiries[name] = lease.renewed_at + lease.duration
            else:
                self._expiries.pop(name, None)

    async def _carry_out(
        self,
        namespace: str,
        fleet: str,
        action: fd.Action,
        current: dict[str, contract.WriteLease],
        infos: Mapping[str, fd.RegionInfo],
        by_name: Mapping[str, tuple[dict[str, Any], CheckoutRegion]],
    ) -> tuple[bool, Callable[[], Awaitable[None]] | None]:
        """Write the action's lease; returns whether routing changed and what to record
        afterwards (history, Events, logs), so records never delay another market's move."""
        home = next(n for n, i in infos.items() if action.market in i.home_markets)
        body, parsed = by_name[home]
        duration = parsed.spec.failover.write_lease_seconds
        if isinstance(action, fd.CreateLease):
            with contextlib.suppress(kerrors.Conflict):
                current[action.market] = await leases.create(
                    self.ctx.client, namespace, fleet, action.market, action.holder, duration,
                    self.clock(),
                )  # fmt: skip
            return True, None
        if action.dry_run:
            return False, None
        lease = current[action.market]
        key = (namespace, action.market)
        if isinstance(action, fd.Fence):
            current[action.market] = await leases.fence(
                self.ctx.client, lease, action.to, action.reason
            )
            first = None
            if action.reason == "ProbeFailures":
                first = self.health.get((namespace, action.holder), fh.Health()).first_failure_at
            self._pending[key] = _Pending(action, self.clock(), first)
            fence = action

            async def fenced() -> None:
                await self._event(
                    body,
                    "Normal",
                    "Fencing",
                    f"market {fence.market}: fencing {fence.holder} (epoch {fence.epoch}) "
                    f"to promote {fence.to}; reason {fence.reason}; actor {fence.actor}; "
                    + "; ".join(fence.evidence),
                )

            return True, fenced
        assert isinstance(action, fd.Promote)
        promote = action
        current[action.market] = await leases.promote(
            self.ctx.client, lease, action.to, action.epoch, duration, self.clock()
        )
        now = self.clock()
        pending = self._pending.pop(key, None)
        evidence = (*(pending.fence.evidence if pending else ()), *action.evidence)
        actor = pending.fence.actor if pending else action.actor
        move = Move(
            namespace,
            fleet,
            action.market,
            action.from_region,
            action.to,
            action.epoch,
            action.reason,
            pending.first_failure_at if pending else None,
            pending.at if pending else now,
            now,
            action.fenced_by,
            lease.renewed_at + lease.duration,
        )
        self.moves.append(move)
        metrics.FAILOVERS.labels(fleet=fleet, reason=action.reason).inc()
        metrics.LAST_MOVE.labels(fleet=fleet, market=action.market).set(now)
        metrics.SECONDS_SINCE_MOVE.labels(fleet=fleet, market=action.market).set_function(_age(now))

        async def promoted() -> None:
            record = {
                "time": rfc3339(now),
                "markets": [promote.market],
                "from": promote.from_region,
                "to": promote.to,
                "epoch": promote.epoch,
                "reason": promote.reason,
                "evidence": list(evidence),
                "actor": actor,
            }
            try:
                await self._append_history(body, record)
            except kerrors.KubeError as exc:
                logger.warning("history of market %s not written: %s", promote.market, exc)
            await self._event(
                body,
                "Warning" if promote.reason == "ProbeFailures" else "Normal",
                "FailedOver" if promote.reason in ("ProbeFailures", "Drain") else "FailedBack",
                f"market {promote.market} moved from {promote.from_region} to {promote.to} at "
                f"epoch {promote.epoch}; reason {promote.reason}; actor {actor}; old writer "
                f"{promote.fenced_by}; " + "; ".join(evidence),
            )
            logger.warning(
                "market %s moved %s -> %s (epoch %d, %s)",
                promote.market,
                promote.from_region,
                promote.to,
                promote.epoch,
                promote.reason,
            )

        return True, promoted

    async def _event(self, body: Mapping[str, Any], type_: str, reason: str, msg: str) -> None:
        try:
            await self.ctx.client.post_event(body, type_=type_, reason=reason, message=msg)
        except kerrors.KubeError as exc:
            logger.warning("event %s not posted: %s", reason, exc)

    async def _append_history(self, body: Mapping[str, Any], record: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        fresh = await self.ctx.client.get(
            region.API_VERSION, region.REGION_KIND, str(meta["name"]), str(meta["namespace"])
        )
        history = [record, *((fresh.get("status") or {}).get("history") or ())][:HISTORY_LIMIT]
        await self.ctx.client.patch_status(
            region.API_VERSION,
            region.REGION_KIND,
            str(meta["name"]),
            str(meta["namespace"]),
            {"lastFailover": record, "history": history},
        )

    async def _write_statuses(
        self,
        namespace: str,
        fleet: str,
        decision: fd.Decision,
        current: Mapping[str, contract.WriteLease],
        by_name: Mapping[str, tuple[dict[str, Any], CheckoutRegion]],
    ) -> bool:
        """Each home region's markets and health; True when a writer or state changed."""
        plans = {p.market: p for p in decision.markets}
        routing_changed = False
        for name, (body, parsed) in sorted(by_name.items()):
            hp = parsed.spec.health_probe
            markets = []
            for m in parsed.spec.home_markets:
                lease = current.get(m.country)
                plan = plans.get(m.country)
                if lease is None or plan is None:
                    continue
                state = "Fencing" if lease.state == "Fencing" else plan.state
                if state == "Fencing" and lease.state != "Fencing":
                    state = "Serving"  # a dry run or a lost race: nothing is fenced
                message = plan.message
                if plan.blockers:
                    message += "; blocked: " + "; ".join(plan.blockers)
                if (
                    parsed.spec.failover.dry_run
                    and plan.state == "Fencing"
                    and (lease.state == "Serving")
                ):
                    message = "dry run: " + message
                markets.append(
                    {
                        "market": m.country,
                        "writer": lease.holder,
                        "epoch": lease.epoch,
                        "state": state,
                        "target": lease.fencing_to if state == "Fencing" else "",
                        "leaseExpiresAt": rfc3339(lease.renewed_at + lease.duration),
                        "message": message,
                    }
                )
                metrics.MARKET_EPOCH.labels(fleet=fleet, market=m.country).set(lease.epoch)
                metrics.MARKET_DOWN.labels(fleet=fleet, market=m.country).set(state == "Down")
                down_key = (namespace, m.country)
                if state == "Down" and not self._down.get(down_key):
                    await self._event(
                        body, "Warning", "MarketDown", f"market {m.country}: {message}"
                    )
                self._down[down_key] = state == "Down"
            h = self.health.get((namespace, name), fh.Health())
            last = h.evidence[-1] if h.evidence else None
            health = {
                "state": h.state,
                "consecutiveFailures": h.failures,
                "consecutiveSuccesses": min(h.successes, hp.success_threshold),
                "lastProbeTime": rfc3339(last.at) if last else "",
                "message": last.describe() if last and last.outcome != "Success" else "",
            }
            new = {
                "markets": markets,
                "failoverState": summary.failover_state(name, markets),
                "writers": summary.writers(markets),
                "health": health,
                "expectedFailoverSeconds": hp.period_seconds * hp.failure_threshold
                + parsed.spec.failover.write_lease_seconds,
            }
            previous = body.get("status") or {}
            if _essence(previous) == _essence(new):
                continue
            if [(x["writer"], x["epoch"], x["state"]) for x in markets] != [
                (x.get("writer"), x.get("epoch"), x.get("state"))
                for x in previous.get("markets") or ()
            ]:
                routing_changed = True
            meta = body.get("metadata") or {}
            try:
                await self.ctx.client.patch_status(
                    region.API_VERSION,
                    region.REGION_KIND,
                    str(meta["name"]),
                    str(meta["namespace"]),
                    new,
                )
            except kerrors.KubeError as exc:
                logger.warning("status of %s not written: %s", name, exc)
        return routing_changed

    async def _namespaces(self, namespaces: Sequence[str] | None) -> list[str]:
        if namespaces is not None:
            return list(namespaces)
        bodies = await self.ctx.client.list(region.API_VERSION, region.REGION_KIND, None)
        return sorted({index.ref(b).namespace for b in bodies})

    def _timeout(self) -> float:
        """Until the next tick, or just past the earliest expiry of a fenced lease."""
        now = self.clock()
        ahead = [at - now + 0.005 for at in self._expiries.values() if at + 0.005 > now]
        return max(0.0, min([self.tick, *ahead]))

    async def run(self, namespaces: Sequence[str] | None) -> None:
        """Decide every ``tick`` seconds, or at once when a probe fails, health changes, a
        market Lease changes hands / state / acknowledgement, or a fenced lease expires.

        ``namespaces`` None: every namespace with CheckoutRegions."""
        if self.watch_leases and self._watch is None:
            ns = namespaces[0] if namespaces is not None and len(namespaces) == 1 else None
            self._watch = asyncio.get_running_loop().create_task(self._watch_loop(ns))
        self._wake.set()  # the first round at once (it starts the probes)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout()):
                    await self._wake.wait()
            self._wake.clear()
            leading = self.is_leader()
            if not leading:
                # A standby keeps probing (every region's history is warm when it takes over)
                # but re-reads the CheckoutRegions only every STANDBY_REFRESH seconds.
                if time.monotonic() - self._standby_refreshed < STANDBY_REFRESH:
                    continue
                self._standby_refreshed = time.monotonic()
            try:
                names = await self._namespaces(namespaces)
            except kerrors.KubeError as exc:
                logger.warning("failover: cannot list CheckoutRegions: %s", exc)
                continue
            for ns in names:
                try:
                    await self.step(ns, decide=leading, wait_records=False)
                except kerrors.KubeError as exc:
                    logger.warning("failover step of namespace %s failed: %s", ns, exc)
                except Exception:
                    logger.exception("failover step of namespace %s failed", ns)

    async def _watch_loop(self, namespace: str | None) -> None:
        """Wake the decision loop when a market Lease changes writer, epoch, state or
        acknowledgement (renewals alone do not wake it)."""
        while True:
            try:
                async for _type, obj in self.ctx.client.watch(
                    contract.API_VERSION, leases.KIND, namespace, contract.FLEET_LABEL
                ):
                    lease = contract.WriteLease.parse(obj)
                    meta = obj.get("metadata") or {}
                    name = f"{meta.get('namespace')}/{meta.get('name')}"
                    essence = (lease.holder, lease.epoch, lease.state, lease.acked_epoch)
                    if self._lease_states.get(name) != essence:
                        self._lease_states[name] = essence
                        self._wake.set()
            except kerrors.KubeError as exc:
                logger.debug("lease watch ended: %s", exc)
                await asyncio.sleep(1.0)
            except ValueError as exc:  # a torn line
                logger.debug("lease watch: %s", exc)
                await asyncio.sleep(1.0)

    def start(self, namespaces: Sequence[str] | None) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self.run(namespaces))

    async def aclose(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.flush()
        if self._recorder is not None:
            self._recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder
            self._recorder = None
        tasks = [
            *self._tasks.values(),
            *([self._loop] if self._loop else []),
            *([self._watch] if self._watch else []),
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._loop = None
        self._watch = None
        await self.prober.aclose()


def _age(at: float) -> Callable[[], float]:
    def age() -> float:
        return time.time() - at

    return age


def _essence(st: Mapping[str, Any]) -> Any:
    """What is worth a status write: not the lease expiry (renewed every few seconds) nor the
    time of the last probe."""
    markets = [
        {k: v for k, v in m.items() if k != "leaseExpiresAt"} for m in st.get("markets") or ()
    ]
    health = {k: v for k, v in (st.get("health") or {}).items() if k != "lastProbeTime"}
    return (markets, health, st.get("expectedFailoverSeconds"), st.get("failoverState"))
