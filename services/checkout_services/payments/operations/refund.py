"""Refund (all or part of a capture): one PSP key per client refund id, same provider/endpoint.

The refund is counted against what can still be refunded before it is sent
(:mod:`~checkout_services.payments.refund_ledger`), so a refund still pending at the provider
holds its amount: two refund requests never refund more than was captured, whatever their
timing. A refund the provider refuses or fails gives the amount back.
"""

from __future__ import annotations

from checkout_services.payments import db, exceptions, keys, refund_ledger, schemas
from checkout_services.payments.adapters import base
from checkout_services.payments.service import PaymentsService


async def refund(svc: PaymentsService, checkout_id: str, req: schemas.RefundRequest) -> db.Payment:
    async with svc.lease(checkout_id):
        payment = await svc.get(checkout_id)
        if payment.psp_reference is None:  # never authorized, so never captured
            raise exceptions.IllegalTransitionError(
                f"cannot refund a {payment.state.value} payment", state=payment.state.value
            )
        target = svc.payment_target(payment)
        key = keys.psp_idempotency_key(checkout_id, "refund", req.refund_id)
        attempt = await refund_ledger.reserve(
            svc.repo.pool,
            checkout_id=checkout_id,
            refund_id=req.refund_id,
            amount=req.amount,
            target=target,
            key=key,
        )
        if attempt is None:  # this refund id was accepted already: the same answer again
            return payment
        pool = svc.repo.pool
        try:
            result = await svc.adapter(target).refund(
                psp_reference=payment.psp_reference,
                checkout_id=checkout_id,
                amount=req.amount,
                currency=payment.currency,
                key=key,
            )
        except base.PSPError as exc:
            # Same refund id -> same key: a retry reaches the provider's dedup. Until then the
            # amount stays reserved (the refund may have happened).
            await refund_ledger.settle(pool, attempt.id, "unknown", detail=exc.failure_class)
            raise exceptions.OutcomeUnknown(
                f"refund {req.refund_id!r} outcome unknown; retry with the same refund_id"
            ) from None
        mod = result.modification
        if result.outcome == "pending":
            # Accepted for processing (Adyen ``received``, a Stripe Refund ``pending``): the
            # REFUND / REFUND_FAILED (refund.updated) webhook settles it.
            await refund_ledger.settle(pool, attempt.id, "pending", modification=mod)
        elif result.outcome == "approved":
            await refund_ledger.settle(pool, attempt.id, "succeeded", modification=mod)
        else:
            await refund_ledger.settle(
                pool, attempt.id, "rejected", modification=mod, detail=result.reason
            )
            raise exceptions.ProviderRejected(f"provider {target.provider!r} refused the refund")
        return await svc.get(checkout_id)
