"""Typed errors of the cart service (problem+json)."""

from __future__ import annotations

from checkout_services.common import errors


class CartError(errors.ProblemError):
    service = "cart"


class CartNotFound(CartError):
    status, slug, title = 404, "cart-not-found", "Cart not found (unknown or expired)"


class CartFull(CartError):
    status, slug, title = 409, "cart-full", "The cart has too many distinct items"
