"""Refund (all or part of a capture): one PSP key per client refund id, same provider/endpoint."""

from __future__ import annotations

from checkout_services.payments import db, exceptions, keys, schemas
from checkout_services.payments import state_machine as sm
from checkout_services.payments.adapters import base
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S


async def refund(svc: PaymentsService, checkout_id: str, req: schemas.RefundRequest) -> db.Payment:
    payment = await svc.get(checkout_id)
    done = {a.attempt_scope: a for a in await svc.repo.attempts(checkout_id, "refund")}
    previous = done.get(req.refund_id)
    if previous is not None and previous.status in ("succeeded", "pending"):
        if previous.amount != req.amount:
            raise exceptions.CheckoutMismatch(
                f"refund {req.refund_id!r} was for {previous.amount}", field="amount"
            )
        return payment
    remaining = payment.captured_amount - payment.refunded_amount
    target_state = S.REFUNDED if req.amount == remaining else S.PARTIALLY_REFUNDED
    if not sm.can(payment.state, target_state):
        raise exceptions.IllegalTransitionError(
            f"cannot refund a {payment.state.value} payment", state=payment.state.value
        )
    if req.amount > remaining:
        raise exceptions.InvalidAmount(
            f"amount {req.amount} exceeds the refundable {remaining} {payment.currency}",
            field="amount",
        )
    async with svc.lease(checkout_id):
        payment = await svc.get(checkout_id)
        if payment.psp_reference is None:
            raise exceptions.PaymentIncomplete(
                f"checkout {checkout_id!r} has no provider reference"
            )
        target = svc.payment_target(payment)
        key = keys.psp_idempotency_key(checkout_id, "refund", req.refund_id)
        attempt = await svc.repo.start_attempt(
            checkout_id=checkout_id,
            operation="refund",
            scope=req.refund_id,
            provider=target.provider,
            provider_type=target.type,
            endpoint=target.endpoint,
            account=target.account,
            key=key,
            amount=req.amount,
        )
        try:
            result = await svc.adapter(target).refund(
                psp_reference=payment.psp_reference,
                checkout_id=checkout_id,
                amount=req.amount,
                currency=payment.currency,
                key=key,
            )
        except base.PSPError as exc:
            # Same refund id -> same key: a retry reaches the provider's dedup.
            await svc.repo.finish_attempt(attempt.id, "unknown", failure_class=exc.failure_class)
            raise exceptions.OutcomeUnknown(
                f"refund {req.refund_id!r} outcome unknown; retry with the same refund_id"
            ) from None
        if result.outcome == "pending":
            # Accepted for processing (Adyen ``received``, a Stripe Refund ``pending``): the
            # REFUND / REFUND_FAILED (refund.updated) webhook applies it.
            await svc.repo.finish_attempt(attempt.id, "pending", detail=result.reason)
            return payment
        if result.outcome != "approved":
            await svc.repo.finish_attempt(attempt.id, "rejected", detail=result.reason)
            raise exceptions.ProviderRejected(f"provider {target.provider!r} refused the refund")
        await svc.repo.finish_attempt(attempt.id, "succeeded", psp_reference=payment.psp_reference)
        remaining = payment.captured_amount - payment.refunded_amount
        goal = S.REFUNDED if req.amount >= remaining else S.PARTIALLY_REFUNDED
        return await svc.move(payment, goal, refunded_amount=payment.refunded_amount + req.amount)
