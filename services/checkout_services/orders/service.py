"""The orders API side: start (or join) the checkout's workflow and wait for placement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from checkout_services.common import config, write_guard
from checkout_services.orders import exceptions, schemas
from checkout_services.orders.activities import Activities
from checkout_services.orders.workflow import CheckoutWorkflow

FAILURES: dict[str, type[exceptions.CheckoutFailed]] = {
    "out-of-stock": exceptions.OutOfStock,
    "declined": exceptions.PaymentDeclined,
    "unpriceable": exceptions.Unpriceable,
}


def workflow_id(checkout_id: str) -> str:
    return f"checkout-{checkout_id}"


@dataclass
class OrdersService:
    pool: asyncpg.Pool
    temporal: Client
    region: config.RegionConfig
    guard: write_guard.WriteGuard
    activities: Activities

    async def checkout(self, req: schemas.CheckoutRequest) -> dict[str, Any]:
        self.guard.check(req.market)
        inp = req.model_dump(mode="json")
        try:
            handle = await self.temporal.start_workflow(
                CheckoutWorkflow.run,
                inp,
                id=workflow_id(req.checkout_id),
                task_queue=self.region.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            outcome: dict[str, Any] = await handle.execute_update("placed", result_type=dict)
        except (WorkflowAlreadyStartedError, WorkflowUpdateFailedError, RPCError):
            # the checkout's workflow already finished: answer what it decided
            done = await self.existing(req.checkout_id)
            if done is None:
                raise
            return done
        return self.answer(req.checkout_id, outcome)

    async def existing(self, checkout_id: str) -> dict[str, Any] | None:
        """The outcome of a finished checkout's workflow (a retry after it completed)."""
        handle = self.temporal.get_workflow_handle(workflow_id(checkout_id))
        try:
            state: dict[str, Any] = await handle.query(CheckoutWorkflow.state)
        except RPCError:
            return None
        if state["outcome"] is None:
            raise exceptions.CheckoutPending(f"checkout {checkout_id} is still running")
        return self.answer(checkout_id, state["outcome"])

    def answer(self, checkout_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        if outcome["state"] == "placed":
            quote = outcome["quote"]
            return {
                "checkout_id": checkout_id,
                "state": "placed",
                "total": quote["total"],
                "currency": quote["currency"],
                "snapshot_id": quote["snapshot_id"],
            }
        kind = FAILURES.get(outcome["reason"], exceptions.DependencyFailed)
        raise kind(
            f"checkout {checkout_id} failed: {outcome['reason']}",
            checkout_id=checkout_id,
            reason=outcome["reason"],
        )

    async def get(self, checkout_id: str) -> schemas.OrderView:
        row = await self.pool.fetchrow("SELECT * FROM orders WHERE checkout_id = $1", checkout_id)
        if row is None:
            raise exceptions.OrderNotFound(f"no order for checkout {checkout_id}")
        return schemas.OrderView(**{**dict(row), "lines": json.loads(row["lines"])})

    async def compensate(self, checkout_id: str) -> schemas.CompensationReport:
        """Replay of a DLQ entry: void and release again (both idempotent), then mark the
        order compensated. Running it twice changes nothing."""
        row = await self.pool.fetchrow(
            "SELECT state FROM orders WHERE checkout_id = $1", checkout_id
        )
        if row is not None and row["state"] in ("placed", "fulfilment_requested"):
            raise exceptions.NothingToCompensate(
                f"order {checkout_id} is {row['state']}: nothing to compensate"
            )
        payment = await self.activities.void(checkout_id)
        stock = await self.activities.release(checkout_id)
        state = await self.pool.fetchval(
            "UPDATE orders SET state = 'compensated', updated_at = now()"
            " WHERE checkout_id = $1 AND state IN ('capture_failed', 'compensated')"
            " RETURNING state",
            checkout_id,
        )
        return schemas.CompensationReport(
            checkout_id=checkout_id, payment=payment, stock=stock, order_state=state
        )
