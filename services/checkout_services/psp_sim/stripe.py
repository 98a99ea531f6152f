"""Stripe's dialect: PaymentIntents (form-encoded), Refunds, signed Events."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from checkout_services.psp_sim import state as st
from checkout_services.psp_sim import stripe_apm
from checkout_services.psp_sim.core import (
    DECLINES,
    STRIPE_API_VERSION,
    JsonDict,
    Sim,
    read_form,
)


def stripe_error(status: int, type_: str, message: str, **extra: Any) -> tuple[int, JsonDict]:
    return status, {"error": {"type": type_, "message": message, **extra}}


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


class StripeRoutes:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    def scope(self, acct: st.Account, request: Request) -> tuple[str, ...] | None:
        key = request.headers.get("idempotency-key")
        # Stripe keys are per account, whatever the endpoint.
        return ("stripe", acct.account, key) if key else None

    async def create(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            try:
                amount = int(form.get("amount", ""))
            except ValueError:
                return stripe_error(
                    400, "invalid_request_error", "Invalid integer: amount", param="amount"
                )
            currency = form.get("currency", "")
            if amount <= 0:
                return stripe_error(
                    400, "invalid_request_error", "Amount must be positive", param="amount"
                )
            if not re.fullmatch(r"[a-z]{3}", currency):
                return stripe_error(
                    400, "invalid_request_error", "Invalid currency", param="currency"
                )
            method = form.get("payment_method_data[type]") or "card"
            if form.get("confirm") != "true" or (
                method == "card" and form.get("capture_method") != "manual"
            ):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "The simulator supports confirm=true (cards: capture_method=manual) only",
                    param="capture_method",
                )
            if method == "card" and not form.get("payment_method", "").startswith("pm_"):
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "No such PaymentMethod",
                    param="payment_method",
                    code="resource_missing",
                )
            if method in stripe_apm.METHODS:
                wrong = stripe_apm.refusal(method, currency, form.get("return_url"))
                if wrong is not None:
                    return stripe_error(400, "invalid_request_error", wrong[1], param=wrong[0])
            reference = form.get("metadata[checkout_id]", "")
            p = sim.new_payment(
                "stripe", ep, acct.account, reference, amount, currency.upper(), method, "pi_"
            )
            if faults.decline:
                p.status = "declined"
                p.decline_class = faults.decline
                p.history.append("declined")
                code, msg = DECLINES[faults.decline]["stripe"]
                return stripe_error(
                    402,
                    "card_error",
                    msg,
                    code="card_declined",
                    decline_code=code,
                    payment_intent=stripe_view(p),
                )
            if method in stripe_apm.METHODS:  # the payer acts in their bank or app
                p.next_action = stripe_apm.next_action(p, form.get("return_url"), sim.state.now())
                p.history.append("requires_action")
                if sim.auto_complete_ms >= 0:
                    sim.schedule(payer_pays(sim, p))
                return 200, stripe_view(p)
            if faults.three_ds and method == "card":
                p.history.append("requires_action")
                if sim.auto_complete_ms >= 0:  # else the shopper acts through the admin API
                    sim.schedule(shopper_authenticates(sim, p))
                view = stripe_view(p)
                view["status"] = "requires_action"
                view["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": f"https://hooks.stripe.test/3d_secure_2/{p.id}",
                        "return_url": form.get("return_url"),
                    },
                }
                return 200, view
            p.status = "authorized"
            p.history.append("authorized")
            send_event(sim, p, "payment_intent.amount_capturable_updated")
            return 200, stripe_view(p)

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation="authorize",
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", "/v1/payment_intents", sorted(params)),
            execute=execute,
        )

    def owned(self, acct: st.Account, pid: str) -> st.Payment | None:
        p = self.sim.state.payments.get(pid)
        if p is None or p.provider != "stripe" or p.account != acct.account:
            return None
        return p

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        pid = request.path_params["pid"]
        action = request.path_params["action"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)
        operation = {"capture": "capture", "cancel": "cancel"}.get(action)
        if operation is None:
            return sim.json(
                404,
                {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}},
            )

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, pid)
            if p is None:
                return stripe_error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{pid}'",
                    code="resource_missing",
                )
            # a PaymentIntent still waiting for the shopper (requires_action) can be canceled
            cancellable = action == "cancel" and p.status == "pending"
            if p.status != "authorized" and not cancellable:
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"This PaymentIntent's {action} could not be performed because it has a "
                    f"status of {stripe_view(p)['status']}.",
                    code="payment_intent_unexpected_state",
                    payment_intent=stripe_view(p),
                )
            if action == "capture":
                amount = int(form.get("amount_to_capture", p.amount))
                if amount <= 0 or amount > p.amount:
                    return stripe_error(
                        400,
                        "invalid_request_error",
                        "Invalid amount_to_capture",
                        param="amount_to_capture",
                    )
                p.status = "captured"
                p.captured = amount
                p.history.append("captured")
            else:
                p.status = "voided"
                p.voided = True
                p.history.append("voided")
            return 200, stripe_view(p)

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation=operation,
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", f"/v1/payment_intents/{pid}/{action}", sorted(params)),
            execute=execute,
        )

    async def refund(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        params = await read_form(request)
        form = dict(params)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, form.get("payment_intent", ""))
            if p is None:
                return stripe_error(
                    404, "invalid_request_error", "No such payment_intent", code="resource_missing"
                )
            refundable = p.captured - p.refunded - p.refunding
            amount = int(form.get("amount", refundable))
            if p.status not in ("captured", "refunded") or amount <= 0 or amount > refundable:
                return stripe_error(
                    400,
                    "invalid_request_error",
                    "Refund amount exceeds the captured amount",
                    code="amount_too_large",
                )
            refund: JsonDict = {
                "id": sim.state.new_id("re_"),
                "object": "refund",
                "amount": amount,
                "payment_intent": p.id,
                "status": "succeeded",
                "currency": p.currency.lower(),
                "metadata": {
                    k[len("metadata[") : -1]: v for k, v in params if k.startswith("metadata[")
                },
            }
            sim.state.refunds[refund["id"]] = refund  # the object GET /v1/refunds/{id} reads
            if faults.refund_pending or faults.refund_failure:
                # Stripe: a Refund may stay pending, then succeed or fail (refund.updated).
                p.refunding += amount
                refund["status"] = "pending"
                sim.schedule(refund_settles(sim, p, refund, not faults.refund_failure))
                return 200, dict(refund)
            p.refunded += amount
            if p.refunded == p.captured:
                p.status = "refunded"
            p.history.append(f"refunded:{amount}")
            return 200, refund

        return await sim.idempotent(
            provider="stripe",
            endpoint=ep,
            operation="refund",
            scope=self.scope(acct, request),
            fp=st.fingerprint("POST", "/v1/refunds", sorted(params)),
            execute=execute,
        )

    async def retrieve_refund(self, request: Request) -> Response:
        """GET /v1/refunds/{id}: the Refund as it is now (pending, succeeded, failed)."""
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        rid = request.path_params["rid"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            refund = sim.state.refunds.get(rid)
            if refund is None or self.owned(acct, str(refund["payment_intent"])) is None:
                missing = f"No such refund: '{rid}'"
                return stripe_error(404, "invalid_request_error", missing, code="resource_missing")
            return 200, dict(refund)

        return await sim.read("stripe", ep, "retrieve", execute)

    async def retrieve(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        pid = request.path_params["pid"]

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = self.owned(acct, pid)
            if p is None:
                return stripe_error(
                    404,
                    "invalid_request_error",
                    f"No such payment_intent: '{pid}'",
                    code="resource_missing",
                )
            return 200, stripe_view(p)

        return await sim.read("stripe", ep, "retrieve", execute)

    async def search(self, request: Request) -> Response:
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("stripe", request)
        if acct is None:
            return sim.unauthorized("stripe")
        query = request.query_params.get("query", "")
        m = re.fullmatch(r"\s*metadata\['checkout_id'\]\s*:\s*'([^']*)'\s*", query)
        if m is None:
            return sim.json(
                400,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Unsupported search query",
                        "param": "query",
                    }
                },
            )
        ref = m.group(1)

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            found = [
                stripe_view(p)
                for p in sim.state.payments.values()
                if p.provider == "stripe" and p.account == acct.account and p.reference == ref
            ]
            return 200, {"object": "search_result", "data": found, "has_more": False}

        return await sim.read("stripe", ep, "lookup", execute)


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
    sim.deliver_later(payment, acct, body, "Stripe-Signature")


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
