"""The checkout saga (Temporal): price -> reserve -> authorize -> place order -> capture ->
fulfilment requested, with compensations (void, release, notify).

The client's answer comes from the ``placed`` update, which returns as soon as the order is
placed (or the checkout failed); capture and fulfilment go on in the workflow afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

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


def failure(err: FailureError) -> tuple[str, str, int]:
    """(slug, message, http status) of a failed activity (a local activity's failure arrives
    as the error itself, e.g. an ApplicationError; a remote one's wrapped in an ActivityError)."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, ApplicationError):
        status = cause.details[0] if cause.details and isinstance(cause.details[0], int) else 503
        return cause.type or "failed", cause.message, status
    return "failed", str(err), 503


@workflow.defn(name="Checkout", sandboxed=False)
class CheckoutWorkflow:
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

    async def local(self, name: str, *args: Any) -> Any:
        """The short steps before the answer run as local activities (in the worker, no
        server round trip per step); their results are still recorded in the history."""
        return await workflow.execute_local_activity(
            name, args=list(args), start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )

    async def compensate(self, cid: str, *, voiding: bool, releasing: bool) -> None:
        if voiding:
            await self.act("void", cid, retry=COMPENSATION_RETRY)
        if releasing:
            await self.act("release", cid, retry=COMPENSATION_RETRY)

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

    async def finish(self) -> dict[str, Any]:
        """Let the 'placed' update answer before the workflow closes."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self.outcome is not None
        return {**self.outcome, "final": self.final}
