"""UPI: collect request to the payer's VPA; completed asynchronously by a signed webhook."""

from __future__ import annotations

from typing import Any, ClassVar

from checkout_services.payments.adapters import local


class UpiAdapter(local.LocalMethodAdapter):
    method: ClassVar[str] = "upi"

    def extras(self) -> dict[str, Any]:
        return {"flow": "collect request to the payer's VPA"}
