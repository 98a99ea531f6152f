"""Stripe PaymentIntents: form-encoded, manual capture, ``Idempotency-Key``."""

from __future__ import annotations

from typing import Any

from checkout_services.payments.adapters import base

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
    s = pi.get("status")
    if s == "requires_capture":
        return "authorized"
    if s == "succeeded":
        received = int(pi.get("amount_received") or 0)
        refunded = int(pi.get("amount_refunded") or 0)
        return "refunded" if received and refunded >= received else "captured"
    if s == "canceled":
        return "voided"
    if s in ("requires_payment_method", "requires_confirmation"):
        return "declined"
    return "pending"


class StripeAdapter(base.HTTPAdapter):
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.api_key.reveal()}"}

    def found(self, pi: dict[str, Any]) -> base.FoundPayment:
        return base.FoundPayment(
            str(pi["id"]),
            status_of(pi),
            int(pi.get("amount", 0)),
            str(pi.get("currency", "")).upper(),
        )

    def answer(self, resp: Any, operation: str) -> base.PSPResult:
        body = base.json_body(resp)
        if resp.status_code == 200:
            status = status_of(body) if body.get("object") == "payment_intent" else None
            return base.PSPResult("approved", body.get("id"), status)
        err = body.get("error") or {}
        if resp.status_code == 402 and err.get("type") == "card_error":
            pi = err.get("payment_intent") or {}
            code = str(err.get("decline_code") or err.get("code") or "generic_decline")
            return base.PSPResult("declined", pi.get("id"), "declined", classify(code), code)
        pi = err.get("payment_intent") or {}
        return base.PSPResult(
            "rejected",
            pi.get("id"),
            status_of(pi) if pi else None,
            reason=str(err.get("code") or err.get("type") or resp.status_code),
        )

    async def authorize(
        self, *, checkout_id: str, amount: int, currency: str, method: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            "/v1/payment_intents",
            headers=self.headers(),
            key=key,
            operation="authorize",
            data={
                "amount": str(amount),
                "currency": currency.lower(),
                "payment_method": "pm_card_visa" if method == "card" else method,
                "confirm": "true",
                "capture_method": "manual",
                "metadata[checkout_id]": checkout_id,
            },
        )
        return self.answer(resp, "authorize")

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
        return self.answer(resp, "capture")

    async def void(self, *, psp_reference: str, checkout_id: str, key: str) -> base.PSPResult:
        resp = await self.send(
            "POST",
            f"/v1/payment_intents/{psp_reference}/cancel",
            headers=self.headers(),
            key=key,
            operation="void",
            data={},
        )
        return self.answer(resp, "void")

    async def refund(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            "/v1/refunds",
            headers=self.headers(),
            key=key,
            operation="refund",
            data={"payment_intent": psp_reference, "amount": str(amount)},
        )
        result = self.answer(resp, "refund")
        if result.outcome == "approved":
            return base.PSPResult("approved", psp_reference, None)
        return result

    async def lookup(self, *, checkout_id: str) -> list[base.FoundPayment]:
        resp = await self.send(
            "GET",
            "/v1/payment_intents/search",
            headers=self.headers(),
            operation="lookup",
            params={"query": f"metadata['checkout_id']:'{checkout_id}'"},
        )
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"lookup: HTTP {resp.status_code}", "server_error"
            )
        return [self.found(pi) for pi in base.json_body(resp).get("data", [])]

    async def retrieve(self, *, psp_reference: str) -> base.FoundPayment | None:
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
