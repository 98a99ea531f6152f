"""Typed errors of the orders service (problem+json)."""

from __future__ import annotations

from checkout_services.common import errors


class OrdersError(errors.ProblemError):
    service = "orders"


class OrderNotFound(OrdersError):
    status, slug, title = 404, "order-not-found", "Order not found"


class CheckoutFailed(OrdersError):
    """The saga ended before placing the order (its compensations ran)."""

    status, slug, title = 409, "checkout-failed", "The checkout did not place an order"


class OutOfStock(CheckoutFailed):
    slug, title = "out-of-stock", "Not enough stock"


class PaymentDeclined(CheckoutFailed):
    status, slug, title = 402, "payment-declined", "Payment declined"


class Unpriceable(CheckoutFailed):
    status, slug, title = 422, "unpriceable", "The basket cannot be priced"


class PaymentMethodRefused(CheckoutFailed):
    """Payments refused the request itself: the payment method token does not validate."""

    status, slug, title = 422, "payment-method-refused", "The payment method was refused"


class DependencyFailed(CheckoutFailed):
    status, slug, title = 503, "dependency-failed", "A checkout step could not complete"
    retry_after = 2


class CheckoutPending(OrdersError):
    status, slug, title = 503, "checkout-pending", "The checkout is still running"
    retry_after = 1


class NothingToCompensate(OrdersError):
    status, slug, title = 409, "nothing-to-compensate", "The order is in good standing"


class CheckoutIdTaken(OrdersError):
    """The checkout id belongs to another principal (tenant binding): nothing of it is told."""

    status, slug, title = 409, "checkout-id-taken", "Checkout id already in use"


class CustomerIdTaken(OrdersError):
    """The customer id belongs to another principal: its profile is not overwritten."""

    status, slug, title = 409, "customer-id-taken", "Customer id already in use"


class PaymentNotWaiting(OrdersError):
    status, slug, title = 404, "payment-not-found", "No payment for this checkout"


class DetailsRejected(OrdersError):
    """The provider refused what the shopper came back with (unknown, expired, used)."""

    status, slug, title = 422, "details-rejected", "The payment details were refused"


class MarketMismatch(OrdersError):
    status, slug, title = 422, "market-mismatch", "The checkout belongs to another market"
