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
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from checkout_operator import metrics
from checkout_operator.api import load
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.api.residency import market_residency
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.kube import errors as kerrors
from checkout_operator.probes import http as probes
from checkout_operator.reconcile import index, leases, region
from checkout_operator.render import configmaps
from checkout_services.common import lease as contract

logger = logging.getLogger("checkout_operator.failover")

HISTORY_LIMIT: Final = 20
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
    fenced_by: str


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
    is_leader: Callable[[], bool] = lambda: True

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
            if after.state != before.state or result.outcome != "Success":
                self._wake.set()
            await asyncio.sleep(max(0.0, spec.period - (time.monotonic() - started)))

    # -- the decision loop --------------------------------------------------------------------

    async def step(self, namespace: str) -> list[fd.Decision]:
        """One decision round over every fleet of ``namespace``."""
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
        out = []
        for fleet in sorted(fleets):
            out.append(await self.fleet_step(namespace, fleet, fleets[fleet]))
        return out

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
        decision = fd.decide(obs)
        if not reachable:
            self._frozen[namespace] = True
            return decision  # nothing can be written anyway; status waits for the store
        if self._frozen.pop(namespace, False):
            logger.info("fleet %s/%s: lease store reachable again", namespace, fleet)
        routing_changed = False
        for action in decision.actions:
            try:
                routing_changed |= await self._carry_out(
                    namespace, fleet, action, current, infos, by_name
                )
            except kerrors.Conflict:
                logger.info("fleet %s/%s: %s lost a race; deciding again", namespace, fleet, action)
            except kerrors.KubeError as exc:
                logger.warning("fleet %s/%s: %s failed: %s", namespace, fleet, action, exc)
        if routing_changed or decision.actions:
            with contextlib.suppress(kerrors.KubeError):
                current = await leases.read(self.ctx.client, namespace, fleet)
        changed = await self._write_statuses(namespace, fleet, decision, current, by_name)
        if (routing_changed or changed) and self.on_routing is not None:
            await self.on_routing(sorted(index.ref(b) for b, _ in members))
        return decision

    async def _carry_out(
        self,
        namespace: str,
        fleet: str,
        action: fd.Action,
        current: dict[str, contract.WriteLease],
        infos: Mapping[str, fd.RegionInfo],
        by_name: Mapping[str, tuple[dict[str, Any], CheckoutRegion]],
    ) -> bool:
        home = next(n for n, i in infos.items() if action.market in i.home_markets)
        body, parsed = by_name[home]
        duration = parsed.spec.failover.write_lease_seconds
        if isinstance(action, fd.CreateLease):
            with contextlib.suppress(kerrors.Conflict):
                current[action.market] = await leases.create(
                    self.ctx.client, namespace, fleet, action.market, action.holder, duration,
                    self.clock(),
                )  # fmt: skip
            return True
        if action.dry_run:
            return False
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
            await self._event(
                body,
                "Normal",
                "Fencing",
                f"market {action.market}: fencing {action.holder} (epoch {action.epoch}) "
                f"to promote {action.to}; reason {action.reason}; actor {action.actor}; "
                + "; ".join(action.evidence),
            )
            return True
        assert isinstance(action, fd.Promote)
        now = self.clock()
        current[action.market] = await leases.promote(
            self.ctx.client, lease, action.to, action.epoch, duration, now
        )
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
        )
        self.moves.append(move)
        metrics.FAILOVERS.labels(fleet=fleet, reason=action.reason).inc()
        metrics.LAST_MOVE.labels(fleet=fleet, market=action.market).set(now)
        metrics.SECONDS_SINCE_MOVE.labels(fleet=fleet, market=action.market).set_function(_age(now))
        record = {
            "time": rfc3339(now),
            "markets": [action.market],
            "from": action.from_region,
            "to": action.to,
            "epoch": action.epoch,
            "reason": action.reason,
            "evidence": list(evidence),
            "actor": actor,
        }
        await self._append_history(body, record)
        await self._event(
            body,
            "Warning" if action.reason == "ProbeFailures" else "Normal",
            "FailedOver" if action.reason in ("ProbeFailures", "Drain") else "FailedBack",
            f"market {action.market} moved from {action.from_region} to {action.to} at epoch "
            f"{action.epoch}; reason {action.reason}; actor {actor}; old writer "
            f"{action.fenced_by}; " + "; ".join(evidence),
        )
        logger.warning(
            "market %s moved %s -> %s (epoch %d, %s)",
            action.market,
            action.from_region,
            action.to,
            action.epoch,
            action.reason,
        )
        return True

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
                        "leaseExpiresAt": rfc3339(lease.renewed_at + lease.duration),
                        "message": message,
                    }
                )
                metrics.MARKET_EPOCH.labels(fleet=fleet, market=m.country).set(lease.epoch)
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

    async def run(self, namespaces: Sequence[str] | None) -> None:
        """Decide every ``tick`` seconds, or at once when a probe fails or health changes.

        ``namespaces`` None: every namespace with CheckoutRegions."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            self._wake.clear()
            if not self.is_leader():
                continue
            try:
                names = await self._namespaces(namespaces)
            except kerrors.KubeError as exc:
                logger.warning("failover: cannot list CheckoutRegions: %s", exc)
                continue
            for ns in names:
                try:
                    await self.step(ns)
                except kerrors.KubeError as exc:
                    logger.warning("failover step of namespace %s failed: %s", ns, exc)
                except Exception:
                    logger.exception("failover step of namespace %s failed", ns)

    def start(self, namespaces: Sequence[str] | None) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self.run(namespaces))

    async def aclose(self) -> None:
        tasks = [*self._tasks.values(), *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._loop = None
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
    return (markets, health, st.get("expectedFailoverSeconds"))
