"""Typed errors of the pricing service (problem+json)."""

from __future__ import annotations

from checkout_services.common import errors


class PricingError(errors.ProblemError):
    service = "pricing"


class Unpriceable(PricingError):
    status, slug, title = 422, "unpriceable", "This request cannot be priced"


class SnapshotNotFound(PricingError):
    status, slug, title = 404, "snapshot-not-found", "Pricing snapshot unknown or expired"
