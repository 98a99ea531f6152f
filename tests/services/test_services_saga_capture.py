"""The saga's wait for the outcome of a capture the provider accepted for processing (Adyen
``received``, then CAPTURE / CAPTURE_FAILED by webhook), decision by decision, on the real
Temporal dev server with the saga's steps played by recording activities (the whole stack with
the simulator's Adyen is in test_services_capture_outcome.py):

* the CAPTURE signal: complete, no read, no compensation;
* the CAPTURE_FAILED signal: void, release, PAYMENT_CAPTURE_FAILED;
* a lost signal: a fallback read of the payment finds it captured -> complete;
* no word before the deadline: void (payments records a release), release, DLQ;
* no word, but the void answers ``captured`` (CAPTURE came in between): complete.

Each history is replayed afterwards on the same code; a capture answered at once (Stripe)
writes no marker and no timer (the one-task happy path is unchanged).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from checkout_contract import saga
from checkout_services.orders.workflow import CheckoutSagaWorkflow
from checkout_stack.components.temporal import Temporal

pytestmark = pytest.mark.stack


@dataclass
class Steps:
    """What the saga asked for; what payments answers to the capture, the read and the void."""

    captured_now: str = "capture_pending"
    read: list[str] = field(default_factory=list)
    """The states the fallback reads return, in order (then the last one again)."""
    void_says: str = "capture_pending"
    calls: list[str] = field(default_factory=list)

    def all(self) -> list[Any]:
        @activity.defn(name="place")
        async def place(inp: dict[str, Any]) -> dict[str, Any]:
            self.calls.append("place")
            quote = {"total": 100, "currency": "EUR", "snapshot_id": "s"}
            return {"state": "placed", "order": {"checkout_id": inp["checkout_id"]}, "quote": quote}

        @activity.defn(name="capture")
        async def capture(cid: str, outcome: str = "poll") -> dict[str, Any]:
            assert outcome == "signal"
            self.calls.append("capture")
            amount = 100 if self.captured_now == "captured" else 0  # 0 while pending
            return {"state": self.captured_now, "captured_amount": amount, "provider": "adyen-eu"}

        @activity.defn(name="payment_state")
        async def payment_state(cid: str) -> dict[str, Any]:
            self.calls.append("payment_state")
            state = self.read.pop(0) if len(self.read) > 1 else self.read[0]
            return {"state": state, "action": None}

        @activity.defn(name="void")
        async def void(cid: str) -> str:
            self.calls.append("void")
            return self.void_says

        @activity.defn(name="complete")
        async def complete(inp: dict[str, Any], payment: dict[str, Any]) -> str:
            self.calls.append("complete")
            assert payment["state"] == "captured"
            assert "captured_amount" not in payment or payment["captured_amount"] > 0
            return "done"

        def record(name: str) -> Any:
            @activity.defn(name=name)
            async def step(*args: Any) -> Any:
                self.calls.append(name)
                return "done"

            return step

        names = ("release", "capture_failed", "notify_failure", "order_compensated")
        return [place, capture, payment_state, void, complete, *(record(n) for n in names)]


@pytest.fixture
async def client(temporal: Temporal) -> Client:
    return await Client.connect(temporal.address, namespace=temporal.namespace)


async def run(
    client: Client, steps: Steps, timeout_s: float, poll_s: float, *signals: dict[str, Any]
) -> tuple[str, list[str]]:
    """(the workflow's final word, its history's event kinds)."""
    queue = f"saga-capture-{uuid.uuid4().hex[:8]}"
    cid = f"co-{uuid.uuid4().hex[:10]}"
    async with Worker(
        client, task_queue=queue, workflows=[CheckoutSagaWorkflow], activities=steps.all()
    ):
        handle = await client.start_workflow(
            CheckoutSagaWorkflow.run,
            {"checkout_id": cid, "capture_timeout_s": timeout_s, "capture_poll_s": poll_s},
            id=saga.workflow_id(cid),
            task_queue=queue,
        )
        for event in signals:
            await handle.signal(saga.PAYMENT_CHANGED, event)
        result: dict[str, Any] = await handle.result()
    history = await handle.fetch_history()
    replayed = await Replayer(workflows=[CheckoutSagaWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None, replayed.replay_failure
    return str(result["final"]), [EventType.Name(e.event_type) for e in history.events]


async def test_the_capture_signal_completes_without_a_read(client: Client) -> None:
    steps = Steps(read=["capture_pending"])
    captured = saga.payment_event("captured", None)
    final, kinds = await run(client, steps, 600.0, 300.0, captured)
    assert final == "fulfilment_requested"
    assert steps.calls == ["place", "capture", "complete"]
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in kinds


async def test_the_capture_failed_signal_compensates(client: Client) -> None:
    steps = Steps(read=["capture_pending"], void_says="voided")
    failed = saga.payment_event("capture_failed", None)
    late = saga.payment_event("captured", None)  # a second outcome changes nothing
    final, _ = await run(client, steps, 600.0, 300.0, failed, late)
    assert final == "capture_failed"
    assert steps.calls == ["place", "capture", "void", "release", "capture_failed"]


async def test_a_lost_signal_is_made_up_by_a_fallback_read(client: Client) -> None:
    steps = Steps(read=["capture_pending", "captured"])
    final, kinds = await run(client, steps, 60.0, 0.5)
    assert final == "fulfilment_requested"
    assert steps.calls == ["place", "capture", "payment_state", "payment_state", "complete"]
    assert kinds.count("EVENT_TYPE_TIMER_STARTED") == 2, kinds


async def test_no_word_in_time_gives_the_order_up_and_payments_the_release(
    client: Client,
) -> None:
    steps = Steps(read=["capture_pending"])
    final, _ = await run(client, steps, 2.5, 1.0)
    assert final == "capture_unconfirmed"
    reads = steps.calls.count("payment_state")
    assert 2 <= reads <= 3, steps.calls  # 1 s, 2 s, (2.5 s): the bound is kept
    assert steps.calls[-3:] == ["void", "release", "capture_failed"]


async def test_no_word_but_the_void_finds_it_captured_completes(client: Client) -> None:
    steps = Steps(read=["capture_pending"], void_says="captured")
    final, _ = await run(client, steps, 0.5, 0.5)
    assert final == "fulfilment_requested"
    assert steps.calls == ["place", "capture", "payment_state", "void", "complete"]


async def test_a_capture_answered_at_once_writes_no_marker_or_timer(client: Client) -> None:
    steps = Steps(captured_now="captured", read=["captured"])
    final, kinds = await run(client, steps, 600.0, 300.0)
    assert final == "fulfilment_requested"
    assert steps.calls == ["place", "capture", "complete"]
    assert "EVENT_TYPE_TIMER_STARTED" not in kinds
    assert kinds.count("EVENT_TYPE_MARKER_RECORDED") == 3, kinds  # place, capture, complete
