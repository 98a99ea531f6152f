"""Void (cancel an authorization): at the provider, account and endpoint that authorized.

A payment whose capture the provider accepted and has not decided yet (``capture_pending``:
Adyen's ``received``) cannot be cancelled: the void is recorded as a release request, and the
outcome, when it comes, is undone (:mod:`checkout_services.payments.release`).
"""

from __future__ import annotations

from checkout_services.payments import db, exceptions
from checkout_services.payments import state_machine as sm
from checkout_services.payments.adapters import base
from checkout_services.payments.operations import modify
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S


async def request_release(svc: PaymentsService, checkout_id: str) -> bool:
    """Record that the checkout gave this ``capture_pending`` payment up; False when it is no
    longer ``capture_pending`` (its outcome came first)."""
    done = await svc.repo.pool.fetchval(
        "UPDATE payments SET release_requested_at = coalesce(release_requested_at, now())"
        " WHERE checkout_id = $1 AND state = 'capture_pending' RETURNING 1",
        checkout_id,
    )
    if done:
        svc.metrics.reconciled.labels("release_requested").inc()
    return bool(done)


async def void(svc: PaymentsService, checkout_id: str) -> db.Payment:
    payment = await svc.get(checkout_id)
    if payment.state == S.CAPTURE_PENDING:
        if await request_release(svc, checkout_id):
            return await svc.get(checkout_id)
        payment = await svc.get(checkout_id)  # the capture's outcome came meanwhile
    if payment.state in (S.VOIDED, S.VOID_PENDING):
        return payment
    if not sm.can(payment.state, S.VOIDED):
        raise exceptions.IllegalTransitionError(
            f"cannot void a {payment.state.value} payment", state=payment.state.value
        )
    async with svc.lease(checkout_id):
        payment = await svc.get(checkout_id)
        if payment.state in (S.VOIDED, S.VOID_PENDING):
            return payment
        if not sm.can(payment.state, S.VOIDED):
            raise exceptions.IllegalTransitionError(
                f"cannot void a {payment.state.value} payment", state=payment.state.value
            )

        async def call(adapter: base.PSPAdapter, ref: str, key: str) -> base.PSPResult:
            return await adapter.void(psp_reference=ref, checkout_id=checkout_id, key=key)

        return await modify.modify(
            svc,
            payment,
            operation="void",
            done=("voided",),
            goal=S.VOIDED,
            call=call,
            amount=None,
            goal_fields={},
            waiting=S.VOID_PENDING,
        )
