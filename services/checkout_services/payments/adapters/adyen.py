"""Adyen Checkout API v71: JSON, ``X-API-Key``, ``merchantAccount``, ``Idempotency-Key`` (<= 64).

``resultCode`` of POST /payments (specs/adyen/CheckoutService-v71.json) and what it means here:

==============================================  =============================================
Authorised, Success                              authorized
ChallengeShopper, IdentifyShopper,               pending: the ``action`` goes to the shopper
RedirectShopper, PresentToShopper                (3-D Secure, redirect, Pix QR code, UPI ...)
Pending, Received                                pending (an ``await`` action if any): the
                                                 AUTHORISATION webhook or /payments/details ends it
AuthenticationFinished, AuthenticationNotRequired pending (an authentication-only step)
PartiallyAuthorised                              declined: we never ship for part of the amount;
                                                 the partial authorization is cancelled at once
Refused, Cancelled                               declined (``refusalReason`` says how)
Error                                            rejected (not charged): the next provider may try
==============================================  =============================================

There is no GET for a payment in the Checkout API: an ambiguous answer is resolved by sending the
same request again with the same ``Idempotency-Key`` (kept >= 31 days). Error code 704 (a request
with this key is still in progress, or the key was used with another body) means: retry the same
key later, never another provider. A 5xx with ``Transient-Error: true`` is retried with the same
key. Captures, cancels and refunds answer 201 ``received``: the outcome comes by webhook (CAPTURE,
CAPTURE_FAILED, CANCELLATION, REFUND, REFUND_FAILED), so they are ``pending`` here.
"""

from __future__ import annotations

from typing import Any

import httpx

from checkout_services.payments.adapters import base

API = "/v71"
IN_PROGRESS = "704"
APM_DEFAULTS: dict[str, dict[str, Any]] = {
    "ideal": {"type": "ideal"},
    "pix": {"type": "pix"},
    "upi": {"type": "upi_qr"},
}
APM_TYPES: dict[str, frozenset[str]] = {
    "card": frozenset({"scheme", "card", "bcmc"}),
    "ideal": frozenset({"ideal"}),
    "pix": frozenset({"pix"}),
    "upi": frozenset({"upi_collect", "upi_intent", "upi_qr"}),
}
HARD = frozenset(
    {
        "Stolen Card",
        "Blocked Card",
        "Invalid Card Number",
        "Expired Card",
        "Restricted Card",
        "Card Absent Fraud",
        "Invalid Pin",
        "Not supported",
    }
)
FRAUD = frozenset({"FRAUD", "FRAUD-CANCELLED", "Issuer Suspected Fraud"})
SHOPPER_ACTION = frozenset(
    {"ChallengeShopper", "IdentifyShopper", "RedirectShopper", "PresentToShopper"}
)
WAITING = frozenset({"Pending", "Received", "AuthenticationFinished", "AuthenticationNotRequired"})


def classify(reason: str) -> base.DeclineClass:
    if reason in FRAUD:
        return "fraud"
    if reason in HARD:
        return "hard_decline"
    return "soft_decline"


def payment_method(method: str, token: base.PaymentMethodToken | None) -> dict[str, Any] | None:
    """The ``paymentMethod`` object to send: the client's (checked against the method), or an
    APM's bare type; None when the client gave nothing usable for Adyen."""
    given = token.adyen if token is not None else None
    if given:
        return dict(given) if str(given.get("type")) in APM_TYPES.get(method, ()) else None
    default = APM_DEFAULTS.get(method)
    return dict(default) if default is not None else None


def verdict(body: dict[str, Any]) -> base.PSPResult:
    """A /payments (or /payments/details) answer -> our verdict (PartiallyAuthorised is left to
    the caller, which must cancel it)."""
    result = str(body.get("resultCode"))
    ref = body.get("pspReference")
    if result in ("Authorised", "Success"):
        return base.PSPResult("approved", ref, "authorized")
    if result in SHOPPER_ACTION or result in WAITING:
        return base.PSPResult("pending", ref, "pending", action=body.get("action"), reason=result)
    if result in ("Refused", "Cancelled"):
        reason = str(body.get("refusalReason") or result)
        return base.PSPResult("declined", ref, "declined", classify(reason), reason)
    return base.PSPResult("rejected", ref, None, reason=str(body.get("refusalReason") or result))


def error_code(resp: httpx.Response) -> str:
    return str(base.json_body(resp).get("errorCode", ""))


