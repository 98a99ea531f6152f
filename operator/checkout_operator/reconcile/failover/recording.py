"""Recording what the engine did: statuses, history, Events; written off the decision path.

The decision loop writes the Leases itself (that is the move); what follows them - each home
region's ``status.markets`` / ``health`` / ``expectedFailoverSeconds``, the routing re-render,
``lastFailover`` / ``history`` and the Events - goes through a :class:`Recorder`: the newest
status job of a fleet replaces an older one still queued (latest state wins), every move's
records are written once and in order, and a failing write is logged without stopping the
rest.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import checkout_tasks as tasks
from checkout_contract import lease as contract
from checkout_contract import timeutil
from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator import metrics
from checkout_operator.api.checkoutregion import CheckoutRegion
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.failover import summary
from checkout_operator.reconcile import region

logger = logging.getLogger("checkout_operator.failover")

HISTORY_LIMIT: Final = 20
Job = Callable[[], Awaitable[None]]
Body = dict[str, Any]
Member = tuple[Body, CheckoutRegion]
"""A CheckoutRegion as read (body, with its status) and parsed."""


rfc3339 = timeutil.rfc3339


class Recorder:
    """A queue of status jobs (one per fleet key, newest wins) and record jobs (in order),
    written by one guarded background task."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], Job] = {}
        self._records: collections.deque[Job] = collections.deque()
        self._more = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: tasks.Guarded | None = None

    def record(
        self, status: tuple[tuple[str, str], Job] | None, records: Sequence[Job] = ()
    ) -> None:
        if status is not None:
            self._latest[status[0]] = status[1]
        self._records.extend(records)
        if not self._latest and not self._records:
            return
        self._idle.clear()
        self._more.set()
        if self._task is None or self._task.done():
            self._task = tasks.start("failover recorder", self._loop, logger=logger)

    async def _loop(self) -> None:
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
        """Until every job queued so far is written (or failed and logged)."""
        while self._latest or self._records or not self._idle.is_set():
            if self._task is None or self._task.done():
                if not self._latest and not self._records:
                    return
                self.record(None)
            await self._idle.wait()

    async def aclose(self) -> None:
        if self._task is not None:
            await self._task.stop()
            self._task = None


async def post_event(
    client: kclient.KubeClient, body: Mapping[str, Any], type_: str, reason: str, msg: str
) -> None:
    try:
        await client.post_event(body, type_=type_, reason=reason, message=msg)
    except kerrors.KubeError as exc:
        logger.warning("event %s not posted: %s", reason, exc)


async def append_history(
    client: kclient.KubeClient, body: Mapping[str, Any], record: dict[str, Any]
) -> None:
    """``record`` as ``lastFailover`` and first in ``history`` (read fresh: another move may
    have been recorded since ``body`` was read)."""
    meta = body.get("metadata") or {}
    name, namespace = str(meta["name"]), str(meta["namespace"])
    fresh = await client.get(region.API_VERSION, region.REGION_KIND, name, namespace)
    history = [record, *((fresh.get("status") or {}).get("history") or ())][:HISTORY_LIMIT]
    await client.patch_status(
        region.API_VERSION,
        region.REGION_KIND,
        name,
        namespace,
        {"lastFailover": record, "history": history},
    )


def _market_entry(
    country: str,
    lease: contract.WriteLease,
    plan: fd.MarketPlan,
    dry_run: bool,
) -> dict[str, Any]:
    state = "Fencing" if lease.state == "Fencing" else plan.state
    if state == "Fencing" and lease.state != "Fencing":
        state = "Serving"  # a dry run or a lost race: nothing is fenced
    message = plan.message
    if plan.blockers:
        message += "; blocked: " + "; ".join(plan.blockers)
    if dry_run and plan.state == "Fencing" and lease.state == "Serving":
        message = "dry run: " + message
    return {
        "market": country,
        "writer": lease.holder,
        "epoch": lease.epoch,
        "state": state,
        "target": lease.fencing_to if state == "Fencing" else "",
        "leaseExpiresAt": rfc3339(contract.expires_at(lease.renewed_at, lease.duration)),
        "message": message,
    }


