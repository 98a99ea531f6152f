"""Adyen Checkout API: JSON, ``X-API-Key``, ``merchantAccount``, ``idempotency-key`` (<= 64)."""

from __future__ import annotations

from typing import Any

from checkout_services.payments.adapters import base

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
STATUSES: dict[str, base.PSPStatus] = {
    "Pending": "pending",
    "Authorised": "authorized",
    "Refused": "declined",
    "Captured": "captured",
    "Cancelled": "voided",
    "Refunded": "refunded",
}


def classify(reason: str) -> base.DeclineClass:
    if reason in FRAUD:
        return "fraud"
    if reason in HARD:
        return "hard_decline"
    return "soft_decline"


class AdyenAdapter(base.HTTPAdapter):
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.credentials.api_key.reveal()}

    def found(self, p: dict[str, Any]) -> base.FoundPayment:
        amount = p.get("amount") or {}
        return base.FoundPayment(
            str(p["pspReference"]),
            STATUSES.get(str(p.get("status")), "pending"),
            int(amount.get("value", 0)),
            str(amount.get("currency", "")),
        )

    async def authorize(
        self, *, checkout_id: str, amount: int, currency: str, method: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            "/v71/payments",
            headers=self.headers(),
            key=key,
            operation="authorize",
            json={
                "merchantAccount": self.target.account,
                "amount": {"value": amount, "currency": currency},
                "reference": checkout_id,
                "paymentMethod": {"type": "scheme" if method == "card" else method},
            },
        )
        body = base.json_body(resp)
        if resp.status_code != 200:
            return base.PSPResult("rejected", reason=str(body.get("errorCode", resp.status_code)))
        result = body.get("resultCode")
        ref = body.get("pspReference")
        if result == "Authorised":
            return base.PSPResult("approved", ref, "authorized")
        if result in ("Pending", "Received", "RedirectShopper"):
            return base.PSPResult("pending", ref, "pending", action=body.get("action"))
        reason = str(body.get("refusalReason", result))
        return base.PSPResult("declined", ref, "declined", classify(reason), reason)

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
            f"/v71/payments/{psp_reference}/{kind}",
            headers=self.headers(),
            key=key,
            operation=kind.rstrip("s"),
            json=payload,
        )
        body = base.json_body(resp)
        if resp.status_code in (200, 201) and body.get("status") == "received":
            status: base.PSPStatus = {
                "captures": "captured",
                "cancels": "voided",
                "refunds": "refunded",
            }[kind]  # type: ignore[assignment]
            return base.PSPResult("approved", psp_reference, status if kind != "refunds" else None)
        return base.PSPResult(
            "rejected", psp_reference, reason=str(body.get("message", resp.status_code))
        )

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
        resp = await self.send(
            "GET",
            "/v71/payments",
            headers=self.headers(),
            operation="lookup",
            params={"merchantAccount": self.target.account, "reference": checkout_id},
        )
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"lookup: HTTP {resp.status_code}", "server_error"
            )
        return [self.found(p) for p in base.json_body(resp).get("payments", [])]

    async def retrieve(self, *, psp_reference: str) -> base.FoundPayment | None:
        resp = await self.send(
            "GET", f"/v71/payments/{psp_reference}", headers=self.headers(), operation="retrieve"
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"retrieve: HTTP {resp.status_code}", "server_error"
            )
        return self.found(base.json_body(resp))
