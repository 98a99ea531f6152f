"""Carrying out a decision's actions on the market Leases, each a compare-and-swap
(:mod:`checkout_operator.reconcile.leases`): create a missing lease, fence the writer, promote
the target. A lost race raises ``kube.errors.Conflict`` and the caller decides again.

Each action returns whether the routing changed and what to record afterwards (the Fencing or
FailedOver Event, the history entry, the log line), so that no record delays another market's
move. A completed promotion is kept as a :class:`Move` (the record and the benchmark read them).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

from checkout_contract import lease as contract
from checkout_kube import client as kclient
from checkout_kube import errors as kerrors
from checkout_operator import metrics
from checkout_operator.failover import decide as fd
from checkout_operator.failover import health as fh
from checkout_operator.reconcile import leases
from checkout_operator.reconcile.failover import recording
from checkout_operator.reconcile.failover.deciding import FleetView

logger = logging.getLogger("checkout_operator.failover")

Outcome = tuple[bool, Callable[[], Awaitable[None]] | None]
"""Whether routing changed, and the records to write afterwards."""


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


class Mover:
    def __init__(
        self,
        client: kclient.KubeClient,
        clock: Callable[[], float],
        health_of: Callable[[str, str], fh.Health],
    ) -> None:
        self.client = client
        self.clock = clock
        self.health_of = health_of
        self.moves: list[Move] = []
        self._pending: dict[tuple[str, str], _Pending] = {}

    async def carry_out(
        self,
        namespace: str,
        fleet: str,
        action: fd.Action,
        current: MutableMapping[str, contract.WriteLease],
        view: FleetView,
    ) -> Outcome:
        """Write the action's lease (``current`` updated with the written one)."""
        body, parsed = view.home(action.market)
        duration = parsed.spec.failover.write_lease_seconds
        if isinstance(action, fd.CreateLease):
            with contextlib.suppress(kerrors.Conflict):
                current[action.market] = await leases.create(
                    self.client, namespace, fleet, action.market, action.holder, duration,
                    self.clock(),
                )  # fmt: skip
            return True, None
        if action.dry_run:
            return False, None
        if isinstance(action, fd.Fence):
            return await self._fence(namespace, action, current, body)
        assert isinstance(action, fd.Promote)
        return await self._promote(namespace, fleet, action, current, body, duration)

    async def _fence(
        self,
        namespace: str,
        fence: fd.Fence,
        current: MutableMapping[str, contract.WriteLease],
        body: recording.Body,
    ) -> Outcome:
        current[fence.market] = await leases.fence(
            self.client, current[fence.market], fence.to, fence.reason
        )
        first = None
        if fence.reason == "ProbeFailures":
            first = self.health_of(namespace, fence.holder).first_failure_at
        self._pending[(namespace, fence.market)] = _Pending(fence, self.clock(), first)

        async def fenced() -> None:
            await recording.post_event(
                self.client,
                body,
                "Normal",
                "Fencing",
                f"market {fence.market}: fencing {fence.holder} (epoch {fence.epoch}) "
                f"to promote {fence.to}; reason {fence.reason}; actor {fence.actor}; "
                + "; ".join(fence.evidence),
            )

        return True, fenced

    async def _promote(
        self,
        namespace: str,
        fleet: str,
        promote: fd.Promote,
        current: MutableMapping[str, contract.WriteLease],
        body: recording.Body,
        duration: int,
    ) -> Outcome:
        lease = current[promote.market]
        current[promote.market] = await leases.promote(
            self.client, lease, promote.to, promote.epoch, duration, self.clock()
        )
        now = self.clock()
        pending = self._pending.pop((namespace, promote.market), None)
        evidence = (*(pending.fence.evidence if pending else ()), *promote.evidence)
        actor = pending.fence.actor if pending else promote.actor
        self.moves.append(
            Move(
                namespace,
                fleet,
                promote.market,
                promote.from_region,
                promote.to,
                promote.epoch,
                promote.reason,
                pending.first_failure_at if pending else None,
                pending.at if pending else now,
                now,
                promote.fenced_by,
                contract.expires_at(lease.renewed_at, lease.duration),
            )
        )
        metrics.FAILOVERS.labels(fleet=fleet, reason=promote.reason).inc()
        metrics.LAST_MOVE.labels(fleet=fleet, market=promote.market).set(now)
        metrics.SECONDS_SINCE_MOVE.labels(fleet=fleet, market=promote.market).set_function(
            _age(now)
        )

        async def promoted() -> None:
            record = {
                "time": recording.rfc3339(now),
                "markets": [promote.market],
                "from": promote.from_region,
                "to": promote.to,
                "epoch": promote.epoch,
                "reason": promote.reason,
                "evidence": list(evidence),
                "actor": actor,
            }
            try:
                await recording.append_history(self.client, body, record)
            except kerrors.KubeError as exc:
                logger.warning("history of market %s not written: %s", promote.market, exc)
            await recording.post_event(
                self.client,
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


def _age(at: float) -> Callable[[], float]:
    def age() -> float:
        return time.time() - at

    return age
