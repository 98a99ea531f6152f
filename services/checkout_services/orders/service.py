"""The orders API side: start (or join) the checkout's workflow and wait for placement."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from checkout_services.common import config, scrub, write_guard
from checkout_services.orders import exceptions, privacy, schemas
from checkout_services.orders.activities import Activities
from checkout_services.orders.workflow import CheckoutWorkflow

log = logging.getLogger("checkout_services.orders")
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
        customer = inp.pop("customer", None)
        # the workflow history is a trace: no e-mail or card number in free text reaches it
        inp = scrub.scrub_value(inp)
        if customer is not None:
            # the profile goes to the customers table (erasable); the saga's history keeps
            # only the id
            inp["customer_id"] = await privacy.record_customer(
                self.pool, self.region, req.market, customer
            )
        try:
            # one round trip: start the workflow (or join the running one) and wait on 'placed'
            start = WithStartWorkflowOperation(
                CheckoutWorkflow.run,
                inp,
                id=workflow_id(req.checkout_id),
                task_queue=self.region.temporal_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            outcome: dict[str, Any] = await self.temporal.execute_update_with_start_workflow(
                "placed", start_workflow_operation=start, result_type=dict
            )
        except (WorkflowAlreadyStartedError, WorkflowUpdateFailedError, RPCError) as exc:
            # the checkout's workflow already finished: answer what it decided
            log.info("checkout %s: %s: %s", req.checkout_id, type(exc).__name__, exc)
            done = await self.existing(req.checkout_id)
            if done is None:
                raise
            return done
        return self.answer(req.checkout_id, outcome)

    async def existing(self, checkout_id: str) -> dict[str, Any] | None:
        """The outcome of a checkout whose workflow already exists (e.g. a retry after it
        finished): the result of a closed workflow, else the running one's query."""
        handle = self.temporal.get_workflow_handle(workflow_id(checkout_id))
        try:
            desc = await handle.describe()
            if desc.status is not None and desc.status != WorkflowExecutionStatus.RUNNING:
                result: dict[str, Any] = await handle.result()
                return self.answer(checkout_id, result)
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
