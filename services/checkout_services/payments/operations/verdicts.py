"""What a provider's answer to an authorization does to the payment: approved -> authorized,
pending -> requires_action (with the shopper's action), declined / rejected -> recorded on the
attempt (the caller's retry rules decide what comes next)."""

from __future__ import annotations

from checkout_services.payments import db
from checkout_services.payments.adapters import base
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S

CHARGED = ("authorized", "captured", "refunded")


def verdict_from_lookup(found: list[base.FoundPayment]) -> base.PSPResult | None:
    """What the provider's records say about this checkout (None = nothing charged)."""
    for p in found:
        if p.status in CHARGED:
            return base.PSPResult("approved", p.psp_reference, p.status)
    for p in found:
        if p.status == "pending":
            return base.PSPResult("pending", p.psp_reference, "pending")
    declined = [p for p in found if p.status == "declined"]
    if declined:
        return base.PSPResult(
            "declined", declined[0].psp_reference, "declined", "soft_decline", "declined"
        )
    return None


async def settle(
    svc: PaymentsService,
    payment: db.Payment,
    attempt: db.Attempt,
    target: base.Target,
    result: base.PSPResult,
) -> db.Payment | None:
    """Apply an approved/pending verdict; None for a decline or a rejection (caller decides)."""
    where = {
        "provider": target.provider,
        "provider_type": target.type,
        "endpoint": target.endpoint,
        "account": target.account,
        "psp_reference": result.psp_reference,
    }
    if result.outcome == "approved":
        svc.metrics.auth.labels(target.provider, "approved", "").inc()
        svc.rates.record(target.provider, True)
        return await svc.move(
            payment,
            S.AUTHORIZED,
            attempt=(attempt.id, "succeeded", None, result.psp_reference, None),
            decline_class=None,
            decline_reason=None,
            **where,
        )
    if result.outcome == "pending":
        svc.metrics.auth.labels(target.provider, "pending", "").inc()
        return await svc.move(
            payment,
            S.REQUIRES_ACTION,
            attempt=(attempt.id, "pending", None, result.psp_reference, None),
            action=result.action,
            **where,
        )
    if result.outcome == "declined":
        await svc.repo.finish_attempt(
            attempt.id,
            "declined",
            failure_class=result.decline_class,
            psp_reference=result.psp_reference,
            detail=result.reason,
        )
        svc.metrics.auth.labels(target.provider, "declined", result.decline_class or "").inc()
        svc.rates.record(target.provider, False)
        return None
    await svc.repo.finish_attempt(
        attempt.id, "rejected", failure_class="server_error", detail=result.reason
    )
    svc.metrics.auth.labels(target.provider, "error", "").inc()
    return None
