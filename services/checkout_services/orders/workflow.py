"""The checkout saga (Temporal): price -> reserve -> authorize -> place order -> capture ->
fulfilment requested, with compensations (void, release, notify).

Two workflow types, one per shape of history (versioning by workflow type: a new shape is a new
type, so no patch marker and no search-attribute upsert is written per checkout):

- ``CheckoutSaga`` (started by the orders service): the whole happy path in ONE workflow task.
  The pre-answer steps are one local activity (``place``: price, reserve, authorize, place the
  order), then capture and complete run as local activities in the same task, and the workflow
  closes with that task's completion. The client's answer comes from the ``place`` activity
  itself, in-process, once the order and its outbox row are committed (see
  ``placements.Placements``); the ``placed`` update remains for callers in another process.
- ``Checkout``: the earlier shape (answer through the ``placed`` update, capture as an activity
  task). Kept registered, unchanged, so workflows started before the upgrade replay and finish;
  remove it once no ``Checkout`` workflow runs (``temporal workflow list --query
  "WorkflowType='Checkout' AND ExecutionStatus='Running'"``).

Why unsandboxed (``sandboxed=False``): the sandbox re-imports and proxies modules on every
activation, which cost more CPU than the rest of the workflow code. This module's workflow code
is deterministic by construction: it imports only temporalio and the standard library, reads no
clock, randomness, environment or I/O (time and ids come from the activities' results), and
keeps its state in instance attributes; the replay tests (tests/services/test_services_replay.py)
check recorded histories against it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from checkout_contract import saga

RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=5,
)
CAPTURE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=3,
)
COMPENSATION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
"""Compensations retry until they succeed (no attempt limit)."""
TIMEOUT = timedelta(seconds=15)
COMPLETE_LOCAL = "complete-as-local-activity"
"""Patch id: 'complete' became a local activity (workflows started before still replay)."""
SHOPPER_EVENT = "shopper-action-by-signal"
"""Patch id: a checkout waiting for the shopper waits for the payments signal under a durable
timer (before: its capture activity polled, ~30 s). Only checkouts with a shopper action reach
it, so the one-task happy path writes no marker."""
ACTION_TIMEOUT_S = 900.0
"""How long a checkout waits for the shopper's 3-D Secure / redirect / QR code by default
(the input's ``action_timeout_s``, from ``ORDERS_SHOPPER_ACTION_TIMEOUT_SECONDS``)."""
CAPTURE_EVENT = "capture-outcome-by-signal"
"""Patch id: a capture the provider accepted for processing (Adyen ``received``) is awaited in
the workflow, on payments' signal under a durable timer (before: the capture activity polled
~10 s x 3 tries, then the saga compensated). Only such captures reach it."""
CAPTURE_TIMEOUT_S = 3600.0
"""How long a checkout waits for the provider's word on an accepted capture by default (the
input's ``capture_timeout_s``, from ``ORDERS_CAPTURE_OUTCOME_TIMEOUT_SECONDS``)."""
CAPTURE_POLL_S = 300.0
"""While it waits, how often it reads the payment in case a signal was lost (the input's
``capture_poll_s``, ``ORDERS_CAPTURE_OUTCOME_POLL_SECONDS``): the fallback, not the way."""
CAPTURED = frozenset({"captured", "partially_refunded", "refunded"})
"""A payment read in one of these states was captured."""
PAID = frozenset({"authorized", "capture_pending", "captured"})
"""The shopper's action succeeded (an APM may capture on confirmation): capture goes on."""
ACTION_ENDED = PAID | {"declined", "voided", "void_pending", "failed"}
"""Payment states that end the wait (the signal can come out of order: once one of these is
seen, a late ``requires_action`` changes nothing)."""


def failure(err: FailureError) -> tuple[str, str, int]:
    """(slug, message, http status) of a failed activity (a local activity's failure arrives
    as the error itself, e.g. an ApplicationError; a remote one's wrapped in an ActivityError)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        status = cause.details[0] if cause.details and isinstance(cause.details[0], int) else 503
        return cause.type or "failed", cause.message, status
    return "failed", str(err), 503


class SagaBase:
    """Handlers and helpers shared by both shapes (not a workflow type itself)."""

    def __init__(self) -> None:
        self.outcome: dict[str, Any] | None = None
        self.final: str = "running"

    @workflow.update(name="placed")
    async def placed(self) -> dict[str, Any]:
        await workflow.wait_condition(lambda: self.outcome is not None)
        assert self.outcome is not None
        return self.outcome

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "final": self.final}

    async def act(self, name: str, *args: Any, retry: RetryPolicy = RETRY) -> Any:
        return await workflow.execute_activity(
            name, args=list(args), start_to_close_timeout=TIMEOUT, retry_policy=retry
        )

    async def local(self, name: str, *args: Any, retry: RetryPolicy = RETRY) -> Any:
        """The short steps run as local activities (in the worker, no server round trip per
        step); their results are still recorded in the history."""
        return await workflow.execute_local_activity(
            name, args=list(args), start_to_close_timeout=TIMEOUT, retry_policy=retry
        )

    async def compensate(self, cid: str, *, voiding: bool, releasing: bool) -> None:
        if voiding:
            await self.act("void", cid, retry=COMPENSATION_RETRY)
        if releasing:
            await self.act("release", cid, retry=COMPENSATION_RETRY)

    async def finish(self) -> dict[str, Any]:
        """Let the 'placed' update answer before the workflow closes."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self.outcome is not None
        return {**self.outcome, "final": self.final}

    async def failed(self, cid: str, err: FailureError, *, voiding: bool, releasing: bool) -> None:
        """The checkout failed before its order was placed: compensate, record, answer."""
        slug, message, status = failure(err)
        await self.compensate(cid, voiding=voiding, releasing=releasing)
        await self.act("notify_failure", cid, slug, message, retry=COMPENSATION_RETRY)
        self.outcome = {"state": "failed", "reason": slug, "status": status, "detail": message}
        self.final = "failed"

    async def capture_failed(self, cid: str, err: FailureError | str) -> None:
        message = err if isinstance(err, str) else failure(err)[1]
        await self.compensate(cid, voiding=True, releasing=True)
        await self.act("capture_failed", cid, message, retry=COMPENSATION_RETRY)
        self.final = "capture_failed"


STAGES = ("price", "reserve", "authorize", "place")
"""The steps of the ``place`` activity, in order; its failures name the stage they reached."""


def stage_of(err: FailureError) -> str:
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError) and len(cause.details) > 1:
        stage = cause.details[1]
        if stage in STAGES:
            return str(stage)
    # unknown (e.g. a timeout): assume the furthest, compensations are idempotent
    return "place"


