"""Adyen's dialect: Checkout API v71 payments and modifications, HMAC-signed notifications."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from checkout_services.psp_sim import adyen_apm, webhooks
from checkout_services.psp_sim import state as st
from checkout_services.psp_sim.core import (
    DECLINES,
    Executor,
    JsonDict,
    Sim,
    read_json,
)

# -- provider dialects ---------------------------------------------------------------------


def adyen_hmac(hex_key: str, item: JsonDict) -> str:
    """Adyen's notification signature: base64 HMAC-SHA256, hex-decoded key, over
    pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:
    eventCode:success."""
    amount = item.get("amount") or {}
    parts = [
        item.get("pspReference"),
        item.get("originalReference"),
        item.get("merchantAccountCode"),
        item.get("merchantReference"),
        amount.get("value"),
        amount.get("currency"),
        item.get("eventCode"),
        item.get("success"),
    ]
    text = ":".join("" if v is None else str(v) for v in parts)
    try:
        key = bytes.fromhex(hex_key)
    except ValueError:
        key = hex_key.encode()
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()


def adyen_error(
    status: int, code: str, message: str, type_: str = "validation"
) -> tuple[int, JsonDict]:
    return status, {"status": status, "errorCode": code, "message": message, "errorType": type_}


def adyen_view(p: st.Payment) -> JsonDict:
    return {
        "pspReference": p.id,
        "merchantReference": p.reference,
        "merchantAccount": p.account,
        "amount": {"value": p.amount, "currency": p.currency},
        "status": {
            "pending": "Pending",
            "authorized": "Authorised",
            "declined": "Refused",
            "captured": "Captured",
            "voided": "Cancelled",
            "refunded": "Refunded",
        }[p.status],
        "capturedAmount": p.captured,
        "refundedAmount": p.refunded,
    }


@dataclass(frozen=True)
class Call:
    """An admitted request: the merchant account that authenticated, the regional endpoint,
    the JSON body and the idempotency scope (None without a key)."""

    acct: st.Account
    ep: str
    body: JsonDict
    scope: tuple[str, ...] | None


class AdyenRoutes:
    MAX_KEY = 64

    def __init__(self, sim: Sim) -> None:
        self.sim = sim

    async def admit(self, request: Request, *, names_account: bool) -> Call | Response:
        """Authentication, a JSON body, the idempotency key; with ``names_account`` the body's
        ``merchantAccount`` must be the one that authenticated (Adyen answers 403 901)."""
        sim = self.sim
        ep = request.path_params["ep"]
        acct = sim.authenticate("adyen", request)
        if acct is None:
            return sim.unauthorized("adyen")
        body = await read_json(request)
        if body is None:
            return sim.json(*adyen_error(400, "702", "Unable to parse JSON"))
        if names_account and body.get("merchantAccount") != acct.account:
            return sim.json(*adyen_error(403, "901", "Invalid Merchant Account", "security"))
        scope = self.scope(acct, ep, request)
        if isinstance(scope, Response):
            return scope
        return Call(acct, ep, body, scope)

    async def run(self, call: Call, operation: str, path: str, execute: Executor) -> Response:
        """``execute`` once per idempotency key (the request's fingerprint: ``POST path`` and
        its body)."""
        return await self.sim.idempotent(
            provider="adyen",
            endpoint=call.ep,
            operation=operation,
            scope=call.scope,
            fp=st.fingerprint("POST", path, json.dumps(call.body, sort_keys=True)),
            execute=execute,
        )

    def scope(
        self, acct: st.Account, ep: str, request: Request
    ) -> tuple[str, ...] | Response | None:
        key = request.headers.get("idempotency-key")
        if not key:
            return None
        if len(key) > self.MAX_KEY:
            status, body = adyen_error(
                422, "idempotency_key_too_long", "Idempotency-Key longer than 64 characters"
            )
            return self.sim.json(status, body)
        # Adyen keys are per account AND per regional endpoint.
        return ("adyen", acct.account, ep, key)

    async def authorize(self, request: Request) -> Response:
        sim = self.sim
        call = await self.admit(request, names_account=True)
        if isinstance(call, Response):
            return call
        ep, acct, body = call.ep, call.acct, call.body

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            amount = body.get("amount") or {}
            value, currency = amount.get("value"), amount.get("currency")
            if not isinstance(value, int) or value <= 0:
                return adyen_error(422, "137", "Invalid amount specified")
            if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
                return adyen_error(422, "138", "Invalid currency specified")
            reference = str(body.get("reference", ""))
            if not body.get("returnUrl"):
                return adyen_error(422, "14_0", "Required field 'returnUrl' is not provided.")
            if not (body.get("paymentMethod") or {}).get("type"):
                return adyen_error(422, "14_0", "Required field 'paymentMethod' is not provided.")
            method = str(body["paymentMethod"]["type"])
            p = sim.new_payment("adyen", ep, acct.account, reference, value, currency, method, "")
            if faults.decline:
                p.status = "declined"
                p.decline_class = faults.decline
                p.history.append("declined")
                reason, code = DECLINES[faults.decline]["adyen"]
                return 200, {
                    "pspReference": p.id,
                    "resultCode": "Refused",
                    "refusalReason": reason,
                    "refusalReasonCode": code,
                    "merchantReference": reference,
                    "amount": {"value": value, "currency": currency},
                }
            if faults.three_ds and method in ("scheme", "card"):
                p.history.append("RedirectShopper")
                if sim.auto_complete_ms >= 0:  # else the shopper acts through the admin API
                    sim.schedule(shopper_authenticates(sim, p))
                return 200, {
                    "pspReference": p.id,
                    "resultCode": "RedirectShopper",
                    "merchantReference": reference,
                    "action": {
                        "type": "redirect",
                        "paymentMethodType": "scheme",
                        "method": "GET",
                        "url": f"https://checkoutshopper-test.adyen.test/3ds/{p.id}",
                    },
                }
            apm = adyen_apm.answer(method, p.id)
            if apm is not None:  # the shopper acts, then AUTHORISATION decides
                p.history.append(str(apm["resultCode"]))
                if sim.auto_complete_ms >= 0:  # else the shopper acts through the admin API
                    sim.schedule(shopper_authenticates(sim, p))
                return 200, {"pspReference": p.id, "merchantReference": reference, **apm}
            p.status = "authorized"
            p.history.append("authorized")
            return 200, {
                "pspReference": p.id,
                "resultCode": "Authorised",
                "merchantReference": reference,
                "amount": {"value": value, "currency": currency},
            }

        return await self.run(call, "authorize", "/payments", execute)

    async def modify(self, request: Request) -> Response:
        sim = self.sim
        psp = request.path_params["psp"]
        kind = request.path_params["kind"]
        operation = {"captures": "capture", "cancels": "cancel", "refunds": "refund"}.get(kind)
        if operation is None:
            return sim.json(*adyen_error(404, "000", "Not found"))
        call = await self.admit(request, names_account=True)
        if isinstance(call, Response):
            return call
        ep, acct, body = call.ep, call.acct, call.body

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            p = sim.state.payments.get(psp)
            if p is None or p.provider != "adyen" or p.account != acct.account or p.endpoint != ep:
                # A modification must go to the account and regional endpoint that authorized.
                return adyen_error(422, "167", "Original pspReference required for this operation")
            value = int((body.get("amount") or {}).get("value", p.amount))
            if operation == "capture":
                if p.status != "authorized" or value <= 0 or value > p.amount:
                    return adyen_error(
                        422,
                        "167",
                        f"Cannot capture a payment with status {adyen_view(p)['status']}",
                    )
                if faults.capture_failure:
                    p.history.append("capture_failed")
                else:
                    p.status, p.captured = "captured", value
                    p.history.append("captured")
            elif operation == "cancel":
                if p.status not in ("authorized", "pending"):  # pending: waiting for the shopper
                    return adyen_error(
                        422, "167", f"Cannot cancel a payment with status {adyen_view(p)['status']}"
                    )
                p.status, p.voided = "voided", True
                p.history.append("voided")
            else:
                if (
                    p.status not in ("captured", "refunded")
                    or value <= 0
                    or value > p.captured - p.refunded
                ):
                    return adyen_error(422, "167", "Refund amount exceeds the captured amount")
                if faults.refund_failure:
                    p.history.append(f"refund_failed:{value}")  # REFUND success=false
                else:
                    p.refunded += value
                    if p.refunded == p.captured:
                        p.status = "refunded"
                    p.history.append(f"refunded:{value}")
            modification = f"{secrets.randbelow(10**16):016d}"
            event = {"capture": "CAPTURE", "cancel": "CANCELLATION", "refund": "REFUND"}
            failed = (operation == "capture" and faults.capture_failure) or (
                operation == "refund" and faults.refund_failure
            )
            send_notification(sim, p, event[operation], modification, value, success=not failed)
            answer: JsonDict = {
                "merchantAccount": acct.account,
                "paymentPspReference": psp,
                "pspReference": modification,
                "status": "received",
            }
            if body.get("reference"):
                answer["reference"] = body["reference"]
            if operation != "cancel":
                answer["amount"] = {"value": value, "currency": p.currency}
            return 201, answer

        return await self.run(call, operation, f"/payments/{psp}/{kind}", execute)

    async def details(self, request: Request) -> Response:
        """POST /payments/details: the ``details`` the shopper's browser brought back from a
        redirect or a 3-D Secure challenge (``redirectResult``, ``threeDSResult``, ...) decide
        the payment; the AUTHORISATION notification follows, as for any payment."""
        sim = self.sim
        call = await self.admit(request, names_account=False)
        if isinstance(call, Response):
            return call
        ep, acct = call.ep, call.acct
        details = call.body.get("details")

        def execute(faults: st.Faults) -> tuple[int, JsonDict]:
            if not isinstance(details, dict) or not details:
                return adyen_error(422, "14_0", "Required field 'details' is not provided.")
            result = details.get("redirectResult") or details.get("threeDSResult") or ""
            found = sim.state.redirect_results.get(str(result))
            p = sim.state.payments.get(found[0]) if found else None
            if found is None or p is None or p.account != acct.account or p.endpoint != ep:
                return adyen_error(422, "101", "Invalid details: unknown or expired result")
            if p.status == "pending":
                p.status = "authorized" if found[1] else "declined"
                p.history.append(p.status)
                send_notification(
                    sim, p, "AUTHORISATION", p.id, p.amount, success=p.status == "authorized"
                )
            answer: JsonDict = {
                "pspReference": p.id,
                "merchantReference": p.reference,
                "amount": {"value": p.amount, "currency": p.currency},
                "resultCode": "Authorised" if p.status != "declined" else "Refused",
            }
            if p.status == "declined":
                answer["refusalReason"] = "3D Not Authenticated"
                answer["refusalReasonCode"] = "11"
            return 200, answer

        return await self.run(call, "details", "/payments/details", execute)


def shopper_completes(sim: Sim, payment: st.Payment, *, passed: bool) -> JsonDict:
    """The shopper finished the challenge at the issuer: the browser comes back to the
    ``returnUrl`` with an opaque ``redirectResult``, which only /payments/details turns into
    a result (nothing is decided before)."""
    token = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()
    sim.state.redirect_results[token] = (payment.id, passed)
    return {"redirectResult": token}


def send_notification(
    sim: Sim,
    payment: st.Payment,
    event_code: str,
    psp_reference: str,
    value: int,
    *,
    success: bool = True,
) -> None:
    """Adyen's NotificationRequest for a modification, after ``autoCompleteMs`` (Adyen
    answers the request with ``received`` and the outcome comes later)."""
    acct = sim.state.accounts.get((payment.provider, payment.account))
    if acct is None or not acct.webhook_url:
        return
    item: JsonDict = {
        "additionalData": {},
        "amount": {"value": value, "currency": payment.currency},
        "eventCode": event_code,
        "eventDate": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "merchantAccountCode": payment.account,
        "merchantReference": payment.reference,
        "originalReference": payment.id if psp_reference != payment.id else None,
        "pspReference": psp_reference,
        "reason": "" if success else f"{event_code.title()} failed at the acquirer",
        "success": "true" if success else "false",
    }
    if item["originalReference"] is None:  # an AUTHORISATION is about the payment itself
        del item["originalReference"]
    item["additionalData"]["hmacSignature"] = adyen_hmac(acct.webhook_secret, item)
    body = json.dumps(
        {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ).encode()
    webhooks.deliver_later(sim, payment, acct, body, None)


async def shopper_authenticates(sim: Sim, payment: st.Payment) -> None:
    """The shopper completes the redirect (3-D Secure) after autoCompleteMs: AUTHORISATION."""
    await asyncio.sleep(max(sim.auto_complete_ms, 0) / 1000)
    if payment.status != "pending":
        return
    payment.status = "authorized"
    payment.history.append("authorized")
    send_notification(sim, payment, "AUTHORISATION", payment.id, payment.amount)
