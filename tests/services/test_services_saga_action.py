"""The saga's wait for a shopper action, decision by decision, on the real Temporal dev server
with the saga's steps played by recording activities (the whole stack's runs are in
test_services_orders.py and the gateway's tests; here each branch of the decision is forced):

* a lost signal: at the deadline the payment is read once; authorized -> captured, not voided;
* declined by the shopper's bank (the signal): void, release, order compensated;
* a late ``requires_action`` after the decision changes nothing;
* nobody answers: the timer fires, the read says still waiting (or payments cannot be read)
  -> void, release.

Each history is replayed afterwards on the same code (no non-determinism in any branch).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from checkout_contract import saga
from checkout_services.orders.workflow import CheckoutSagaWorkflow, SagaBase
from checkout_stack.components.temporal import Temporal

pytestmark = pytest.mark.stack


@dataclass
class Steps:
    """What the saga asked for, and what payments says at the deadline."""

    payment_now: str = "requires_action"
    """``unreachable``: payments does not answer the read."""
    calls: list[str] = field(default_factory=list)

    def all(self) -> list[Any]:
        @activity.defn(name="place")
        async def place(inp: dict[str, Any]) -> dict[str, Any]:
            self.calls.append("place")
            quote = {"total": 100, "currency": "EUR", "snapshot_id": "s"}
            return {
                "state": "placed",
                "order": {"checkout_id": inp["checkout_id"]},
                "quote": quote,
                "payment": {"state": "requires_action", "action": {"type": "redirect_to_url"}},
            }

        @activity.defn(name="payment_state")
        async def payment_state(cid: str) -> dict[str, Any]:
            self.calls.append("payment_state")
            if self.payment_now == "unreachable":
                raise ApplicationError("payments: 503", type="transient", non_retryable=True)
            return {"state": self.payment_now, "action": None}

        def record(name: str) -> Any:
            @activity.defn(name=name)
            async def step(*args: Any) -> Any:
                self.calls.append(name)
                return {"state": "captured"} if name == "capture" else "done"

            return step

        names = ("capture", "complete", "void", "release", "order_compensated", "notify_failure")
        return [place, payment_state, *(record(n) for n in names)]


@pytest.fixture
async def client(temporal: Temporal) -> Client:
    return await Client.connect(temporal.address, namespace=temporal.namespace)


async def run(client: Client, steps: Steps, timeout_s: float, *signals: dict[str, Any]) -> str:
    queue = f"saga-action-{uuid.uuid4().hex[:8]}"
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with Worker(
        client, task_queue=queue, workflows=[CheckoutSagaWorkflow], activities=steps.all()
    ):
        handle = await client.start_workflow(
            CheckoutSagaWorkflow.run,
            {"checkout_id": cid, "action_timeout_s": timeout_s},
            id=saga.workflow_id(cid),
            task_queue=queue,
        )
        for event in signals:
            await handle.signal(saga.PAYMENT_CHANGED, event)
        result: dict[str, Any] = await handle.result()
    # every branch's history replays on the code that wrote it (determinism of signal + timer)
    replayed = await Replayer(workflows=[CheckoutSagaWorkflow]).replay_workflow(
        await handle.fetch_history(), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, replayed.replay_failure
    return str(result["final"])


async def test_a_lost_signal_is_made_up_by_one_read_at_the_deadline(client: Client) -> None:
    steps = Steps(payment_now="authorized")  # the shopper did pass; the signal never came
    assert await run(client, steps, 1.0) == "fulfilment_requested"
    assert steps.calls == ["place", "payment_state", "capture", "complete"]


async def test_a_declined_signal_compensates_and_a_late_one_changes_nothing(
    client: Client,
) -> None:
    steps = Steps()
    declined = saga.payment_event("declined", None)
    late = saga.payment_event("requires_action", {"type": "redirect_to_url"})
    assert await run(client, steps, 60.0, declined, late) == "payment_declined"
    assert steps.calls == ["place", "void", "release", "order_compensated"]


async def test_an_authorized_signal_captures_before_the_timer(client: Client) -> None:
    steps = Steps()
    authorized = saga.payment_event("authorized", None)
    assert await run(client, steps, 60.0, authorized) == "fulfilment_requested"
    assert steps.calls == ["place", "capture", "complete"]  # no read: the signal decided


async def test_nobody_answers_the_timer_voids(client: Client) -> None:
    steps = Steps()
    assert await run(client, steps, 1.0) == "action_expired"
    assert steps.calls == ["place", "payment_state", "void", "release", "order_compensated"]


async def test_an_unreadable_payment_at_the_deadline_is_voided(client: Client) -> None:
    """Payments does not answer the read: voiding is the safe side (no charge is left open;
    the void compensation retries until payments answers)."""
    steps = Steps(payment_now="unreachable")
    assert await run(client, steps, 1.0) == "action_expired"
    assert steps.calls == ["place", "payment_state", "void", "release", "order_compensated"]


@workflow.defn(name="CheckoutSaga", sandboxed=False)
class SagaBeforeTheSignal(SagaBase):
    """``CheckoutSaga`` as it ran before the signal: a checkout with a shopper action went
    straight to its capture activity (which polled). Its histories must still replay."""

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        placed = await self.local("place", inp)
        self.outcome = {"state": "placed", "order": placed["order"], "quote": placed["quote"]}
        self.outcome["payment"] = placed["payment"]
        payment = await self.local("capture", inp["checkout_id"])
        await self.local("complete", inp, payment)
        self.final = "fulfilment_requested"
        return await self.finish()


async def test_an_action_history_from_before_the_signal_replays(client: Client) -> None:
    queue = f"saga-old-{uuid.uuid4().hex[:8]}"
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with Worker(
        client, task_queue=queue, workflows=[SagaBeforeTheSignal], activities=Steps().all()
    ):
        handle = await client.start_workflow(
            SagaBeforeTheSignal.run,
            {"checkout_id": cid, "action_timeout_s": 60.0},
            id=saga.workflow_id(cid),
            task_queue=queue,
        )
        assert (await handle.result())["final"] == "fulfilment_requested"
    replayed = await Replayer(workflows=[CheckoutSagaWorkflow]).replay_workflow(
        await handle.fetch_history(), raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, replayed.replay_failure
