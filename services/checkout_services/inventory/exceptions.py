"""Typed errors of the inventory service (problem+json)."""

from __future__ import annotations

from checkout_services.common import errors


class InventoryError(errors.ProblemError):
    service = "inventory"


class UnknownSku(InventoryError):
    status, slug, title = 404, "unknown-sku", "Unknown SKU"


class OutOfStock(InventoryError):
    status, slug, title = 409, "out-of-stock", "Not enough stock"


class ReservationNotFound(InventoryError):
    status, slug, title = 404, "reservation-not-found", "No reservation for this checkout"


class ReservationMismatch(InventoryError):
    status, slug, title = 409, "reservation-mismatch", "The checkout already holds other lines"


class ReservationEnded(InventoryError):
    status, slug, title = 409, "reservation-ended", "The reservation was released or expired"
