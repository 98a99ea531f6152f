"""The shared wire format of the local methods (UPI, iDEAL, Pix): async, webhook-completed.

Each method's own module (``upi``, ``ideal``, ``pix``) sets its path and its payload extras.
"""

from __future__ import annotations

from typing import Any, ClassVar

from checkout_services.payments.adapters import base

DECLINE_CLASSES: dict[str, base.DeclineClass] = {
    "soft": "soft_decline",
    "hard": "hard_decline",
    "fraud": "fraud",
}

STATUSES: dict[str, base.PSPStatus] = {
    s: s for s in ("pending", "authorized", "declined", "captured", "voided", "refunded")
}


class LocalMethodAdapter(base.HTTPAdapter):
    method: ClassVar[str]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.api_key.reveal()}"}

    def extras(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def status(p: dict[str, Any]) -> base.PSPStatus:
        return STATUSES.get(str(p.get("status")), "pending")

    def found(self, p: dict[str, Any]) -> base.FoundPayment:
        return base.FoundPayment(
            str(p["id"]), self.status(p), int(p.get("amount", 0)), str(p.get("currency", ""))
        )

    def answer(self, resp: Any) -> base.PSPResult:
        body = base.json_body(resp)
        if resp.status_code in (200, 201):
            status = self.status(body)
            if status == "pending":
                return base.PSPResult("pending", body.get("id"), status, action=body.get("action"))
            if status == "declined":
                cls = DECLINE_CLASSES.get(str(body.get("declineClass")), "soft_decline")
                return base.PSPResult("declined", body.get("id"), status, cls, "declined")
            return base.PSPResult("approved", body.get("id"), status)
        payment = body.get("payment") or {}
        return base.PSPResult(
            "rejected",
            payment.get("id"),
            self.status(payment) if payment else None,
            reason=str(body.get("error", resp.status_code)),
        )

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
        resp = await self.send(
            "POST",
            "/v1/payments",
            headers=self.headers(),
            key=key,
            operation="authorize",
            json={
                "account": self.target.account,
                "amount": amount,
                "currency": currency,
                "reference": checkout_id,
                **self.extras(),
            },
        )
        return self.answer(resp)

    async def capture(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            f"/v1/payments/{psp_reference}/capture",
            headers=self.headers(),
            key=key,
            operation="capture",
            json={"amount": amount},
        )
        return self.answer(resp)

    async def void(self, *, psp_reference: str, checkout_id: str, key: str) -> base.PSPResult:
        resp = await self.send(
            "POST",
            f"/v1/payments/{psp_reference}/cancel",
            headers=self.headers(),
            key=key,
            operation="void",
            json={},
        )
        return self.answer(resp)

    async def refund(
        self, *, psp_reference: str, checkout_id: str, amount: int, currency: str, key: str
    ) -> base.PSPResult:
        resp = await self.send(
            "POST",
            f"/v1/payments/{psp_reference}/refunds",
            headers=self.headers(),
            key=key,
            operation="refund",
            json={"amount": amount},
        )
        return self.answer(resp)

    async def lookup(self, *, checkout_id: str) -> list[base.FoundPayment]:
        resp = await self.send(
            "GET",
            "/v1/payments",
            headers=self.headers(),
            operation="lookup",
            params={"reference": checkout_id},
        )
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"lookup: HTTP {resp.status_code}", "server_error"
            )
        return [self.found(p) for p in base.json_body(resp).get("data", [])]

    async def retrieve(self, *, psp_reference: str) -> base.FoundPayment | None:
        resp = await self.send(
            "GET", f"/v1/payments/{psp_reference}", headers=self.headers(), operation="retrieve"
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise base.PSPAmbiguous(
                self.target.provider, f"retrieve: HTTP {resp.status_code}", "server_error"
            )
        return self.found(base.json_body(resp))
