"""Stripe's objects and what happens after an answer: the PaymentIntent as Stripe shows it,
signed Events, and the payer's or shopper's later steps (3-D Secure passed or failed, an APM
paid, a pending Refund settled) that Stripe reports by webhook."""

from __future__ import annotations

import asyncio
import json

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim import stripe_apm, webhooks
from checkout_services.psp_sim.core import DECLINES, STRIPE_API_VERSION, JsonDict, Sim


def stripe_view(p: st.Payment) -> JsonDict:
    status = {
        "pending": "processing",
        "authorized": "requires_capture",
        "declined": "requires_payment_method",
        "captured": "succeeded",
        "voided": "canceled",
        "refunded": "succeeded",
    }[p.status]
    waiting = p.status == "pending" and p.next_action is not None
    view: JsonDict = {
        "id": p.id,
        "object": "payment_intent",
        "amount": p.amount,
        "amount_capturable": p.amount if p.status == "authorized" else 0,
        "amount_received": p.captured,
        "currency": p.currency.lower(),
        "capture_method": "automatic" if p.method in stripe_apm.METHODS else "manual",
        "status": "requires_action" if waiting else status,
        "metadata": {"checkout_id": p.reference},
        "last_payment_error": last_payment_error(p),
    }
    if waiting:
        view["next_action"] = p.next_action
    return view


def last_payment_error(p: st.Payment) -> JsonDict | None:
    if p.status != "declined":
        return None
    if p.decline_class == "authentication":
        return {"type": "card_error", "code": "payment_intent_authentication_failure"}
    code, message = DECLINES.get(p.decline_class or "soft", DECLINES["soft"])["stripe"]
    return {"type": "card_error", "code": "card_declined", "decline_code": code, "message": message}


def send_event(sim: Sim, payment: st.Payment, event_type: str, obj: JsonDict | None = None) -> None:
    """A Stripe Event (``data.object`` = ``obj``, else the PaymentIntent), signed in
    ``Stripe-Signature``."""
    acct = sim.state.accounts.get((payment.provider, payment.account))
    if acct is None or not acct.webhook_url:
        return
    event = {
        "id": sim.state.new_id("evt_"),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(sim.state.now()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj if obj is not None else stripe_view(payment)},
    }
    body = json.dumps(event).encode()
    webhooks.deliver_later(sim, payment, acct, body, "Stripe-Signature")


async def payer_pays(sim: Sim, payment: st.Payment) -> None:
    """An APM's payer completes in their bank or app after autoCompleteMs: the intent is
    succeeded (captured on confirmation) and Stripe says so by webhook."""
    await asyncio.sleep(max(sim.auto_complete_ms, 0) / 1000)
    if payment.status != "pending":
        return  # canceled meanwhile
    payment.status = "captured"
    payment.captured = payment.amount
    payment.next_action = None
    payment.history.append("captured")
    send_event(sim, payment, "payment_intent.succeeded")


async def shopper_authenticates(sim: Sim, payment: st.Payment) -> None:
    """The shopper passes the 3-D Secure challenge after autoCompleteMs: the intent moves to
    requires_capture and Stripe says so by webhook."""
    await asyncio.sleep(max(sim.auto_complete_ms, 0) / 1000)
    shopper_completes(sim, payment, passed=True)


def shopper_completes(sim: Sim, payment: st.Payment, *, passed: bool) -> JsonDict:
    """The shopper finished the 3-D Secure challenge: the intent is requires_capture, or back
    to requires_payment_method (``payment_intent_authentication_failure``); Stripe sends the
    browser to ``return_url?payment_intent=<id>&redirect_status=...``."""
    if payment.status == "pending":
        payment.status = "authorized" if passed else "declined"
        payment.history.append(payment.status)
        if not passed:
            payment.decline_class = "authentication"
        send_event(
            sim,
            payment,
            "payment_intent.amount_capturable_updated"
            if passed
            else "payment_intent.payment_failed",
        )
    return {"payment_intent": payment.id, "redirect_status": "succeeded" if passed else "failed"}


async def refund_settles(sim: Sim, payment: st.Payment, refund: JsonDict, ok: bool) -> None:
    """A pending Refund reaches its final status after autoCompleteMs: ``refund.updated``
    (and ``refund.failed`` when it failed), ``data.object`` the Refund."""
    await asyncio.sleep(max(sim.auto_complete_ms, 0) / 1000)
    amount = int(refund["amount"])
    payment.refunding -= amount
    if ok:
        payment.refunded += amount
        if payment.refunded == payment.captured:
            payment.status = "refunded"
        payment.history.append(f"refunded:{amount}")
        refund["status"] = "succeeded"
    else:
        payment.history.append(f"refund_failed:{amount}")
        refund["status"] = "failed"
        refund["failure_reason"] = "expired_or_canceled_card"
    for event_type in ("refund.updated",) + (() if ok else ("refund.failed",)):
        send_event(sim, payment, event_type, refund)
