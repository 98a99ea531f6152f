"""IDEAL: bank redirect; completed asynchronously by a signed webhook."""

from __future__ import annotations

from typing import Any, ClassVar

from checkout_services.payments.adapters import local


class IdealAdapter(local.LocalMethodAdapter):
    method: ClassVar[str] = "ideal"

    def extras(self) -> dict[str, Any]:
        return {"flow": "bank redirect"}
