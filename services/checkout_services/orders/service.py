"""The orders API side: start (or join) the checkout's workflow and wait for placement."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from prometheus_client import Counter
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError

from checkout_contract import config, saga
from checkout_services.common import scrub, write_guard
from checkout_services.orders import exceptions, privacy, schemas
from checkout_services.orders.activities import Activities
from checkout_services.orders.workflow import (
    ACTION_TIMEOUT_S,
    CAPTURE_POLL_S,
    CAPTURE_TIMEOUT_S,
    CheckoutSagaWorkflow,
    SagaBase,
)

log = logging.getLogger("checkout_services.orders")
FAILURES: dict[str, type[exceptions.CheckoutFailed]] = {
    "out-of-stock": exceptions.OutOfStock,
    "declined": exceptions.PaymentDeclined,
    "unpriceable": exceptions.Unpriceable,
    "payment-method-refused": exceptions.PaymentMethodRefused,
}


LOCAL_WAIT_S = 10.0
"""How long the API waits for its own worker's answer before asking the workflow (the eager
workflow task may have been lost with a crash and retried in another process)."""


def workflow_id(checkout_id: str) -> str:
    """The saga's Temporal workflow id: it lands in the history, visibility and logs
    unscrubbed, so a checkout id that holds a card number is refused."""
    return saga.workflow_id(scrub.require_no_pan(checkout_id, "checkout_id"))


def eagerly_started(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the server gave the first workflow task to this process's worker in the start
    call's answer (the SDK records it on the handle; False if the attribute ever goes)."""
    return bool(getattr(handle, "__temporal_eagerly_started", False))


