"""PIX: dynamic QR code; completed asynchronously by a signed webhook."""

from __future__ import annotations

from typing import Any, ClassVar

from checkout_services.payments.adapters import local


class PixAdapter(local.LocalMethodAdapter):
    method: ClassVar[str] = "pix"

    def extras(self) -> dict[str, Any]:
        return {"flow": "dynamic QR code"}