class AdyenAdapter(base.HTTPAdapter):
    recovers_by_replay = True
    can_retrieve = False

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.credentials.api_key.reveal()}

    def accepts(self, method: str, token: base.PaymentMethodToken | None) -> bool:
        return (
            token is not None
            and bool(token.return_url)
            and payment_method(method, token) is not None
        )

    def retry_after(self, resp: httpx.Response, round_: int) -> float | None:
        transient = resp.headers.get("Transient-Error", "").lower() == "true"
        if resp.status_code == 429 or (resp.status_code >= 500 and transient):
            return base.retry_delay(resp, round_)
        return None

    def classify(self, resp: httpx.Response, operation: str, key: str | None) -> httpx.Response:
        if error_code(resp) == IN_PROGRESS:
            raise base.PSPInProgress(
                self.target.provider, f"{operation}: 704 (key in progress or reused)"
            )
        return super().classify(resp, operation, key)

    def rejected(self, resp: httpx.Response, ref: str | None = None) -> base.PSPResult:
        body = base.json_body(resp)
        reason = str(body.get("errorCode") or body.get("message") or resp.status_code)
        return base.PSPResult("rejected", ref, reason=reason)

    async def authorize(
        self,
        *,
        checkout_id: str,
        amount: int,
        currency: str,
        method: str,
        key: str,
        token: base.PaymentMethodToken | None = None,
    ) -> base.PSPResult:
        pm = payment_method(method, token)
        if pm is None or token is None or not token.return_url:
            return base.PSPResult("rejected", reason="no Adyen payment method from the client")
        resp = await self.send(
            "POST",
            f"{API}/payments",
            headers=self.headers(),
            key=key,
            operation="authorize",
            json={
                "merchantAccount": self.target.account,
                "amount": {"value": amount, "currency": currency},
                "reference": checkout_id,
                "paymentMethod": pm,
                "returnUrl": token.return_url,
                "shopperInteraction": "Ecommerce",
                "channel": "Web",
            },
        )
        if resp.status_code != 200:
            return self.rejected(resp)
        body = base.json_body(resp)
        if body.get("resultCode") == "PartiallyAuthorised":
            return await self.refuse_partial(body, checkout_id, key)
        return verdict(body)

    async def refuse_partial(
        self, body: dict[str, Any], checkout_id: str, key: str
    ) -> base.PSPResult:
        """Only part of the amount was authorized: cancel that part (its own key, derived from
        the authorization's) and report a soft decline."""
        ref = body.get("pspReference")
        if ref:
            await self.void(psp_reference=str(ref), checkout_id=checkout_id, key=f"{key}:partial")
        return base.PSPResult(
            "declined", ref, "declined", "soft_decline", "PartiallyAuthorised (cancelled)"
        )

    async def complete_action(
        self, *, psp_reference: str, details: dict[str, str], key: str
    ) -> base.PSPResult:
        """POST /payments/details: the shopper's answer to an action (``redirectResult`` from
        the return URL, ``threeDSResult`` from a native 3-D Secure challenge, ...). The answer
        is a resultCode like /payments' (a further action is possible)."""
        resp = await self.send(
            "POST",
            f"{API}/payments/details",
            headers=self.headers(),
            key=key,
            operation="details",
            json={"details": details},
        )
        if resp.status_code != 200:
            return self.rejected(resp)
        return verdict(base.json_body(resp))

    async def _modify(
        self,
        kind: str,
        psp_reference: str,
        checkout_id: str,
        key: str,
        amount: dict[str, Any] | None,
    ) -> base.PSPResult:
        payload: dict[str, Any] = {"merchantAccount": self.target.account, "reference": checkout_id}
        if amount is not None:
            payload["amount"] = amount
        resp = await self.send(
            "POST",
            f"{API}/payments/{psp_reference}/{kind}",
            headers=self.headers(),
            key=key,
            operation=kind.rstrip("s"),
            json=payload,
        )
        body = base.json_body(resp)
        if resp.status_code in (200, 201) and body.get("status") == "received":
            # Accepted for processing: the outcome arrives by webhook.
            mod = body.get("pspReference")
            return base.PSPResult("pending", psp_reference, None, reason=mod, modification=mod)
        return self.rejected(resp, psp_reference)

    async def capture(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        return await self._modify(
            "captures", psp_reference, checkout_id, key, {"value": amount, "currency": currency}
        )

    async def void(self, *, psp_reference: str, checkout_id: str, key: str) -> base.PSPResult:
        return await self._modify("cancels", psp_reference, checkout_id, key, None)

    async def refund(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        return await self._modify(
            "refunds", psp_reference, checkout_id, key, {"value": amount, "currency": currency}
        )

    async def lookup(self, *, checkout_id: str) -> list[base.FoundPayment]:
        raise base.LookupUnsupported(
            self.target.provider, "lookup: the Checkout API has none; replay the request instead"
        )

    async def retrieve(self, *, psp_reference: str) -> base.FoundPayment | None:
        raise base.LookupUnsupported(
            self.target.provider, "retrieve: the Checkout API has none; replay the request instead"
        )
