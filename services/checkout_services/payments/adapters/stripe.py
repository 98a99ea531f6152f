"""Stripe PaymentIntents: form-encoded, manual capture, ``Idempotency-Key``, pinned version.

What each PaymentIntent ``status`` means for us (docs: "How PaymentIntents work"):

=========================  ======================================================
requires_capture           authorized (``capture_method=manual`` card, confirmed)
succeeded                  captured (an APM that captures on confirmation)
requires_action            pending: ``next_action`` goes to the shopper (3-D Secure,
                           redirect_to_url, pix_display_qr_code, upi_...)
processing                 pending: the outcome arrives by webhook
requires_payment_method    declined (``last_payment_error`` says why)
requires_confirmation      rejected (we always confirm: never charged)
canceled                   voided (declined when it is the authorize answer)
=========================  ======================================================

Recovery after an ambiguous answer is a replay of the same request with the same
``Idempotency-Key`` (Stripe keeps keys >= 24 h and answers with the saved response, a saved 5xx
included); search is eventually consistent and is never used. 429 and 409 ``lock_timeout`` are
sent again with the same key after a backoff; 409 ``idempotency_key_in_use`` means the first
request still runs.
"""

from __future__ import annotations

from typing import Any

import httpx

from checkout_services.payments.adapters import base

API_VERSION = "2026-08-26.dahlia"
"""The API version the adapter speaks (the one in the OpenAPI description of stripe-mock
v0.203.0, hack/checkout_stack/versions.py); sent in ``Stripe-Version`` on every request."""

APM_TYPES = frozenset({"upi", "ideal", "pix"})
"""Created as Stripe documents them: ``payment_method_data[type]``, ``confirm=true`` (they
capture on confirmation: no ``capture_method=manual``), ``return_url``; the answer is
``requires_action`` with ``redirect_to_url`` (iDEAL), ``pix_display_qr_code`` or
``upi_handle_redirect_or_display_qr_code``, and ``payment_intent.succeeded`` follows."""
REDIRECT_APMS = frozenset({"ideal"})
HARD = frozenset(
    {
        "stolen_card",
        "lost_card",
        "pickup_card",
        "invalid_account",
        "incorrect_number",
        "expired_card",
        "restricted_card",
        "card_not_supported",
        "invalid_number",
    }
)
FRAUD = frozenset({"fraudulent", "merchant_blacklist", "security_violation"})


def classify(decline_code: str) -> base.DeclineClass:
    if decline_code in FRAUD:
        return "fraud"
    if decline_code in HARD:
        return "hard_decline"
    return "soft_decline"


def status_of(pi: dict[str, Any]) -> base.PSPStatus:
    """The PaymentIntent's status in our words (a Refund never changes the intent's status)."""
    s = pi.get("status")
    if s == "requires_capture":
        return "authorized"
    if s == "succeeded":
        return "captured"
    if s == "canceled":
        return "voided"
    if s in ("requires_payment_method", "requires_confirmation"):
        return "declined"
    return "pending"  # requires_action, processing


def decline_code(pi: dict[str, Any]) -> str:
    err = pi.get("last_payment_error") or {}
    return str(err.get("decline_code") or err.get("code") or "generic_decline")


def verdict(pi: dict[str, Any]) -> base.PSPResult:
    """An authorize answer (a PaymentIntent) -> our verdict."""
    ref = pi.get("id")
    s = pi.get("status")
    if s == "requires_capture":
        return base.PSPResult("approved", ref, "authorized")
    if s == "succeeded":
        return base.PSPResult("approved", ref, "captured")
    if s in ("requires_action", "processing"):
        action = pi.get("next_action") if s == "requires_action" else None
        return base.PSPResult("pending", ref, "pending", action=action)
    if s == "requires_payment_method":
        code = decline_code(pi)
        return base.PSPResult("declined", ref, "declined", classify(code), code)
    if s == "canceled":
        reason = str(pi.get("cancellation_reason") or "canceled")
        return base.PSPResult("declined", ref, "declined", "soft_decline", reason)
    return base.PSPResult("rejected", ref, None, reason=f"status {s}")


def refund_verdict(refund: dict[str, Any], psp_reference: str) -> base.PSPResult:
    """A Refund object: ``succeeded`` is done; ``pending``/``requires_action`` wait for the
    ``refund.updated`` webhook; ``failed``/``canceled`` did not move money."""
    s = refund.get("status")
    rid = str(refund["id"]) if refund.get("id") else None
    if s == "succeeded":
        return base.PSPResult("approved", psp_reference, "refunded", modification=rid)
    if s in ("pending", "requires_action"):
        return base.PSPResult("pending", psp_reference, None, reason=rid, modification=rid)
    reason = str(refund.get("failure_reason") or s or "refund failed")
    return base.PSPResult("rejected", psp_reference, None, reason=reason, modification=rid)


def is_lock_timeout(resp: httpx.Response) -> bool:
    err = base.json_body(resp).get("error") or {}
    return resp.status_code == 409 and isinstance(err, dict) and err.get("code") == "lock_timeout"