def _health_entry(h: fh.Health, thresholds: fh.Thresholds) -> dict[str, Any]:
    """The region's health for its status. Counts stop at their threshold and the message
    carries the outcome and reason, not the latency: a region failing the same way probe after
    probe has the same status, so it is not written again on every probe."""
    last = h.evidence[-1] if h.evidence else None
    return {
        "state": h.state,
        "consecutiveFailures": min(h.failures, thresholds.failure_threshold),
        "consecutiveSuccesses": min(h.successes, thresholds.success_threshold),
        "lastProbeTime": rfc3339(last.at) if last else "",
        "message": f"{last.outcome}({last.reason})" if last and last.outcome != "Success" else "",
    }


class StatusWriter:
    """Each home region's markets and health, written when their essence changed; a market
    going Down posts one MarketDown Event (not one per round).

    The body a round sees comes from the watch and may predate this writer's own last write:
    while its resourceVersion is still the one that write started from, the status compared
    with is what was written (so a lagging watch never causes the same write twice)."""

    def __init__(self, client: kclient.KubeClient) -> None:
        self.client = client
        self._down: dict[tuple[str, str], bool] = {}
        self._written: dict[tuple[str, str], tuple[str, Any]] = {}
        """(namespace, region) -> (resourceVersion the last write was made on, its essence)."""

    async def write(
        self,
        namespace: str,
        fleet: str,
        decision: fd.Decision,
        current: Mapping[str, contract.WriteLease],
        by_name: Mapping[str, Member],
        health_of: Callable[[str], fh.Health],
    ) -> bool:
        """True when a writer or state changed (the routing must be rendered again)."""
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
                entry = _market_entry(m.country, lease, plan, parsed.spec.failover.dry_run)
                markets.append(entry)
                metrics.MARKET_EPOCH.labels(fleet=fleet, market=m.country).set(lease.epoch)
                metrics.MARKET_DOWN.labels(fleet=fleet, market=m.country).set(
                    entry["state"] == "Down"
                )
                down_key = (namespace, m.country)
                down = entry["state"] == "Down"
                if down and not self._down.get(down_key):
                    await post_event(
                        self.client,
                        body,
                        "Warning",
                        "MarketDown",
                        f"market {m.country}: {entry['message']}",
                    )
                self._down[down_key] = down
            new = {
                "markets": markets,
                "failoverState": summary.failover_state(name, markets),
                "writers": summary.writers(markets),
                "health": _health_entry(
                    health_of(name), fh.Thresholds(hp.failure_threshold, hp.success_threshold)
                ),
                "expectedFailoverSeconds": hp.period_seconds * hp.failure_threshold
                + parsed.spec.failover.write_lease_seconds,
            }
            previous = body.get("status") or {}
            key = (namespace, name)
            version = str((body.get("metadata") or {}).get("resourceVersion") or "")
            written = self._written.get(key)
            seen = written[1] if written and written[0] == version else _essence(previous)
            if seen == _essence(new):
                continue
            if [(x["writer"], x["epoch"], x["state"]) for x in markets] != [
                (x.get("writer"), x.get("epoch"), x.get("state"))
                for x in previous.get("markets") or ()
            ]:
                routing_changed = True
            try:
                await region.patch_region_status(self.client, body, new)
            except kerrors.KubeError as exc:
                self._written.pop(key, None)
                logger.warning("status of %s not written: %s", name, exc)
            else:
                self._written[key] = (version, _essence(new))
        return routing_changed


def _essence(st: Mapping[str, Any]) -> Any:
    """What is worth a status write: not the lease expiry (renewed every few seconds) nor the
    time of the last probe."""
    markets = [
        {k: v for k, v in m.items() if k != "leaseExpiresAt"} for m in st.get("markets") or ()
    ]
    health = {k: v for k, v in (st.get("health") or {}).items() if k != "lastProbeTime"}
    return (markets, health, st.get("expectedFailoverSeconds"), st.get("failoverState"))
