"""Complete a shopper action: the shopper is back from a redirect or a 3-D Secure challenge.

Adyen: the ``details`` the browser brought back go to ``POST /payments/details`` (its key is
derived from the checkout and the details, so a retry or a duplicate reaches Adyen's dedup and
gets the same answer). Stripe (and the local methods): nothing to submit, the payment is read
back. The answer moves the payment out of requires_action: authorized, declined, or still
waiting with a further action. A webhook that settled it first wins; the answer then agrees.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from checkout_services.payments import db, exceptions, keys, schemas
from checkout_services.payments.adapters import base
from checkout_services.payments.service import PaymentsService, backoff
from checkout_services.payments.state_machine import PaymentState as S


def details_key(checkout_id: str, details: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(details, sort_keys=True).encode()).hexdigest()[:32]
    return keys.psp_idempotency_key(checkout_id, "details", digest)


def already_settled(payment: db.Payment) -> db.Payment:
    """Not waiting for the shopper any more: the payment as it is (a webhook was faster)."""
    if payment.state == S.PENDING:
        raise exceptions.PaymentIncomplete(
            f"checkout {payment.checkout_id!r} is still being authorized; retry later"
        )
    return payment


async def complete(
    svc: PaymentsService, checkout_id: str, req: schemas.DetailsRequest
) -> db.Payment:
    payment = await svc.get(checkout_id)
    if payment.state != S.REQUIRES_ACTION:
        return already_settled(payment)
    async with svc.lease(checkout_id):
        payment = await svc.get(checkout_id)
        if payment.state != S.REQUIRES_ACTION:
            return already_settled(payment)
        if payment.psp_reference is None:
            raise exceptions.PaymentIncomplete(
                f"checkout {checkout_id!r} has no provider reference yet"
            )
        target = svc.payment_target(payment)
        details: dict[str, str] = dict(req.details)
        if target.type == "adyen" and not details:
            raise exceptions.DetailsRejected(
                "Adyen needs the details the shopper came back with (e.g. redirectResult)",
                field="details",
            )
        result = await send(svc, target, payment.psp_reference, details, checkout_id)
        return await apply(svc, payment, target, result)


async def send(
    svc: PaymentsService,
    target: base.Target,
    psp_reference: str,
    details: dict[str, str],
    checkout_id: str,
) -> base.PSPResult:
    """Same key on every try: an ambiguous answer is resolved by the provider's stored one."""
    adapter = svc.adapter(target)
    key = details_key(checkout_id, details)
    for n in range(svc.settings.lookup_attempts):
        try:
            result = await adapter.complete_action(
                psp_reference=psp_reference, details=details, key=key
            )
        except base.PSPInProgress:
            raise exceptions.OutcomeUnknown(
                "these details are still being processed at the provider; retry later"
            ) from None
        except base.PSPRejected as exc:
            raise exceptions.ProviderRejected(
                f"provider {target.provider!r} refused the request (HTTP {exc.status})"
            ) from None
        except base.PSPError as exc:
            svc.call_failed(target, exc.failure_class)
            await asyncio.sleep(backoff(n))
            continue
        svc.record_call(target, True)
        return result
    raise exceptions.OutcomeUnknown(
        f"provider {target.provider!r} did not answer about the details; retry (same details)"
    )


async def apply(
    svc: PaymentsService, payment: db.Payment, target: base.Target, result: base.PSPResult
) -> db.Payment:
    if result.outcome == "approved":
        return await svc.move(payment, S.AUTHORIZED, decline_class=None, decline_reason=None)
    if result.outcome == "declined":
        return await svc.move(
            payment,
            S.DECLINED,
            decline_class=result.decline_class or "soft_decline",
            decline_reason=result.reason,
        )
    if result.outcome == "pending":
        if result.action is None:
            return payment  # Pending/Received: the AUTHORISATION webhook decides
        return await svc.move(payment, S.REQUIRES_ACTION, action=result.action)
    raise exceptions.DetailsRejected(
        f"provider {target.provider!r} refused the details ({result.reason})", field="details"
    )