class StripeAdapter(base.HTTPAdapter):
    recovers_by_replay = True

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.credentials.api_key.reveal()}",
            "Stripe-Version": API_VERSION,
        }

    def accepts(self, method: str, token: base.PaymentMethodToken | None) -> bool:
        """A card needs the client's PaymentMethod id; iDEAL a return URL (Stripe refuses to
        confirm a redirect method without one); Pix and UPI show a QR code or hand over to
        the payer's app, a return URL is passed when the client gave one."""
        if method in REDIRECT_APMS:
            return bool(token is not None and token.return_url)
        return method in APM_TYPES or bool(token is not None and token.stripe)

    def retry_after(self, resp: httpx.Response, round_: int) -> float | None:
        if resp.status_code == 429 or is_lock_timeout(resp):
            return base.retry_delay(resp, round_)
        return None

    def found(self, pi: dict[str, Any]) -> base.FoundPayment:
        return base.FoundPayment(
            str(pi["id"]),
            status_of(pi),
            int(pi.get("amount", 0)),
            str(pi.get("currency", "")).upper(),
        )

    def error_answer(self, resp: httpx.Response) -> base.PSPResult:
        body = base.json_body(resp)
        err = body.get("error") or {}
        pi = err.get("payment_intent") or {}
        if resp.status_code == 402 and err.get("type") == "card_error":
            code = str(err.get("decline_code") or err.get("code") or "generic_decline")
            return base.PSPResult("declined", pi.get("id"), "declined", classify(code), code)
        return base.PSPResult(
            "rejected",
            pi.get("id"),
            status_of(pi) if pi else None,
            reason=str(err.get("code") or err.get("type") or resp.status_code),
        )

    def intent_answer(self, resp: httpx.Response) -> base.PSPResult:
        if resp.status_code != 200:
            return self.error_answer(resp)
        body = base.json_body(resp)
        return verdict(body)

    @staticmethod
    def method_params(
        checkout_id: str, method: str, token: base.PaymentMethodToken | None
    ) -> dict[str, str]:
        params: dict[str, str] = {}
        if method in APM_TYPES:
            params["payment_method_data[type]"] = method
            params["payment_method_types[0]"] = method
        else:
            assert token is not None
            assert token.stripe
            params["payment_method"] = token.stripe
            params["payment_method_types[0]"] = "card"
            params["capture_method"] = "manual"
        if token is not None and token.return_url:
            params["return_url"] = token.return_url
        return params

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
        if not self.accepts(method, token):
            return base.PSPResult(
                "rejected", reason="no Stripe payment method (or iDEAL return URL) from the client"
            )
        resp = await self.send(
            "POST",
            "/v1/payment_intents",
            headers=self.headers(),
            key=key,
            operation="authorize",
            data={
                "amount": str(amount),
                "currency": currency.lower(),
                "confirm": "true",
                "metadata[checkout_id]": checkout_id,
                **self.method_params(checkout_id, method, token),
            },
        )
        return self.intent_answer(resp)

    async def capture(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            f"/v1/payment_intents/{psp_reference}/capture",
            headers=self.headers(),
            key=key,
            operation="capture",
            data={"amount_to_capture": str(amount)},
        )
        result = self.intent_answer(resp)
        if result.outcome == "approved" and result.status == "captured":
            return result
        if result.outcome == "rejected":
            return result
        return base.PSPResult("rejected", psp_reference, result.status, reason="not captured")

    async def void(self, *, psp_reference: str, checkout_id: str, key: str) -> base.PSPResult:
        resp = await self.send(
            "POST",
            f"/v1/payment_intents/{psp_reference}/cancel",
            headers=self.headers(),
            key=key,
            operation="void",
            data={"cancellation_reason": "abandoned"},
        )
        if resp.status_code != 200:
            return self.error_answer(resp)
        pi = base.json_body(resp)
        if pi.get("status") == "canceled":
            return base.PSPResult("approved", psp_reference, "voided")
        return base.PSPResult("rejected", psp_reference, status_of(pi), reason="not canceled")

    async def refund(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            "/v1/refunds",
            headers=self.headers(),
            key=key,
            operation="refund",
            data={
                "payment_intent": psp_reference,
                "amount": str(amount),
                "metadata[checkout_id]": checkout_id,
            },
        )
        if resp.status_code != 200:
            return self.error_answer(resp)
        return refund_verdict(base.json_body(resp), psp_reference)

    async def complete_action(
        self, *, psp_reference: str, details: dict[str, str], key: str
    ) -> base.PSPResult:
        """After ``requires_action`` (3-D Secure, a redirect) Stripe needs no second confirm:
        the PaymentIntent, read back, is requires_capture, requires_payment_method (the
        shopper failed the challenge) or still waiting."""
        resp = await self.send(
            "GET",
            f"/v1/payment_intents/{psp_reference}",
            headers=self.headers(),
            operation="details",
        )
        if resp.status_code >= 500:
            raise base.PSPAmbiguous(
                self.target.provider, f"details: HTTP {resp.status_code}", "server_error"
            )
        return self.intent_answer(resp)

    async def retrieve_refund(
        self, *, refund_reference: str, psp_reference: str
    ) -> base.PSPResult | None:
        """GET /v1/refunds/{id}: a refund left ``pending`` whose ``refund.updated`` webhook
        never came is settled by what Stripe says now (strongly consistent, like the
        PaymentIntent's GET)."""
        resp = await self.send(
            "GET",
            f"/v1/refunds/{refund_reference}",
            headers=self.headers(),
            operation="refund_retrieve",
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"refund_retrieve: HTTP {resp.status_code}", "server_error"
            )
        return refund_verdict(base.json_body(resp), psp_reference)

    async def lookup(self, *, checkout_id: str) -> list[base.FoundPayment]:
        raise base.LookupUnsupported(
            self.target.provider,
            "lookup: Stripe search is eventually consistent; replay the request instead",
        )

    async def retrieve(self, *, psp_reference: str) -> base.FoundPayment | None:
        """GET of one PaymentIntent by id: strongly consistent (unlike search)."""
        resp = await self.send(
            "GET",
            f"/v1/payment_intents/{psp_reference}",
            headers=self.headers(),
            operation="retrieve",
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"retrieve: HTTP {resp.status_code}", "server_error"
            )
        return self.found(base.json_body(resp))