@workflow.defn(name="CheckoutSaga", sandboxed=False)
class CheckoutSagaWorkflow(SagaBase):
    """The current shape: one workflow task for a checkout that goes well."""

    def __init__(self) -> None:
        super().__init__()
        self.payment: dict[str, Any] | None = None
        """The last word of payments on a shopper action (:data:`saga.PAYMENT_CHANGED`)."""
        self.capture_event: dict[str, Any] | None = None
        """Payments' word on a capture the provider accepted: its first outcome."""

    @workflow.signal(name=saga.PAYMENT_CHANGED)
    def payment_changed(self, event: dict[str, Any]) -> None:
        if event.get("state") in saga.CAPTURE_OUTCOMES:
            if self.capture_event is None:  # one outcome; a duplicate changes nothing
                self.capture_event = event
            return
        if self.payment is not None and self.payment.get("state") in ACTION_ENDED:
            return  # already decided; a late or reordered signal changes nothing
        self.payment = event
        if self.outcome is not None and "payment" in self.outcome:
            # later answers (a retried checkout, the 'placed' update) carry the next action
            self.outcome["payment"] = {"state": event.get("state"), "action": event.get("action")}

    def action_ended(self) -> bool:
        return self.payment is not None and self.payment.get("state") in ACTION_ENDED

    async def shopper_acted(self, cid: str, inp: dict[str, Any]) -> bool:
        """Wait for the shopper's action to end (payments' signal), at most the input's
        ``action_timeout_s``. True: authorized, capture now. False: declined, voided, or the
        shopper never came back; the authorization is voided, the stock released and the order
        compensated. At the deadline the payment is read once, so a lost signal never voids a
        payment the shopper did complete."""
        timeout = timedelta(seconds=float(inp.get("action_timeout_s", ACTION_TIMEOUT_S)))
        try:
            await workflow.wait_condition(self.action_ended, timeout=timeout)
        except TimeoutError:
            try:
                self.payment = await self.local("payment_state", cid)
            except FailureError:  # payments does not answer: void (retried until it does)
                self.payment = saga.payment_event("requires_action", None)
        state = self.payment.get("state") if self.payment else None
        if state in PAID:
            return True
        reason = "action_expired" if state == "requires_action" else "payment_declined"
        await self.compensate(cid, voiding=True, releasing=True)
        await self.act("order_compensated", cid, reason, retry=COMPENSATION_RETRY)
        self.final = reason
        return False

    async def capture_decided(
        self, cid: str, inp: dict[str, Any], payment: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The provider accepted the capture and decides later (Adyen ``received``, then
        CAPTURE / CAPTURE_FAILED). Wait for payments' signal, at most the input's
        ``capture_timeout_s``, reading the payment every ``capture_poll_s`` in case a signal
        was lost. Returns the captured payment (complete the order), or None: the capture
        failed, or no word came in time; then the saga compensates (void, release, DLQ).
        Giving up is safe: payments records the void of a ``capture_pending`` payment as a
        release and undoes the outcome when it comes (a late CAPTURE is refunded, once)."""
        limit = float(inp.get("capture_timeout_s", CAPTURE_TIMEOUT_S))
        deadline = workflow.now() + timedelta(seconds=limit)
        poll = timedelta(seconds=float(inp.get("capture_poll_s", CAPTURE_POLL_S)))
        while self.capture_event is None:
            left = deadline - workflow.now()
            if left <= timedelta(0):
                break
            try:
                await workflow.wait_condition(
                    lambda: self.capture_event is not None, timeout=min(poll, left)
                )
            except TimeoutError:
                try:
                    read = await self.local("payment_state", cid)
                except FailureError:
                    continue  # payments does not answer: wait on
                if read.get("state") != "capture_pending" and self.capture_event is None:
                    self.capture_event = read
        state = self.capture_event.get("state") if self.capture_event else None
        # the capture answer's captured_amount (0 while pending) is not the outcome's
        settled = {k: v for k, v in payment.items() if k != "captured_amount"}
        if state in CAPTURED:
            return {**settled, "state": "captured"}
        if state is not None:
            await self.capture_failed(cid, f"the provider failed the capture ({state})")
            return None
        # No word in time. The void answers the payment's state: still capture_pending (the
        # release is recorded at payments), or captured just now (then the order goes on).
        voided = await self.act("void", cid, retry=COMPENSATION_RETRY)
        if voided in CAPTURED:
            return {**settled, "state": "captured"}
        await self.act("release", cid, retry=COMPENSATION_RETRY)
        detail = f"no capture outcome from the provider in {limit:g} s; payment {voided}"
        await self.act("capture_failed", cid, detail, retry=COMPENSATION_RETRY)
        self.final = "capture_unconfirmed"
        return None

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        cid = inp["checkout_id"]
        try:
            placed = await self.local("place", inp)
        except FailureError as err:
            stage = STAGES.index(stage_of(err))
            # an authorize that failed ambiguously may still have authorized: void it too
            await self.failed(
                cid,
                err,
                voiding=stage >= STAGES.index("authorize"),
                releasing=stage >= STAGES.index("reserve"),
            )
            return await self.finish()
        self.outcome = {"state": "placed", "order": placed["order"], "quote": placed["quote"]}
        if "payment" in placed:  # the shopper's pending action, for every later answer too
            self.outcome["payment"] = placed["payment"]
            if workflow.patched(SHOPPER_EVENT) and not await self.shopper_acted(cid, inp):
                return await self.finish()
        try:
            # "signal": a capture the provider decides later comes back capture_pending
            payment = await self.local("capture", cid, "signal", retry=CAPTURE_RETRY)
        except FailureError as err:
            await self.capture_failed(cid, err)
            return await self.finish()
        if payment.get("state") == "capture_pending" and workflow.patched(CAPTURE_EVENT):
            decided = await self.capture_decided(cid, inp, payment)
            if decided is None:
                return await self.finish()
            payment = decided
        await self.local("complete", inp, payment)
        self.final = "fulfilment_requested"
        return await self.finish()


@workflow.defn(name="Checkout", sandboxed=False)
class CheckoutWorkflow(SagaBase):
    """The earlier shape, frozen: do not change (recorded histories must replay)."""

    @workflow.run
    async def run(self, inp: dict[str, Any]) -> dict[str, Any]:
        cid = inp["checkout_id"]
        reserved = authorized = False
        try:
            quote = await self.local("price", inp)
            await self.local("reserve", inp)
            reserved = True
            # an authorize that failed ambiguously may still have authorized: void it too
            authorized = True
            await self.local("authorize", inp, quote["total"])
            order = await self.local("place_order", inp, quote)
        except FailureError as err:
            slug, message, status = failure(err)
            await self.compensate(cid, voiding=authorized, releasing=reserved)
            await self.act("notify_failure", cid, slug, message, retry=COMPENSATION_RETRY)
            self.outcome = {"state": "failed", "reason": slug, "status": status, "detail": message}
            self.final = "failed"
            return await self.finish()
        self.outcome = {"state": "placed", "order": order, "quote": quote}
        try:
            payment = await self.act("capture", cid, retry=CAPTURE_RETRY)
        except ActivityError as err:
            _, message, _ = failure(err)
            await self.compensate(cid, voiding=True, releasing=True)
            await self.act("capture_failed", cid, message, retry=COMPENSATION_RETRY)
            self.final = "capture_failed"
            return await self.finish()
        if workflow.patched(COMPLETE_LOCAL):
            # a local activity: it runs in the workflow task that received the capture result,
            # which then also closes the workflow - one activity task and one workflow task
            # (and their server round trips and history events) fewer per checkout
            await self.local("complete", inp, payment)
        else:  # histories recorded before the patch replay as they ran
            await self.act("complete", inp, payment)
        self.final = "fulfilment_requested"
        return await self.finish()