@dataclass
class OrdersService:
    pool: asyncpg.Pool
    temporal: Client
    region: config.RegionConfig
    guard: write_guard.WriteGuard
    activities: Activities
    answers: Counter | None = None
    action_timeout_s: float = ACTION_TIMEOUT_S
    """How long the saga waits for the shopper's action before it voids (its durable timer)."""
    capture_timeout_s: float = CAPTURE_TIMEOUT_S
    """How long the saga waits for the outcome of a capture the provider accepted (Adyen
    ``received``) before it gives the order up (payments then undoes a late outcome)."""
    capture_poll_s: float = CAPTURE_POLL_S
    """While it waits: how often it reads the payment, in case a signal was lost."""

    async def checkout(
        self, req: schemas.CheckoutRequest, owner: str | None = None
    ) -> dict[str, Any]:
        """Run (or join) the checkout; ``owner`` (the caller's tag) must own its id."""
        # counted as in flight: a fenced keeper of this pod says "stopped" only after it ends
        with self.guard.writing(req.market):
            return await self._checkout(req, owner)

    async def claim(self, checkout_id: str, owner: str) -> None:
        """Bind the checkout id to ``owner`` (first come); another owner gets 409 and nothing
        about the checkout (joining its saga would tell its outcome)."""
        holder = await self.pool.fetchval(
            "INSERT INTO checkout_owners (checkout_id, owner) VALUES ($1, $2)"
            " ON CONFLICT (checkout_id) DO UPDATE SET checkout_id = EXCLUDED.checkout_id"
            " RETURNING owner",
            checkout_id,
            owner,
        )
        if holder != owner:
            raise exceptions.CheckoutIdTaken(
                "this checkout_id is used by another client: choose a new one", field="checkout_id"
            )

    async def _checkout(self, req: schemas.CheckoutRequest, owner: str | None) -> dict[str, Any]:
        self.guard.check(req.market)
        scrub.require_no_pan(req.checkout_id, "checkout_id")
        if owner is not None:
            await self.claim(req.checkout_id, owner)
        inp = req.model_dump(mode="json")
        customer = inp.pop("customer", None)
        # the workflow history is a trace: no e-mail or card number in free text reaches it
        inp = scrub.scrub_value(inp)
        inp["action_timeout_s"] = self.action_timeout_s
        inp["capture_timeout_s"] = self.capture_timeout_s
        inp["capture_poll_s"] = self.capture_poll_s
        if customer is not None:
            # the profile goes to the customers table (erasable); the saga's history keeps
            # only the id
            inp["customer_id"] = await privacy.record_customer(
                self.pool, self.region, req.market, customer, owner=owner
            )
        cid = req.checkout_id
        waiter = self.activities.placements.expect(cid)
        try:
            # eager start: the server hands the first workflow task to this process's worker in
            # the start call's answer; the saga then places the order in that same task and its
            # 'place' activity resolves the waiter (no matching round trip, no update, no poll)
            handle = await self.temporal.start_workflow(
                CheckoutSagaWorkflow.run,
                inp,
                id=workflow_id(cid),
                task_queue=self.region.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                request_eager_start=True,
            )
        except WorkflowAlreadyStartedError:
            # a retry of a checkout that runs or ran: join it
            self.activities.placements.forget(cid, waiter)
            return await self.join(cid)
        except BaseException:
            self.activities.placements.forget(cid, waiter)
            raise
        if eagerly_started(handle):
            try:
                outcome = await asyncio.wait_for(asyncio.shield(waiter), LOCAL_WAIT_S)
            except TimeoutError:
                log.warning(
                    "checkout %s: no local answer in %.0f s; asking the workflow", cid, LOCAL_WAIT_S
                )
            else:
                self.count("local")
                return self.answer(cid, outcome)
            finally:
                self.activities.placements.forget(cid, waiter)
            return await self.join(cid)
        # not eager (no free workflow-task slot here, or eager start is off on the server): the
        # task goes through matching, often to this same worker; the first answer wins
        joined = asyncio.ensure_future(self.join(cid))
        try:
            done, _ = await asyncio.wait({waiter, joined}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.activities.placements.forget(cid, waiter)
        if joined in done:
            return joined.result()
        joined.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await joined
        self.count("local")
        return self.answer(cid, waiter.result())

    def count(self, via: str) -> None:
        if self.answers is not None:
            self.answers.labels(via).inc()

    async def join(self, checkout_id: str) -> dict[str, Any]:
        """Wait for a checkout's answer through its workflow (another process runs it, or a
        retry arrived): the 'placed' update, else the closed workflow's result."""
        handle = self.temporal.get_workflow_handle(workflow_id(checkout_id))
        try:
            outcome: dict[str, Any] = await handle.execute_update("placed", result_type=dict)
        except (WorkflowUpdateFailedError, RPCError) as exc:
            # the checkout's workflow already finished: answer what it decided
            log.info("checkout %s: %s: %s", checkout_id, type(exc).__name__, exc)
            done = await self.existing(checkout_id)
            if done is None:
                raise
            self.count("workflow")
            return done
        self.count("workflow")
        return self.answer(checkout_id, outcome)

    async def existing(self, checkout_id: str) -> dict[str, Any] | None:
        """The outcome of a checkout whose workflow already exists (e.g. a retry after it
        finished): the result of a closed workflow, else the running one's query."""
        handle = self.temporal.get_workflow_handle(workflow_id(checkout_id))
        try:
            desc = await handle.describe()
            if desc.status is not None and desc.status != WorkflowExecutionStatus.RUNNING:
                result: dict[str, Any] = await handle.result()
                return self.answer(checkout_id, result)
            state: dict[str, Any] = await handle.query(SagaBase.state)
        except RPCError:
            return None
        if state["outcome"] is None:
            raise exceptions.CheckoutPending(f"checkout {checkout_id} is still running")
        return self.answer(checkout_id, state["outcome"])

    def answer(self, checkout_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        if outcome["state"] == "placed":
            quote = outcome["quote"]
            answer = {
                "checkout_id": checkout_id,
                "state": "placed",
                "total": quote["total"],
                "currency": quote["currency"],
                "snapshot_id": quote["snapshot_id"],
            }
            if "payment" in outcome:  # the shopper's action (3-D Secure, redirect, QR code)
                answer["payment"] = outcome["payment"]
            return answer
        kind = FAILURES.get(outcome["reason"], exceptions.DependencyFailed)
        raise kind(
            f"checkout {checkout_id} failed: {outcome['reason']}",
            checkout_id=checkout_id,
            reason=outcome["reason"],
        )

    async def get(self, checkout_id: str, owner: str | None = None) -> schemas.OrderView:
        """The order; with ``owner``, only if that caller's checkout placed it (else 404, as
        for an order that does not exist)."""
        if owner is None:
            row = await self.pool.fetchrow(
                "SELECT * FROM orders WHERE checkout_id = $1", checkout_id
            )
        else:
            row = await self.pool.fetchrow(
                "SELECT o.* FROM orders o JOIN checkout_owners c USING (checkout_id)"
                " WHERE o.checkout_id = $1 AND c.owner = $2",
                checkout_id,
                owner,
            )
        if row is None:
            raise exceptions.OrderNotFound(f"no order for checkout {checkout_id}")
        return schemas.OrderView(**{**dict(row), "lines": json.loads(row["lines"])})

    async def payment_details(
        self, checkout_id: str, req: schemas.PaymentDetailsRequest, owner: str | None = None
    ) -> schemas.PaymentView:
        """The shopper is back from the provider's action: only the checkout's owner may
        complete it (else 404, as for a checkout that does not exist). Payments submits the
        details (or reads the payment back) and, when the action ended, signals the saga,
        which then captures or voids."""
        market = await self.pool.fetchval(
            "SELECT o.market FROM orders o LEFT JOIN checkout_owners c USING (checkout_id)"
            " WHERE o.checkout_id = $1 AND ($2::text IS NULL OR c.owner = $2)",
            checkout_id,
            owner,
        )
        if market is None:
            raise exceptions.OrderNotFound(f"no order for checkout {checkout_id}")
        if market != req.market:
            raise exceptions.MarketMismatch(
                f"checkout {checkout_id} is not in market {req.market}", field="market"
            )
        path = f"/v1/payments/{checkout_id}/details"
        try:
            resp = await self.activities.call("POST", "payments", path, {"details": req.details})
        except ApplicationError as exc:
            raise details_problem(checkout_id, exc) from exc
        payment = resp.json()
        waiting = payment["state"] == "requires_action"  # else the action is history
        return schemas.PaymentView(
            checkout_id=checkout_id,
            state=payment["state"],
            action=payment.get("action") if waiting else None,
        )

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


def details_problem(checkout_id: str, exc: ApplicationError) -> exceptions.OrdersError:
    """Payments' refusal of the shopper's details, as the orders API says it."""
    status = exc.details[0] if exc.details and isinstance(exc.details[0], int) else 503
    if status == 402:
        return exceptions.PaymentDeclined(
            f"the payment of checkout {checkout_id} was declined",
            checkout_id=checkout_id,
            reason="declined",
        )
    if status == 422:
        return exceptions.DetailsRejected(
            "the provider refused these details (unknown, expired or already used)",
            field="details",
        )
    if status == 404:
        return exceptions.PaymentNotWaiting(f"no payment for checkout {checkout_id}")
    return exceptions.DependencyFailed(
        f"payments could not complete the details of {checkout_id}; retry with the same details",
        checkout_id=checkout_id,
        reason=exc.type or "transient",
    )
