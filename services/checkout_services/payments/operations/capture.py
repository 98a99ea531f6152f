"""Capture: at the provider, account and endpoint that authorized; once."""

from __future__ import annotations

from checkout_services.payments import db, exceptions, schemas
from checkout_services.payments import state_machine as sm
from checkout_services.payments.adapters import base
from checkout_services.payments.operations import modify
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S


async def capture(
    svc: PaymentsService, checkout_id: str, req: schemas.CaptureRequest
) -> db.Payment:
    payment = await svc.get(checkout_id)
    amount = req.amount if req.amount is not None else payment.amount
    if amount > payment.amount:
        raise exceptions.InvalidAmount(
            f"amount {amount} exceeds the authorized {payment.amount} {payment.currency}",
            field="amount",
        )
    if payment.state == S.CAPTURED and payment.captured_amount == amount:
        return payment  # already done: the same answer again
    if payment.state == S.CAPTURE_PENDING:
        return payment  # accepted by the provider; its webhook decides
    if not sm.can(payment.state, S.CAPTURED):
        raise exceptions.IllegalTransitionError(
            f"cannot capture a {payment.state.value} payment", state=payment.state.value
        )
    async with svc.lease(checkout_id):
        payment = await svc.get(checkout_id)
        if payment.state in (S.CAPTURED, S.CAPTURE_PENDING):
            return payment
        if not sm.can(payment.state, S.CAPTURED):
            raise exceptions.IllegalTransitionError(
                f"cannot capture a {payment.state.value} payment", state=payment.state.value
            )

        async def call(adapter: base.PSPAdapter, ref: str, key: str) -> base.PSPResult:
            return await adapter.capture(
                psp_reference=ref,
                checkout_id=checkout_id,
                amount=amount,
                currency=payment.currency,
                key=key,
            )

        return await modify.modify(
            svc,
            payment,
            operation="capture",
            done=("captured", "refunded"),
            goal=S.CAPTURED,
            call=call,
            amount=amount,
            goal_fields={"captured_amount": amount},
            waiting=S.CAPTURE_PENDING,
        )
