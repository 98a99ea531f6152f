"""Typed errors of the payments service; each becomes an RFC 9457 problem+json response."""

from __future__ import annotations

from typing import ClassVar

from checkout_services.common import errors, idempotency


class PaymentsError(errors.ProblemError):
    """``type`` = ``https://checkout-operator.dev/problems/payments/<slug>``."""

    service: ClassVar[str] = "payments"


class IdempotencyKeyReused(idempotency.IdempotencyKeyReused, PaymentsError):
    """422: the key was first used with another body or path."""


class IdempotencyKeyInFlight(idempotency.IdempotencyKeyInFlight, PaymentsError):
    """409 + Retry-After: the first request with the key is still running."""

    title = "Request with this Idempotency-Key in progress"


class PaymentNotFound(PaymentsError):
    status, slug, title = 404, "payment-not-found", "Payment not found"


class CheckoutMismatch(PaymentsError):
    status, slug, title = 409, "checkout-mismatch", "Checkout already has a different payment"


class IllegalTransitionError(PaymentsError):
    status, slug, title = 409, "illegal-transition", "Operation not allowed in the payment's state"


class OperationInProgress(PaymentsError):
    status, slug, title = (
        409,
        "operation-in-progress",
        "Another operation on this checkout is running",
    )
    retry_after = 1


class NoRoute(PaymentsError):
    status, slug, title = 422, "no-route", "No payment provider serves this payment"


class PaymentMethodRequired(PaymentsError):
    """No provider of the route can take the payment with what the client sent (a card needs a
    Stripe PaymentMethod or Adyen's encrypted fields; Adyen needs a return URL)."""

    status, slug, title = 422, "payment-method-required", "No usable payment method token"


class InvalidAmount(PaymentsError):
    status, slug, title = 422, "invalid-amount", "Invalid amount"


class PaymentDeclined(PaymentsError):
    status, slug, title = 402, "declined", "Payment declined"


class OutcomeUnknown(PaymentsError):
    """The provider's answer is not known yet (and a lookup could not tell): retry later."""

    status, slug, title = 503, "outcome-unknown", "Payment outcome not known yet"
    retry_after = 2


class ProvidersUnavailable(PaymentsError):
    status, slug, title = 503, "providers-unavailable", "No payment provider is available"
    retry_after = 5


class ProviderRejected(PaymentsError):
    status, slug, title = 502, "provider-rejected", "The payment provider refused the request"


class WebhookSignatureInvalid(PaymentsError):
    status, slug, title = 401, "webhook-signature", "Webhook signature invalid"


class UnknownProvider(PaymentsError):
    status, slug, title = 404, "unknown-provider", "Unknown payment provider"


class PaymentNotReady(PaymentsError):
    status, slug, title = 503, "payment-not-ready", "Payment not ready for this event"
    retry_after = 1


class PaymentIncomplete(PaymentsError):
    status, slug, title = 409, "payment-incomplete", "Payment has no provider reference"


class NotReady(PaymentsError):
    status, slug, title = 503, "not-ready", "Not ready"
    retry_after = 1


class NotLeaseHolder(PaymentsError):
    status, slug, title = 409, "not-lease-holder", "This region holds no write lease for the market"


class RefundFailed(PaymentsError):
    """The provider refused or failed this refund id for good: a new refund needs a new id."""

    status, slug, title = 409, "refund-failed", "This refund failed at the provider"


class DetailsRejected(PaymentsError):
    """The provider refused the shopper's details (unknown, expired or already used)."""

    status, slug, title = 422, "details-rejected", "The provider refused the shopper's details"
