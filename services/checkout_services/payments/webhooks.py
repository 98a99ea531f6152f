"""Provider webhooks: HMAC-verified, idempotent (event ids kept), out-of-order safe."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from checkout_services.common import principal
from checkout_services.payments import exceptions
from checkout_services.payments import state_machine as sm
from checkout_services.payments.service import PaymentsService
from checkout_services.payments.state_machine import PaymentState as S

TOLERANCE_SECONDS = 300
EVENT_STATES: dict[str, S] = {
    "payment.authorized": S.AUTHORIZED,
    "payment.declined": S.DECLINED,
    "payment.captured": S.CAPTURED,
    "payment.voided": S.VOIDED,
}


def verify(secret: str, header: str, body: bytes, *, now: float | None = None) -> None:
    """``t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<body>")>``; raises on any mismatch."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise exceptions.WebhookSignatureInvalid("malformed signature header") from None
    if abs((now if now is not None else time.time()) - ts) > TOLERANCE_SECONDS:
        raise exceptions.WebhookSignatureInvalid("signature timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    if not principal.same_secret(expected, given):  # a non-ASCII header: 401, not 500
        raise exceptions.WebhookSignatureInvalid("signature does not match")


async def handle(
    svc: PaymentsService, provider: str, signature: str, body: bytes
) -> dict[str, Any]:
    creds = svc.credentials.get(provider)
    if creds is None:
        raise exceptions.UnknownProvider(f"no provider named {provider!r}")
    verify(creds.webhook_secret.reveal(), signature, body)
    try:
        event = json.loads(body)
        event_id = str(event["id"])
        event_type = str(event["type"])
        data = event["data"]
        reference = str(data["reference"])
        psp_reference = str(data["id"])
    except (ValueError, KeyError, TypeError):
        raise exceptions.PaymentsError("webhook body is not a payment event") from None
    if not await svc.repo.record_webhook(provider, event_id, "received"):
        return {"outcome": "duplicate"}
    payment = await svc.repo.get(reference)
    target = EVENT_STATES.get(event_type)
    if payment is None or target is None:
        return {"outcome": "ignored"}
    if payment.state == S.PENDING:
        # Our own authorize call has not recorded the provider's answer yet: not applied, and
        # not remembered, so the provider's redelivery is processed once we know the payment.
        await svc.repo.forget_webhook(provider, event_id)
        raise exceptions.PaymentNotReady(
            f"checkout {reference!r} is still being authorized; deliver again later"
        )
    if payment.psp_reference is not None and payment.psp_reference != psp_reference:
        return {"outcome": "ignored"}  # about another attempt (e.g. a stray authorization)
    if payment.state == target or not sm.can(payment.state, target):
        return {"outcome": "stale"}  # out of order or already applied: the state machine says no
    fields: dict[str, Any] = {}
    if target == S.CAPTURED:
        fields["captured_amount"] = payment.amount
    if target == S.DECLINED:
        fields["decline_class"] = "soft_decline"
    try:
        await svc.move(payment, target, **fields)
    except exceptions.IllegalTransitionError:
        return {"outcome": "stale"}
    return {"outcome": "applied", "state": target.value}
